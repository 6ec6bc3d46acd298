"""What the Slicer module stands on: MRML conversions, study/ROI and result nodes, background jobs, the
worklist scene, dependencies, the sample study.  The only part of the core that imports slicer (never Qt)."""
