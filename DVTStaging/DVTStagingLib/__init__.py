"""DVTStaging core: deep vein thrombosis staging on black-blood MR thrombus imaging.

Slicer-free: nothing here imports `slicer` except `mrml_adapter`, which the
Slicer module uses.  Not for clinical use.
"""

__version__ = "0.1.0"
