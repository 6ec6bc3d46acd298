"""Export annotated studies as a labeled dataset (docs/dataset-format.md), and an nnU-Net view of it.

`export_cases` writes the `dvt-staging/dataset@1` format of `dataset.py`: one
folder per case (``cases/<id>/image.nrrd``, ``rois.mrk.json`` and, when a
thrombus mask exists, ``thrombus.seg.nrrd``) and a root ``dataset.json``.

De-identification (the default): case ids are pseudonyms, ``case-`` plus the
first 12 hex digits of sha256(salt + source id), so re-exporting a study gives
the same id; the patient key is a pseudonym of the DICOM PatientID the same
way (so `dataset split` keeps a patient's studies together).  Images are
written from metadata-free copies of the voxels and geometry: no DICOM tag,
file path or patient name reaches a file name, a header or ``dataset.json``.
With ``keep_identifiers=True`` a case keeps ``patient`` (the original
PatientID) and ``dicom`` (the DICOM tags read with the series) for internal use.

Atomicity: each case is written into a hidden temporary folder inside the
output folder and renamed into place when complete; ``dataset.json`` and
``manifest.json`` (sha256 of every file of every case) are rewritten
atomically after each case.  A crash at any moment leaves a valid dataset with
the cases finished so far.  Exporting a case id that is already there is
refused unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import InputFileError, UserError
from ..core.files import sha256_of, write_json_atomic
from ..core.json_files import read_json
from ..core.progress import Progress, status
from ..core.stages import STAGES
from ..io.dataset import CLASSES, SCHEMA, Case, Dataset, load_dataset, write_dataset_json
from ..io.roi import BoxROI, write_rois
from ..io.segmentation import THROMBUS, THROMBUS_SEGMENT, write_segmentation
from ..io.volume import Volume, write_volume
from .annotation import study_status

MANIFEST_SCHEMA = "dvt-staging/export-manifest@1"
DEFAULT_SALT = "dvt-staging-export"
TMP_PREFIX = ".export-tmp-"
OLD_PREFIX = ".export-old-"
IMAGE_NAME = "image.nrrd"
ROI_NAME = "rois.mrk.json"
SEG_NAME = "thrombus.seg.nrrd"


@dataclass
class ExportStudy:
    """One study to export: the image, its ROIs and labels, and where it came from."""

    volume: Volume
    rois: list[BoxROI]
    labels: list[dict] = field(default_factory=list)   # {"roi": name, "stage": class or None, "reviewer"?: str}
    status: str | None = None                         # None: derived from labels / reviewed
    annotator: str = ""
    reviewer: str = ""
    thrombus_mask: np.ndarray | None = None           # [k, j, i] bool on the volume grid
    prediction: dict | None = None                    # result.json content, or {roi name: {stage, probabilities}}
    source_id: str = ""                               # e.g. PatientID/SeriesInstanceUID, or the file path
    notes: str = ""
    split: str = "unassigned"


def pseudonym(prefix: str, salt: str | None, value: str) -> str:
    digest = hashlib.sha256(((DEFAULT_SALT if salt is None else salt) + value).encode("utf-8")).hexdigest()
    return f"{prefix}{digest[:12]}"


def source_id_of(volume: Volume, fallback: str) -> str:
    """PatientID/SeriesInstanceUID for a DICOM series, else `fallback` (e.g. the file path)."""
    tags = volume.metadata.get("dicom") or {}
    if tags.get("SeriesInstanceUID"):
        return f"{tags.get('PatientID', '')}/{tags['SeriesInstanceUID']}"
    return fallback


def _condensed_prediction(prediction: dict | None) -> dict | None:
    """The model's call at export time, without paths, timings or anything else from the result file."""
    if not prediction:
        return None
    if "rois" in prediction and isinstance(prediction["rois"], list):     # a result.json
        out = {k: prediction[k] for k in ("stage", "probabilities") if k in prediction}
        model = prediction.get("model") or {}
        if model:
            out["model"] = {k: model[k] for k in ("id", "version", "sha256") if k in model}
        out["rois"] = {str(r.get("name")): {k: r[k] for k in ("stage", "probabilities", "thrombus_muscle_ratio")
                                            if k in r}
                       for r in prediction["rois"]}
        return out
    return {"rois": {str(name): {k: v for k, v in (rec or {}).items()
                                 if k in ("stage", "probabilities", "thrombus_muscle_ratio")}
                     for name, rec in prediction.items()}}


def _labels(study: ExportStudy) -> list[dict]:
    given = {str(label["roi"]): label for label in study.labels}
    out = []
    for roi in study.rois:
        label = given.get(roi.name, {})
        stage = (label.get("stage") or "").strip().lower() or None
        if stage is not None and stage not in STAGES:
            raise UserError(f"ROI '{roi.name}' has stage '{stage}', not one of {', '.join(STAGES)}")
        record = {"roi": roi.name, "stage": stage}
        if label.get("side") in ("left", "right", "unknown"):
            record["side"] = label["side"]
        if label.get("reviewer"):
            record["reviewer"] = str(label["reviewer"])
        out.append(record)
    return out


def _status(study: ExportStudy, labels: list[dict]) -> str:
    labeled = bool(labels) and all(label["stage"] for label in labels)
    wanted = study.status or study_status(bool(study.prediction), labeled, False)
    if wanted in ("labeled", "reviewed") and not labeled:
        return "staged" if study.prediction else "new"    # the format needs a stage per ROI for these
    return wanted


def _case_id(study: ExportStudy, salt: str | None) -> str:
    if not study.source_id:
        raise UserError("every exported study needs a source id (to derive its stable case id)")
    return pseudonym("case-", salt, study.source_id)


def _write_case_files(study: ExportStudy, folder: Path) -> dict:
    """Write the case into `folder`; returns the file names (relative to the case folder)."""
    volume = study.volume
    clean = volume.with_array(np.ascontiguousarray(volume.array))   # no metadata: nothing identifying
    write_volume(clean, folder / IMAGE_NAME)
    names = [r.name for r in study.rois]
    if len(set(names)) != len(names):
        raise UserError(f"ROI names are not unique: {names}")
    write_rois(folder / ROI_NAME, study.rois)
    files = {"image": IMAGE_NAME, "rois": [ROI_NAME], "segmentation": None}
    if study.thrombus_mask is not None:
        mask = np.asarray(study.thrombus_mask).astype(bool)
        if mask.shape != volume.array.shape:
            raise UserError(f"thrombus mask shape {mask.shape} differs from the image {volume.array.shape}")
        covered = np.zeros_like(mask)
        for roi in study.rois:
            covered |= roi.voxel_mask(volume)
        outside = int(np.count_nonzero(mask & ~covered))
        if outside:     # the format keeps every thrombus voxel inside a ROI (docs/dataset-format.md)
            raise UserError(f"{outside} voxels of the thrombus segmentation lie outside every ROI of the study; "
                            "place a ROI around them or erase them, then export again")
        write_segmentation(folder / SEG_NAME, mask.astype(np.uint8) * THROMBUS, clean, segments=THROMBUS_SEGMENT)
        files["segmentation"] = SEG_NAME
    return files


def _case_record(study: ExportStudy, case_id: str, files: dict, keep_identifiers: bool, salt: str | None) -> Case:
    rel = f"cases/{case_id}"
    labels = _labels(study)
    extra = {}
    tags = study.volume.metadata.get("dicom") or {}
    if keep_identifiers:
        if tags.get("PatientID"):
            extra["patient"] = tags["PatientID"]
        extra["source"] = study.source_id
        if tags:
            extra["dicom"] = dict(tags)
    elif tags.get("PatientID"):
        extra["patient"] = pseudonym("patient-", salt, tags["PatientID"])
    if study.annotator:
        extra["annotator"] = study.annotator
    if study.reviewer:
        extra["reviewer"] = study.reviewer
    if study.notes:
        extra["notes"] = study.notes
    prediction = _condensed_prediction(study.prediction)
    if prediction:
        extra["prediction"] = prediction
    return Case(id=case_id, image=f"{rel}/{files['image']}", rois=[f"{rel}/{r}" for r in files["rois"]],
                labels=labels, split=study.split, status=_status(study, labels),
                segmentation=f"{rel}/{files['segmentation']}" if files["segmentation"] else None, extra=extra)


def _read_manifest(root: Path) -> dict:
    path = root / "manifest.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("schema") == MANIFEST_SCHEMA:
                return doc
        except (OSError, ValueError):
            pass
    return {"schema": MANIFEST_SCHEMA, "algorithm": "sha256", "cases": {}}


def _open_dataset(root: Path, keep_identifiers: bool) -> Dataset:
    if (root / "dataset.json").is_file():
        dataset = load_dataset(root)
        if dataset.meta.get("deidentified", True) and keep_identifiers and dataset.cases:
            raise UserError(f"{root} holds a de-identified export; export with identifiers into another folder")
        if dataset.meta.get("deidentified") is False and not keep_identifiers:
            raise UserError(f"{root} holds an export with identifiers; a de-identified export needs another folder")
        dataset.meta["deidentified"] = not keep_identifiers
        return dataset
    return Dataset(root, [], CLASSES, {"name": "DVTStaging export", "deidentified": not keep_identifiers,
                                       "source": {"generator": "dvt-staging export"}})


def export_cases(studies: list[ExportStudy], out_root, keep_identifiers: bool = False, overwrite: bool = False,
                 salt: str | None = None, progress: bool = True) -> Dataset:
    """Export studies into the dataset folder `out_root` (created or extended); returns the dataset."""
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} is a file, not a folder")
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(TMP_PREFIX + "*"):     # left by an export that was killed
        shutil.rmtree(stale, ignore_errors=True)
    dataset = _open_dataset(root, keep_identifiers)
    manifest = _read_manifest(root)

    ids = [_case_id(s, salt) for s in studies]
    if len(set(ids)) != len(ids):
        raise UserError("the same study is given more than once")
    existing = {c.id for c in dataset.cases}
    clash = [i for i in ids if i in existing or (root / "cases" / i).exists()]
    if clash and not overwrite:
        raise UserError(f"{root} already holds case {clash[0]}"
                        f"{f' (and {len(clash) - 1} more)' if len(clash) > 1 else ''}; pass --overwrite to replace")

    bar = Progress("export", len(studies), enabled=progress)
    (root / "cases").mkdir(exist_ok=True)
    for study, case_id in zip(studies, ids):
        tmp = root / f"{TMP_PREFIX}{case_id}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            files = _write_case_files(study, tmp)
            case = _case_record(study, case_id, files, keep_identifiers, salt)
            hashes = {f"cases/{case_id}/{p.name}": sha256_of(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            final = root / "cases" / case_id
            old = None
            if final.exists():
                old = root / f"{OLD_PREFIX}{case_id}-{uuid.uuid4().hex[:8]}"
                os.replace(final, old)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        dataset.cases = [c for c in dataset.cases if c.id != case_id] + [case]
        write_dataset_json(dataset)
        manifest["cases"][case_id] = hashes
        write_json_atomic(root / "manifest.json", manifest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        bar.update()
    return dataset


def verify_manifest(root) -> list[str]:
    """Files whose sha256 differs from manifest.json (empty: all match)."""
    root = Path(root)
    manifest = _read_manifest(root)
    problems = []
    for case_id, files in manifest["cases"].items():
        for rel, digest in files.items():
            path = root / rel
            if not path.is_file():
                problems.append(f"case {case_id}: missing {rel}")
            elif sha256_of(path) != digest:
                problems.append(f"case {case_id}: {rel} differs from its manifest sha256")
    return problems


# ---------------------------------------------------------------------------
# Reading study folders (the CLI's input)
# ---------------------------------------------------------------------------
def _find_image(folder: Path, image_name: str | None) -> Path:
    if image_name:
        path = folder / image_name
        if not path.exists():
            raise InputFileError(f"{folder} has no {image_name}")
        return path
    for name in ("image.nrrd", "image.nii.gz", "dicom"):
        if (folder / name).exists():
            return folder / name
    raise InputFileError(f"{folder} has no image.nrrd, image.nii.gz or dicom folder (use --image-name)")


def read_study_folder(folder, image_name: str | None = None, image_path=None) -> ExportStudy:
    """A study folder: image, *.mrk.json ROIs, optional annotation.json, result.json, thrombus.seg.nrrd.
    `image_path`: the image lives elsewhere (a worklist's case folder holds everything but the image)."""
    from ..io.roi import read_rois
    from ..io.segmentation import read_segmentation
    from ..io.volume import read_volume
    from .annotation import read_annotation

    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"no such study folder: {folder}")
    image = Path(image_path) if image_path is not None else _find_image(folder, image_name)
    volume = read_volume(image)
    rois = [r for path in sorted(folder.glob("*.mrk.json")) for r in read_rois(path)]
    if not rois:
        raise InputFileError(f"{folder} has no ROI file (*.mrk.json)")
    annotation = read_annotation(folder / "annotation.json") if (folder / "annotation.json").is_file() else None
    prediction = read_json(folder / "result.json") if (folder / "result.json").is_file() else None
    if prediction is None and annotation is not None and annotation.predicted_stages:
        prediction = {name: {"stage": stage} for name, stage in annotation.predicted_stages.items()}
    mask = None
    if (folder / SEG_NAME).is_file():
        seg = read_segmentation(folder / SEG_NAME)
        if seg.labelmap.any() and not seg.same_grid(volume):
            raise InputFileError(f"{folder / SEG_NAME} is not on the image grid")
        mask = seg.find_mask("thrombus") if seg.labelmap.any() else None   # Slicer writes an empty one as 1 voxel
    stages = annotation.true_stages if annotation else {}
    labels = [{"roi": r.name, "stage": stages.get(r.name) or None} for r in rois]
    study_state = None
    if annotation is not None:
        labeled = bool(labels) and all(label["stage"] for label in labels)
        study_state = study_status(bool(prediction), labeled, annotation.reviewed and labeled)
    return ExportStudy(volume=volume, rois=rois, labels=labels, status=study_state,
                       annotator=annotation.annotator if annotation else "",
                       thrombus_mask=mask, prediction=prediction, notes=annotation.notes if annotation else "",
                       source_id=source_id_of(volume, str(image.resolve())))


def read_worklist_studies(folder, all_studies: bool = False) -> list[ExportStudy]:
    """The studies of a worklist folder (what the Slicer worklist saved beside them: ROIs, labels, thrombus
    segmentation, last result) as export studies: the labeled and reviewed ones, or every one with ROIs."""
    from .worklist import LABELED, Worklist

    worklist = Worklist.from_folder(folder)
    studies = []
    for entry in worklist.entries:
        if worklist.saved_rois(entry) is None or not (all_studies or worklist.status(entry) in LABELED):
            continue
        studies.append(read_study_folder(worklist.case_folder(entry), image_path=entry.path))
    if not studies:
        raise UserError(f"{folder}: no {'study with ROIs' if all_studies else 'labeled study'} saved by the "
                        "Slicer worklist")
    return studies


# ---------------------------------------------------------------------------
# nnU-Net v2 raw-dataset view
# ---------------------------------------------------------------------------
def export_nnunet(root, out, overwrite: bool = False, progress: bool = True) -> dict:
    """imagesTr/labelsTr (NIfTI) and dataset.json of the cases with a thrombus segmentation."""
    from ..io.segmentation import read_segmentation
    from ..io.volume import read_volume

    dataset = load_dataset(root)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if (out / "dataset.json").exists() and not overwrite:
        raise UserError(f"{out} already holds an nnU-Net dataset; pass --overwrite or choose another --out")
    cases = [c for c in dataset.cases if c.segmentation]
    bar = Progress("nnunet", max(len(cases), 1), enabled=progress)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    written = []
    for case in cases:
        seg = read_segmentation(dataset.path(case.segmentation))
        mask = seg.find_mask("thrombus")
        bar.update()
        if mask is None:
            continue
        volume = read_volume(dataset.path(case.image))
        clean = volume.with_array(volume.array)
        name = case.id.replace(".", "_")
        write_volume(clean, out / "imagesTr" / f"{name}_0000.nii.gz")
        write_volume(clean.with_array(mask.astype(np.uint8)), out / "labelsTr" / f"{name}.nii.gz")
        written.append(name)
    if not written:
        raise UserError(f"{root}: no case has a thrombus segmentation")
    doc = {"name": dataset.meta.get("name", "DVTStaging thrombus"), "channel_names": {"0": "BTI"},
           "labels": {"background": 0, "thrombus": 1}, "numTraining": len(written), "file_ending": ".nii.gz",
           "description": "thrombus masks exported by dvt-staging", "source_schema": SCHEMA}
    write_json_atomic(out / "dataset.json", doc)
    status(f"nnunet: {len(written)} cases in {out}")
    return doc
