"""The thrombus stages the project knows, defined once.

Everything that names a stage (models, result.json, datasets, the phantom,
the panel, annotation) takes it from here; the JSON schemas list the same
names and a test holds them equal.
"""

from __future__ import annotations

STAGES = ("acute", "subacute", "chronic")
STAGE_TITLES = {"acute": "Acute", "subacute": "Sub-acute", "chronic": "Chronic"}
# One colour per stage wherever a stage is drawn (report, panel plot): red, orange, blue.
STAGE_COLORS = {"acute": "#d62728", "subacute": "#ff7f0e", "chronic": "#1f77b4"}
# The answer when the model abstains (not confident, or an input unlike its training data); never a label.
INDETERMINATE = "indeterminate"
INDETERMINATE_TITLE = "Indeterminate"
INDETERMINATE_COLOR = "#7f7f7f"


def stage_rgb(stage: str) -> tuple[float, float, float]:
    """A stage's colour as 0-1 RGB (what VTK and MRML take)."""
    code = STAGE_COLORS.get(stage, INDETERMINATE_COLOR).lstrip("#")
    return tuple(int(code[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
