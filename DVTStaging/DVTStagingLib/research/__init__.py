"""Labels and datasets for research: study annotation, the worklist, de-identified export, dataset tools."""
