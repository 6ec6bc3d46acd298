"""The labeled-case dataset format (docs/dataset-format.md): ``dataset.json`` plus one folder per case.

``dataset.json`` (schema ``dvt-staging/dataset@1``) lists the class names and
the cases.  Each case names its image, its tissue/thrombus segmentation, its
ROI files (Slicer markups JSON; every ROI has a unique name in the case) and
one label record per ROI: ``{"roi": <ROI name>, "stage": <class>}``.  Paths
are relative to the dataset root.  See ``docs/dataset-format.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.errors import InputFileError, UserError
from ..core.files import sha256_of, write_json_atomic
from ..core.stages import STAGES

SCHEMA = "dvt-staging/dataset@1"
CLASSES = STAGES   # a dataset's default class list
SPLITS = ("train", "val", "test", "unassigned")
STATUSES = ("new", "staged", "labeled", "reviewed")


def load_json_schema(name: str) -> dict:
    return json.loads(resources.files("DVTStagingLib").joinpath("schemas", name).read_text(encoding="utf-8"))


@dataclass
class Case:
    id: str
    image: str
    rois: list[str]
    labels: list[dict]
    split: str = "unassigned"
    segmentation: str | None = None
    status: str = "labeled"
    extra: dict = field(default_factory=dict)   # patient, annotator, reviewer, truth, prediction, notes ...

    def stage_of(self, roi_name: str) -> str | None:
        for label in self.labels:
            if label["roi"] == roi_name:
                return label.get("stage")
        return None

    def to_json(self) -> dict:
        out = {"id": self.id, "image": self.image, "segmentation": self.segmentation, "rois": self.rois,
               "labels": self.labels, "split": self.split, "status": self.status}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Case":
        known = {"id", "image", "segmentation", "rois", "labels", "split", "status"}
        return cls(
            id=data["id"], image=data["image"], rois=list(data["rois"]), labels=[dict(x) for x in data["labels"]],
            split=data.get("split", "unassigned"), segmentation=data.get("segmentation"),
            status=data.get("status", "labeled"), extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass
class Dataset:
    root: Path
    cases: list[Case]
    classes: tuple[str, ...] = CLASSES
    meta: dict = field(default_factory=dict)     # name, description, source, deidentified, created

    def path(self, relative: str) -> Path:
        return self.root / relative

    def split(self, name: str) -> list[Case]:
        return [c for c in self.cases if c.split == name]

    def provenance(self) -> dict:
        """What a model card records of its training data: the dataset itself, never where it lay on disk."""
        doc = self.root / "dataset.json"
        return {"dataset": self.meta.get("name", self.root.name), "folder": self.root.name,
                "dataset_json_sha256": sha256_of(doc) if doc.is_file() else None,
                "source": self.meta.get("source", {}), "cases": len(self.cases),
                "splits": {s: len(self.split(s)) for s in SPLITS if self.split(s)}}

    def to_json(self) -> dict:
        out = {"schema": SCHEMA}
        out.update(self.meta)
        out["classes"] = list(self.classes)
        out["cases"] = [c.to_json() for c in self.cases]
        return out


def write_dataset_json(dataset: Dataset) -> Path:
    """Write ``dataset.json`` atomically (a crash never leaves half a file)."""
    dataset.root.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(dataset.root / "dataset.json", dataset.to_json())


def _schema_problems(doc) -> list[str]:
    import jsonschema  # only validating needs it: reading a dataset does not

    validator = jsonschema.Draft202012Validator(load_json_schema("dataset.schema.json"))
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{where}: {error.message}")
    return problems


def _semantic_problems(doc: dict, root: Path) -> list[str]:
    problems = []
    classes = doc["classes"]
    seen_ids = set()
    for index, case in enumerate(doc["cases"]):
        cid = case["id"]
        where = f"case {cid}"
        if cid in seen_ids:
            problems.append(f"{where}: duplicate case id")
        seen_ids.add(cid)
        files = [case["image"], *case["rois"]]
        if case.get("segmentation"):
            files.append(case["segmentation"])
        for rel in files:
            if not (root / rel).is_file():
                problems.append(f"{where}: missing file {rel}")
        label_names = [label["roi"] for label in case["labels"]]
        if len(set(label_names)) != len(label_names):
            problems.append(f"{where}: an ROI has more than one label record")
        for label in case["labels"]:
            stage = label.get("stage")
            if stage is not None and stage not in classes:
                problems.append(f"{where}: ROI '{label['roi']}' has stage '{stage}', not one of {classes}")
            if stage is None and case.get("status") in ("labeled", "reviewed"):
                problems.append(f"{where}: status is {case['status']} but ROI '{label['roi']}' has no stage")
    return problems


def _deep_problems(dataset: Dataset) -> list[str]:
    """Open every file: images, segmentations and ROIs must agree with each other."""
    from .roi import read_rois
    from .segmentation import read_segmentation
    from .volume import read_volume

    problems = []
    for case in dataset.cases:
        where = f"case {case.id}"
        try:
            volume = read_volume(dataset.path(case.image))
        except UserError as exc:
            problems.append(f"{where}: {exc}")
            continue
        rois = []
        for rel in case.rois:
            try:
                rois.extend(read_rois(dataset.path(rel)))
            except UserError as exc:
                problems.append(f"{where}: {exc}")
        names = [r.name for r in rois]
        if len(set(names)) != len(names):
            problems.append(f"{where}: ROI names are not unique: {names}")
        labelled = {label["roi"] for label in case.labels}
        for name in sorted(set(names) - labelled):
            problems.append(f"{where}: ROI '{name}' has no label record")
        for name in sorted(labelled - set(names)):
            problems.append(f"{where}: label record for ROI '{name}', which no ROI file defines")
        for roi in rois:
            if roi.fraction_inside(volume) <= 0:
                problems.append(f"{where}: ROI '{roi.name}' lies outside the image")
        if case.segmentation:
            try:
                seg = read_segmentation(dataset.path(case.segmentation))
            except UserError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if not seg.same_grid(volume):
                problems.append(f"{where}: segmentation grid differs from the image grid")
                continue
            thrombus = seg.find_mask("thrombus")
            if thrombus is not None and thrombus.any():
                covered = np.zeros_like(thrombus)
                for roi in rois:
                    covered |= roi.voxel_mask(volume)
                outside = int(np.count_nonzero(thrombus & ~covered))
                if outside:
                    problems.append(f"{where}: {outside} thrombus voxels lie outside every ROI")
    return problems


def read_dataset_doc(root: Path) -> dict:
    path = root / "dataset.json"
    if not root.exists():
        raise InputFileError(f"no such dataset folder: {root}")
    if not path.is_file():
        raise InputFileError(f"{root} has no dataset.json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise InputFileError(f"{path} has schema {found!r}; expected {SCHEMA!r}")
    return doc


def validate_dataset(root: str | os.PathLike, deep: bool = True) -> list[str]:
    """All problems found in a dataset folder (empty list: valid)."""
    root = Path(root)
    doc = read_dataset_doc(root)
    problems = _schema_problems(doc)
    if problems:
        return problems
    problems = _semantic_problems(doc, root)
    if problems or not deep:
        return problems
    return _deep_problems(_dataset_from_doc(doc, root))


def _dataset_from_doc(doc: dict, root: Path) -> Dataset:
    meta = {k: v for k, v in doc.items() if k not in ("schema", "classes", "cases")}
    return Dataset(root, [Case.from_json(c) for c in doc["cases"]], tuple(doc["classes"]), meta)


def load_dataset(root: str | os.PathLike) -> Dataset:
    """Read and check a dataset (structure and files present; `validate_dataset` opens every file)."""
    root = Path(root)
    doc = read_dataset_doc(root)
    problems = _schema_problems(doc) or _semantic_problems(doc, root)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputFileError(f"{root / 'dataset.json'}: {problems[0]}{more}")
    return _dataset_from_doc(doc, root)


def stratified_splits(stages: list[str], seed: int, fractions=(0.6, 0.2, 0.2)) -> list[str]:
    """Train/val/test per item, the same share of each stage in every split (seeded)."""
    rng = np.random.default_rng(seed)
    out = [""] * len(stages)
    for stage in sorted(set(stages)):
        idx = [i for i, s in enumerate(stages) if s == stage]
        rng.shuffle(idx)
        n = len(idx)
        n_train = int(round(fractions[0] * n))
        n_val = int(round(fractions[1] * n))
        for rank, i in enumerate(idx):
            out[i] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return out
