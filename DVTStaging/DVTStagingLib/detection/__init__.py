"""Automatic thrombus ROIs: a 2.5D segmentation network, per-slice boxes linked into 3D ROIs.

Public entry points: `detect_rois` (one study), `evaluate_detection` (metrics
of a dataset split) and `benchmark_detection` (speed).  Torch is imported
with this package, so import it only where detection is needed.
"""

from .benchmark import benchmark_detection
from .detector import SCHEMA, DetectionResult, Detector, PostProcess, detect_rois, load_detector
from .evaluation import evaluate_detection

__all__ = ["SCHEMA", "DetectionResult", "Detector", "PostProcess", "benchmark_detection", "detect_rois",
           "evaluate_detection", "load_detector"]
