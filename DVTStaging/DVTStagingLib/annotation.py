"""What an annotator records for a study: true stage per ROI, reviewed flag, notes.

In Slicer these live as attributes on the nodes (saved with the scene and in
`.mrb` files); next to the study they live in `annotation.json`, so labels go
with the case.  The attribute names are defined here so that the module, the
worklist and the dataset exporter agree on them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputFileError
from .json_files import read_json

ANNOTATION_SCHEMA = "dvt-staging/annotation@1"
STAGES = ("acute", "subacute", "chronic")
UNLABELED = ""

# Node attributes (MRML attributes are strings).
ATTR_TRUE_STAGE = "DVTStaging.TrueStage"           # on a ROI node: one of STAGES or ""
ATTR_PREDICTED_STAGE = "DVTStaging.Stage"          # on a ROI node: the model's stage
ATTR_PROBABILITIES = "DVTStaging.Probabilities"    # on a ROI node: JSON {class: p}
ATTR_RATIO = "DVTStaging.ThrombusMuscleRatio"      # on a ROI node: float or ""
ATTR_REVIEWED = "DVTStaging.Reviewed"              # on the volume node: "1" or "0"
ATTR_NOTES = "DVTStaging.Notes"                    # on the volume node: free text
ATTR_STUDY_STAGED = "DVTStaging.Staged"            # on the volume node: "1" once results came back


def check_stage(stage: str | None) -> str:
    stage = (stage or UNLABELED).strip().lower().replace("-", "")
    if stage not in STAGES + (UNLABELED,):
        raise ValueError(f"'{stage}' is not a stage; use one of {', '.join(STAGES)} (or empty for unlabeled)")
    return stage


def study_status(staged: bool, labeled: bool, reviewed: bool) -> str:
    """new -> staged -> labeled -> reviewed: the furthest step a study has reached."""
    if reviewed:
        return "reviewed"
    if labeled:
        return "labeled"
    return "staged" if staged else "new"


@dataclass
class CaseAnnotation:
    true_stages: dict[str, str] = field(default_factory=dict)     # ROI name -> stage ("" = not yet)
    predicted_stages: dict[str, str] = field(default_factory=dict)
    reviewed: bool = False
    notes: str = ""
    annotator: str = ""

    @property
    def staged(self) -> bool:
        return bool(self.predicted_stages)

    @property
    def labeled(self) -> bool:
        return bool(self.true_stages) and all(self.true_stages.values())

    @property
    def status(self) -> str:
        return study_status(self.staged, self.labeled, self.reviewed)

    def to_dict(self) -> dict:
        return {"schema": ANNOTATION_SCHEMA, "true_stages": dict(self.true_stages),
                "predicted_stages": dict(self.predicted_stages), "reviewed": bool(self.reviewed),
                "notes": self.notes, "annotator": self.annotator, "status": self.status}

    @classmethod
    def from_dict(cls, data: dict, where: str = "annotation") -> "CaseAnnotation":
        if not isinstance(data, dict) or data.get("schema") != ANNOTATION_SCHEMA:
            raise InputFileError(f"{where} is not a study annotation (schema {ANNOTATION_SCHEMA})")
        try:
            true_stages = {str(k): check_stage(v) for k, v in (data.get("true_stages") or {}).items()}
        except ValueError as exc:
            raise InputFileError(f"{where}: {exc}") from None
        return cls(true_stages, {str(k): str(v) for k, v in (data.get("predicted_stages") or {}).items()},
                   bool(data.get("reviewed", False)), str(data.get("notes", "")), str(data.get("annotator", "")))


def write_annotation(path, annotation: CaseAnnotation) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(annotation.to_dict(), indent=2), encoding="utf-8")
    os.replace(tmp, path)    # atomic: a crash never leaves half a label file
    return path


def read_annotation(path) -> CaseAnnotation:
    path = Path(path)
    data = read_json(path, missing=f"no annotation file {path}")
    return CaseAnnotation.from_dict(data, str(path))
