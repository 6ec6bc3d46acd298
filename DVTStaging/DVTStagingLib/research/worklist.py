"""The annotator's worklist: the studies of a folder (or DICOM database), each with its status.

Status runs new -> staged -> labeled -> reviewed (see `annotation.study_status`).
What was done to a study is kept beside it, in `<folder>/.dvt-staging/`:
`cases/<study>/annotation.json` (labels, reviewed, notes), the ROIs, the
thrombus segmentation and the staging result, so labels go with the case and
survive closing the scene.

The studies are listed in folder order, or "uncertain first" (`uncertain_first`): the unlabeled studies the
model is least sure about come first, so that an annotator's time goes where the model needs labels.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputFileError, UserError
from ..core.files import is_dicom_file
from ..core.json_files import read_json
from ..core.stages import INDETERMINATE
from ..io.dataset import STATUSES
from ..io.roi import BoxROI, write_rois
from .annotation import CaseAnnotation, read_annotation, write_annotation

STATE_FOLDER = ".dvt-staging"
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
# Files that sit beside studies but are not studies: our outputs, segmentations, labelmaps.
NOT_A_STUDY = re.compile(r"(^attention.*\.nrrd$|\.seg\.nrrd$|(^|[-_.])label(map)?s?\.|^tissues\.)", re.IGNORECASE)
RESULT_FILE = "result.json"
ROIS_FILE = "rois.mrk.json"
SEGMENTATION_FILE = "thrombus.seg.nrrd"
FOLDER_ORDER, UNCERTAIN_FIRST = "folder", "uncertain"
ORDERS = (FOLDER_ORDER, UNCERTAIN_FIRST)
LABELED = ("labeled", "reviewed")


@dataclass(frozen=True)
class StudyEntry:
    id: str            # stable key: path relative to the worklist folder, or a DICOM series UID
    name: str          # what the panel shows
    path: Path | None  # a volume file or DICOM folder; None for DICOM-database series
    kind: str = "file"  # "file", "dicom-folder" or "dicom-series"


def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(VOLUME_SUFFIXES) and not NOT_A_STUDY.search(name)


def _has_dicom(folder: Path) -> bool:
    return any(p.is_file() and (p.suffix.lower() == ".dcm" or is_dicom_file(p)) for p in folder.iterdir())


def find_studies(folder) -> list[StudyEntry]:
    """Volume files and DICOM series folders under `folder` (hidden folders skipped), in path order."""
    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(f"worklist folder {root} does not exist")
    entries: list[StudyEntry] = []

    def visit(current: Path):
        children = sorted(current.iterdir())
        if current != root and _has_dicom(current):
            rel = current.relative_to(root).as_posix()
            entries.append(StudyEntry(rel, rel, current, "dicom-folder"))
            return
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir():
                visit(child)
            elif _is_volume_file(child):
                rel = child.relative_to(root).as_posix()
                entries.append(StudyEntry(rel, rel, child, "file"))

    visit(root)
    return entries


def _case_key(study_id: str) -> str:
    """A folder name for a study id: readable, unique (hash suffix), no path separators."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", study_id).strip("._")[:60] or "study"
    return f"{readable}-{hashlib.sha1(study_id.encode('utf-8')).hexdigest()[:8]}"


def result_entropy(result: dict) -> float:
    """Shannon entropy of a result's study probabilities, normalised to 0 (certain) - 1 (uniform)."""
    probs = np.array([float(v) for v in (result.get("probabilities") or {}).values()], dtype=float)
    probs = probs[probs > 0]
    if probs.size < 2:
        return 0.0 if probs.size else 1.0
    probs = probs / probs.sum()
    n = len(result.get("probabilities"))
    return float(-(probs * np.log(probs)).sum() / math.log(n))


def uncertain_first(studies: list[tuple[StudyEntry, str, dict | None]]) -> list[StudyEntry]:
    """The studies, given in folder order as (entry, status, last result or None), ordered for labeling:
    unlabeled ones first (indeterminate results first, then by the entropy of the study probabilities, highest
    first, then those without a result yet), labeled and reviewed ones after; ties keep the folder order."""
    def key(numbered):
        n, (_, status, result) = numbered
        if status in LABELED:
            return (3, 0.0, n)
        if result is None:
            return (2, 0.0, n)
        return (0 if result.get("stage") == INDETERMINATE else 1, -result_entropy(result), n)

    return [entry for _, (entry, _, _) in sorted(enumerate(studies), key=key)]


class Worklist:
    """Ordered studies, a current position and each study's saved annotation."""

    def __init__(self, entries: list[StudyEntry], state_root):
        self.entries = list(entries)
        self.folder_entries = list(entries)     # the order they were found in
        self.state_root = Path(state_root)
        self.index = 0 if self.entries else -1
        self.order = FOLDER_ORDER

    @classmethod
    def from_folder(cls, folder) -> "Worklist":
        entries = find_studies(folder)
        if not entries:
            raise UserError(f"{folder} holds no studies (volume files or DICOM series folders)")
        return cls(entries, Path(folder) / STATE_FOLDER)

    # -- position ------------------------------------------------------------------------
    @property
    def current(self) -> StudyEntry | None:
        return self.entries[self.index] if 0 <= self.index < len(self.entries) else None

    def go_to(self, study_id: str) -> StudyEntry:
        for n, entry in enumerate(self.entries):
            if entry.id == study_id:
                self.index = n
                return entry
        raise KeyError(f"study {study_id} is not in the worklist")

    def next(self) -> StudyEntry | None:
        """The following study (None at the end; the position stays)."""
        if self.index + 1 >= len(self.entries):
            return None
        self.index += 1
        return self.current

    def previous(self) -> StudyEntry | None:
        if self.index <= 0:
            return None
        self.index -= 1
        return self.current

    def sort(self, order: str | None = None) -> None:
        """List the studies in `order` (FOLDER_ORDER or UNCERTAIN_FIRST; None: the last one asked for again, with
        the results saved since); the current study stays current."""
        order = order or self.order
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        current = self.current
        if order == UNCERTAIN_FIRST:
            self.entries = uncertain_first([(e, self.status(e), self.last_result(e)) for e in self.folder_entries])
        else:
            self.entries = list(self.folder_entries)
        self.order = order
        if current is not None:
            self.index = self.entries.index(current)

    def next_unfinished(self) -> StudyEntry | None:
        """The first study after the current one (wrapping) that is not reviewed yet."""
        n = len(self.entries)
        for step in range(1, n + 1):
            candidate = (self.index + step) % n
            if self.status(self.entries[candidate]) != "reviewed":
                self.index = candidate
                return self.current
        return None

    # -- saved state ---------------------------------------------------------------------
    def case_folder(self, entry: StudyEntry) -> Path:
        return self.state_root / "cases" / _case_key(entry.id)

    def annotation(self, entry: StudyEntry) -> CaseAnnotation:
        path = self.case_folder(entry) / "annotation.json"
        return read_annotation(path) if path.is_file() else CaseAnnotation()

    def status(self, entry: StudyEntry) -> str:
        try:
            return self.annotation(entry).status
        except InputFileError:
            return "new"    # a damaged label file must not hide the study; saving again repairs it

    def statuses(self) -> list[tuple[StudyEntry, str]]:
        return [(e, self.status(e)) for e in self.entries]

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for _, status in self.statuses():
            counts[status] += 1
        return counts

    def save(self, entry: StudyEntry, annotation: CaseAnnotation, rois: list[BoxROI] | None = None,
             result_folder=None, remove_segmentation: bool = False) -> Path:
        """Keep the study's labels (and ROIs, staging result) beside it; returns the case folder.  The thrombus
        segmentation is written into `segmentation_path(entry)` by its owner (Slicer writes its own .seg.nrrd);
        `remove_segmentation`: the study has none any more (the annotator deleted it)."""
        folder = self.case_folder(entry)
        folder.mkdir(parents=True, exist_ok=True)
        if rois is not None:
            if rois:
                write_rois(folder / ROIS_FILE, rois)
            else:
                (folder / ROIS_FILE).unlink(missing_ok=True)   # the annotator deleted them all
        if remove_segmentation:
            self.segmentation_path(entry).unlink(missing_ok=True)
        if result_folder is not None:
            for name in (RESULT_FILE, "report.png"):
                if (Path(result_folder) / name).is_file():
                    shutil.copyfile(Path(result_folder) / name, folder / name)
        write_annotation(folder / "annotation.json", annotation)
        return folder

    def save_result(self, entry: StudyEntry, result_folder) -> Path:
        """A staging run made without opening the study (the worklist's background staging): its result, and
        its ROIs when none were saved for the study, join the case; the labels already saved stay."""
        folder = self.case_folder(entry)
        folder.mkdir(parents=True, exist_ok=True)
        result_folder = Path(result_folder)
        result = read_json(result_folder / RESULT_FILE, name=f"staging result {result_folder / RESULT_FILE}")
        if self.saved_rois(entry) is None and (result_folder / ROIS_FILE).is_file():
            shutil.copyfile(result_folder / ROIS_FILE, folder / ROIS_FILE)
        try:
            annotation = self.annotation(entry)
        except InputFileError:
            annotation = CaseAnnotation()     # a damaged label file: saving repairs it
        annotation.predicted_stages = {str(r["name"]): str(r["stage"]) for r in result.get("rois", [])}
        for name in (RESULT_FILE, "report.png"):
            if (result_folder / name).is_file():
                shutil.copyfile(result_folder / name, folder / name)
        write_annotation(folder / "annotation.json", annotation)
        return folder

    def saved_rois(self, entry: StudyEntry) -> Path | None:
        path = self.case_folder(entry) / ROIS_FILE
        return path if path.is_file() else None

    def segmentation_path(self, entry: StudyEntry) -> Path:
        return self.case_folder(entry) / SEGMENTATION_FILE

    def saved_segmentation(self, entry: StudyEntry) -> Path | None:
        path = self.segmentation_path(entry)
        return path if path.is_file() else None

    def last_result(self, entry: StudyEntry) -> dict | None:
        """The study's last staging result (result.json content) saved in its case folder, else None."""
        path = self.case_folder(entry) / RESULT_FILE
        if not path.is_file():
            return None
        try:
            result = read_json(path, name=f"staging result {path}")
        except InputFileError:
            return None       # a damaged file counts as no result: the study is staged again
        return result if isinstance(result, dict) else None
