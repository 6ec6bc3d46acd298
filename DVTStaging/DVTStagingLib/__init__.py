"""DVTStaging core: deep vein thrombosis staging on black-blood MR thrombus imaging.

Subpackages in data-flow order, each importing only those before it:
core -> io -> imaging -> phantom -> models -> detection -> staging -> training -> research -> service -> slicer;
`cli` and `demo` sit on top.  Only `slicer` imports Slicer (never Qt).  Not for clinical use.
"""

__version__ = "0.1.0"
