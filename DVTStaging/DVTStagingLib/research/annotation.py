"""What an annotator records for a study: true stage per ROI, reviewed flag, notes.

Next to the study they live in `annotation.json`, so labels go with the case;
in Slicer they live as node attributes (`slicer.study_nodes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputFileError
from ..core.files import write_json_atomic
from ..core.json_files import read_json
from ..core.stages import STAGES

ANNOTATION_SCHEMA = "dvt-staging/annotation@1"
UNLABELED = ""


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
    return write_json_atomic(path, annotation.to_dict())    # a crash never leaves half a label file


def read_annotation(path) -> CaseAnnotation:
    path = Path(path)
    data = read_json(path, missing=f"no annotation file {path}")
    return CaseAnnotation.from_dict(data, str(path))
