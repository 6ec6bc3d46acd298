"""Staging a study: slice pairs, the model run, attention maps, result.json, the report, the `stage` job."""
