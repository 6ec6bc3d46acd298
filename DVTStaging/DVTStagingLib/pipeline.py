"""The user-level jobs behind `stage` and `demo`: inputs checked, work done, files written."""

from __future__ import annotations

from pathlib import Path

from .errors import InputFileError, UserError
from .progress import status
from .roi import BoxROI, read_rois, roi_names_unique
from .volume import Volume, read_volume

STAGE_OUTPUTS = ("result.json", "attention.nrrd", "rois.mrk.json", "report.png")


def check_image_content(volume: Volume, name: str) -> None:
    lo, hi = float(volume.array.min()), float(volume.array.max())
    if hi <= lo:
        raise InputFileError(f"{name} is constant (every voxel is {lo:g}); nothing to stage")


def load_rois_for(volume: Volume, roi_path: Path) -> list[BoxROI]:
    rois = roi_names_unique(read_rois(roi_path))
    for roi in rois:
        inside = roi.fraction_inside(volume)
        if inside <= 0:
            raise UserError(f"ROI '{roi.name}' in {roi_path} lies outside the volume")
        if inside < 0.999:
            status(f"warning: ROI '{roi.name}' extends beyond the volume; only its inside part is used")
    return rois


def prepare_output(out: Path, overwrite: bool, names=STAGE_OUTPUTS) -> Path:
    """Create the output folder; refuse to replace earlier results unless asked to."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds {', '.join(existing)}; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_stage_inputs(input_path: Path, roi_path: Path | None, auto_roi: bool) -> tuple[Volume, list[BoxROI] | None]:
    """Read and check the study and its ROIs (None: ROIs are to be detected)."""
    if roi_path is not None and auto_roi:
        raise UserError("give either --roi or --auto-roi, not both")
    if roi_path is None and not auto_roi:
        raise UserError("no thrombus ROI: give --roi FILE.mrk.json or --auto-roi")
    volume = read_volume(input_path)
    check_image_content(volume, str(input_path))
    rois = load_rois_for(volume, Path(roi_path)) if roi_path is not None else None
    return volume, rois


def stage_study(input_path, out, roi_path=None, auto_roi=False, model=None, device="auto", overwrite=False):
    volume, rois = load_stage_inputs(Path(input_path), roi_path, auto_roi)
    prepare_output(Path(out), overwrite)
    raise UserError("no staging model is installed yet; inputs are valid")


def write_demo_study(out: Path, seed: int, overwrite: bool):
    """A phantom study (one acute thrombus) with its true ROI and truth, under out/study."""
    from .phantom.study import make_study
    from .phantom.writer import write_study

    prepare_output(out, overwrite, names=("study",))
    study = make_study(seed, ["acute"])
    files = write_study(study, out / "study")
    return study, {k: (out / "study" / v if isinstance(v, str) else [out / "study" / f for f in v])
                   for k, v in files.items()}


def run_demo(out, seed=2024, model=None, device="auto", overwrite=False):
    out = Path(out)
    study, files = write_demo_study(out, seed, overwrite)
    status(f"demo: phantom study {files['image']} with {len(study.rois)} thrombus ROI(s)")
    volume, rois = load_stage_inputs(files["image"], files["rois"][0], auto_roi=False)
    status(f"demo: inputs valid ({volume.shape_ijk} voxels); staging arrives with the model (issue 3)")

