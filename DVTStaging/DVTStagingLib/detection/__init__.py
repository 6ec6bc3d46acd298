"""Automatic thrombus ROIs: a 2.5D segmentation network, per-slice boxes linked into 3D ROIs.

Entry points: `detector.detect_rois` (one study), `evaluation.evaluate_detection`
(metrics of a dataset split), `benchmark.benchmark_detection` (speed) and
`commands` (the CLI jobs).  The package itself imports nothing, so a command
can check its inputs before torch loads.
"""
