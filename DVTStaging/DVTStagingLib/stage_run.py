"""One staging run as the Slicer module does it: inputs to files, the CLI command, outputs read back.

The module never imports the model: it writes the study and its ROIs into a
job folder, runs `dvt-staging stage` in a background process and reads what
that writes (`result.json`, attention volumes, `rois.mrk.json`).  This file
holds the MRML-free half of that round trip, so it is testable without Slicer.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputFileError
from .roi import BoxROI, write_rois
from .volume import Volume, write_volume
from .json_files import read_json

RESULT_SCHEMA = "dvt-staging/result@1"
CLASSES = ("acute", "subacute", "chronic")
CLASS_TITLES = {"acute": "Acute", "subacute": "Sub-acute", "chronic": "Chronic"}
# Which attention map: queries of the local (thrombus) branch over the global slice, or the reverse.
ATTENTION_FILES = {"local-to-global": "attention.nrrd", "global-to-local": "attention-global-to-local.nrrd"}
INPUT_IMAGE = "input.nrrd"
INPUT_ROIS = "input-rois.mrk.json"
OUTPUT_FOLDER = "out"
DEVICES = ("auto", "cuda", "cpu")


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

    def attention_path(self, which: str = "local-to-global") -> Path | None:
        if which not in ATTENTION_FILES:
            raise ValueError(f"unknown attention map '{which}' (use {', '.join(ATTENTION_FILES)})")
        path = self.folder / ATTENTION_FILES[which]
        return path if path.is_file() else None

    @property
    def rois_path(self) -> Path:
        return self.folder / "rois.mrk.json"

    def table_rows(self) -> list[dict]:
        """One row per ROI, the columns of the results table."""
        return [{"name": r.name, "stage": r.stage,
                 **{f"p_{c}": r.probabilities.get(c, math.nan) for c in CLASSES},
                 "thrombus_muscle_ratio": math.nan if r.thrombus_muscle_ratio is None else r.thrombus_muscle_ratio}
                for r in self.rois]


# ---------------------------------------------------------------------------------------------
# Reading result.json (validated: a clear message instead of a KeyError deep in the GUI)
# ---------------------------------------------------------------------------------------------
def _probabilities(value, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not all(c in value for c in CLASSES):
        raise InputFileError(f"{where}: 'probabilities' must give {', '.join(CLASSES)}")
    try:
        return {c: float(value[c]) for c in CLASSES}
    except (TypeError, ValueError):
        raise InputFileError(f"{where}: probabilities must be numbers") from None


def _stage(value, where: str) -> str:
    if value not in CLASSES:
        raise InputFileError(f"{where}: stage '{value}' is not one of {', '.join(CLASSES)}")
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
                     None if ratio is None else float(ratio))


def read_stage_result(folder) -> StageResult:
    """The `result.json` of a `dvt-staging stage` output folder, checked against schema result@1."""
    folder = Path(folder)
    path = folder / "result.json"
    data = read_json(path, missing=f"{folder} holds no result.json: the staging run wrote no result")
    if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
        raise InputFileError(f"{path} is not a staging result (schema {RESULT_SCHEMA})")
    rois = [_roi_result(e, str(path)) for e in data.get("rois") or []]
    return StageResult(folder, _stage(data.get("stage"), str(path)), _probabilities(data.get("probabilities"), str(path)),
                       rois, dict(data.get("model") or {}), str(data.get("device", "")),
                       dict(data.get("timings") or {}), dict(data.get("input") or {}))


# ---------------------------------------------------------------------------------------------
# The job folder and the commands
# ---------------------------------------------------------------------------------------------
def new_job_folder(parent: str | os.PathLike | None = None) -> Path:
    return Path(tempfile.mkdtemp(prefix="dvt-staging-", dir=parent))


def write_stage_inputs(folder: Path, volume: Volume, rois: list[BoxROI] | None) -> tuple[Path, Path | None]:
    """The study (exact geometry) and its ROIs as the CLI reads them."""
    folder = Path(folder)
    image = write_volume(volume, folder / INPUT_IMAGE, compress=False)   # speed over size: a temp file
    roi_path = write_rois(folder / INPUT_ROIS, rois) if rois else None
    return image, roi_path


def cli_prefix(python: str | None = None) -> list[str]:
    """`python -m DVTStagingLib` (the package's __main__ runs the CLI); in Slicer python is PythonSlicer."""
    return [python or sys.executable, "-m", "DVTStagingLib"]


def stage_command(image, out, roi=None, auto_roi: bool = False, model: str | None = None, device: str = "auto",
                  prefix: list[str] | None = None) -> list[str]:
    """`dvt-staging stage ...`; `prefix` is how to start the CLI (default `cli_prefix()`)."""
    if roi is None and not auto_roi:
        raise ValueError("stage needs ROIs: give roi or auto_roi=True")
    if roi is not None and auto_roi:
        raise ValueError("give roi or auto_roi=True, not both")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    argv = list(prefix or cli_prefix()) + ["stage", str(image)]
    argv += ["--auto-roi"] if roi is None else ["--roi", str(roi)]
    argv += ["--out", str(out), "--device", device]   # a fresh folder: no --overwrite needed
    if model:
        argv += ["--model", str(model)]
    return argv


def detect_command(image, out, device: str = "auto", prefix: list[str] | None = None) -> list[str]:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    return list(prefix or cli_prefix()) + ["detect", str(image), "--out", str(out), "--device", device]


def cli_environment(base: dict | None = None) -> dict:
    """Environment for the child: it must find DVTStagingLib even where it is not installed (Slicer)."""
    env = dict(os.environ if base is None else base)
    module_dir = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([module_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")   # progress lines arrive as they are written
    return env
