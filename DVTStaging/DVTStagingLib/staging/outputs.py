"""The output contract of `stage`: which files it writes, and reading its result.json back.

Torch-free and schema-library-free, so the Slicer panel (and any client)
can read a staging run without the model's dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputFileError
from ..core.json_files import read_json
from ..core.stages import INDETERMINATE, STAGES

RESULT_SCHEMA = "dvt-staging/result@1"
RESULT_FILE = "result.json"
ROIS_FILE = "rois.mrk.json"
REPORT_FILE = "report.png"
# The lesion evidence: where the stage was read from (gradient x input, staging.evidence); the default overlay.
EVIDENCE_FILE = "evidence.nrrd"
# Which attention map: queries of the local (thrombus) branch over the global slice, or the reverse.
ATTENTION_FILES = {"local-to-global": "attention.nrrd", "global-to-local": "attention-global-to-local.nrrd"}
# Every heat map `stage` writes, the default (evidence) first.
OVERLAY_FILES = {"evidence": EVIDENCE_FILE, **ATTENTION_FILES}
DICOM_FILES = ("thrombus-seg.dcm", "stage-sr.dcm")
# result.json's list of the files still to come, in the file written once the stage is known (absent when
# the run is complete: a run that was cancelled or failed after its answer leaves it in place).
PENDING = "pending"
# Everything `stage` may write; none of it is replaced without --overwrite.
STAGE_OUTPUTS = (RESULT_FILE, *OVERLAY_FILES.values(), ROIS_FILE, REPORT_FILE, *DICOM_FILES)


@dataclass
class SliceResult:
    index: int
    probabilities: dict[str, float]


@dataclass
class RoiResult:
    name: str
    stage: str
    probabilities: dict[str, float]
    slice_axis: str = "k"
    slices: list[SliceResult] = field(default_factory=list)
    thrombus_muscle_ratio: float | None = None
    reason: str | None = None              # why the stage is indeterminate


@dataclass
class StageResult:
    folder: Path
    stage: str
    probabilities: dict[str, float]
    rois: list[RoiResult]
    model: dict
    device: str
    timings: dict
    input: dict
    reason: str | None = None
    pending: list[str] = field(default_factory=list)   # outputs not written yet (the answer came first)

    def attention_path(self, which: str = "evidence") -> Path | None:
        """The overlay file of one heat map (evidence or a cross-attention map); None if not written."""
        if which not in OVERLAY_FILES:
            raise ValueError(f"unknown map '{which}' (use {', '.join(OVERLAY_FILES)})")
        path = self.folder / OVERLAY_FILES[which]
        return path if path.is_file() else None

    @property
    def rois_path(self) -> Path:
        return self.folder / ROIS_FILE

    def table_rows(self) -> list[dict]:
        """One row per ROI, the columns of the results table."""
        return [{"name": r.name, "stage": r.stage, "reason": r.reason or "",
                 **{f"p_{c}": r.probabilities.get(c, math.nan) for c in STAGES},
                 "thrombus_muscle_ratio": math.nan if r.thrombus_muscle_ratio is None else r.thrombus_muscle_ratio}
                for r in self.rois]


# Reading result.json is validated by hand: a clear message instead of a KeyError deep in the GUI.
def _probabilities(value, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not all(c in value for c in STAGES):
        raise InputFileError(f"{where}: 'probabilities' must give {', '.join(STAGES)}")
    try:
        return {c: float(value[c]) for c in STAGES}
    except (TypeError, ValueError):
        raise InputFileError(f"{where}: probabilities must be numbers") from None


def _stage(value, where: str) -> str:
    if value not in (*STAGES, INDETERMINATE):
        raise InputFileError(f"{where}: stage '{value}' is not one of {', '.join(STAGES)}, {INDETERMINATE}")
    return value


def _roi_result(entry, where: str) -> RoiResult:
    if not isinstance(entry, dict) or "name" not in entry:
        raise InputFileError(f"{where}: each ROI result needs a 'name'")
    where = f"{where} ROI '{entry['name']}'"
    axis = entry.get("slice_axis", "k")
    if axis not in ("i", "j", "k"):
        raise InputFileError(f"{where}: slice_axis must be i, j or k, not '{axis}'")
    slices = []
    for s in entry.get("slices") or []:
        if not isinstance(s, dict) or "index" not in s:
            raise InputFileError(f"{where}: each slice needs an 'index'")
        slices.append(SliceResult(int(s["index"]), _probabilities(s.get("probabilities"), f"{where} slice {s['index']}")))
    ratio = entry.get("thrombus_muscle_ratio")
    return RoiResult(str(entry["name"]), _stage(entry.get("stage"), where),
                     _probabilities(entry.get("probabilities"), where), axis, slices,
                     None if ratio is None else float(ratio), entry.get("reason"))


def read_stage_result(folder) -> StageResult:
    """The result.json of a `dvt-staging stage` output folder, checked against schema result@1."""
    folder = Path(folder)
    path = folder / RESULT_FILE
    data = read_json(path, missing=f"{folder} holds no {RESULT_FILE}: the staging run wrote no result")
    if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
        raise InputFileError(f"{path} is not a staging result (schema {RESULT_SCHEMA})")
    rois = [_roi_result(e, str(path)) for e in data.get("rois") or []]
    return StageResult(folder, _stage(data.get("stage"), str(path)), _probabilities(data.get("probabilities"), str(path)),
                       rois, dict(data.get("model") or {}), str(data.get("device", "")),
                       dict(data.get("timings") or {}), dict(data.get("input") or {}), data.get("reason"),
                       [str(n) for n in data.get(PENDING) or []])
