"""Labelmap segmentations as Slicer ``.seg.nrrd`` (read and written with slicerio).

Each segment carries a name, a colour and a DICOM/SNOMED terminology entry
so that Slicer's Segment Editor and DICOM SEG export know what it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicerio

from ..core.errors import InputFileError
from .volume import Volume

_CONTEXT = "Segmentation category and type - DICOM master list"
_ANATOMY = ("SCT", "123037004", "Anatomical Structure")
_TISSUE = ("SCT", "85756007", "Tissue")
_ALTERED = ("SCT", "49755003", "Morphologically Altered Structure")


@dataclass(frozen=True)
class SegmentInfo:
    label: int
    id: str
    name: str
    color: tuple[float, float, float]
    category: tuple[str, str, str]
    type: tuple[str, str, str]

    def slicerio_segment(self, extent=None) -> dict:
        seg = {
            "id": self.id,
            "name": self.name,
            "labelValue": self.label,
            "layer": 0,
            "color": list(self.color),
            "terminology": {"contextName": _CONTEXT, "category": list(self.category), "type": list(self.type)},
        }
        if extent is not None:
            seg["extent"] = extent
        return seg


# Label values of the phantom's tissue labelmap; also used for thrombus masks.
MUSCLE, FAT, BONE, VEIN, ARTERY, THROMBUS, EDEMA, VEIN_WALL, SKIN = range(1, 10)

TISSUE_SEGMENTS = (
    SegmentInfo(MUSCLE, "muscle", "Muscle", (0.75, 0.40, 0.34), _TISSUE, ("SCT", "91727004", "Muscle")),
    SegmentInfo(FAT, "fat", "Fat", (0.93, 0.86, 0.55), _TISSUE, ("SCT", "55603005", "Adipose tissue")),
    SegmentInfo(BONE, "bone", "Femur", (0.95, 0.95, 0.85), _ANATOMY, ("SCT", "71341001", "Femur")),
    SegmentInfo(VEIN, "vein_lumen", "Vein lumen", (0.0, 0.5, 1.0), _ANATOMY, ("SCT", "29092000", "Vein")),
    SegmentInfo(ARTERY, "artery", "Artery", (0.85, 0.1, 0.1), _ANATOMY, ("SCT", "51114001", "Artery")),
    SegmentInfo(THROMBUS, "thrombus", "Thrombus", (1.0, 0.55, 0.0), _ALTERED, ("SCT", "396339007", "Thrombus")),
    SegmentInfo(EDEMA, "edema", "Edema", (0.4, 0.9, 0.9), _ALTERED, ("SCT", "79654002", "Edema")),
    SegmentInfo(VEIN_WALL, "vein_wall", "Vein wall", (0.3, 0.3, 0.9), _ANATOMY, ("SCT", "29092000", "Vein")),
    SegmentInfo(SKIN, "skin", "Skin", (0.9, 0.75, 0.65), _ANATOMY, ("SCT", "39937001", "Skin")),
)

THROMBUS_SEGMENT = (TISSUE_SEGMENTS[THROMBUS - 1],)


@dataclass
class Segmentation:
    """A single-layer labelmap [k, j, i] on a volume grid, with its segment table."""

    labelmap: np.ndarray
    ijk_to_lps: np.ndarray
    segments: list[dict]

    def find_mask(self, name_or_id: str) -> np.ndarray | None:
        """Mask of the segment with this id or name (case-insensitive), or None."""
        wanted = name_or_id.lower()
        for seg in self.segments:
            if wanted in (str(seg.get("name", "")).lower(), str(seg.get("id", "")).lower()):
                return self.labelmap == int(seg["labelValue"])
        return None

    def mask(self, name_or_id: str) -> np.ndarray:
        found = self.find_mask(name_or_id)
        if found is None:
            names = ", ".join(str(s.get("name")) for s in self.segments)
            raise KeyError(f"no segment '{name_or_id}' (segments: {names})")
        return found

    def same_grid(self, volume: Volume, atol: float = 1e-4) -> bool:
        return self.labelmap.shape == volume.array.shape and np.allclose(self.ijk_to_lps, volume.ijk_to_lps, atol=atol)


def write_segmentation(path: str | os.PathLike, labelmap: np.ndarray, reference: Volume,
                       segments=TISSUE_SEGMENTS, compression_level: int = 1) -> Path:
    """Write a [k, j, i] labelmap on `reference`'s grid as a Slicer .seg.nrrd."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if labelmap.shape != reference.array.shape:
        raise ValueError(f"labelmap shape {labelmap.shape} differs from the reference {reference.array.shape}")
    seg_dict = {
        "voxels": np.ascontiguousarray(labelmap.astype(np.uint8)),
        "ijkToLPS": reference.ijk_to_lps,
        "segments": [],
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
    }
    present = set(np.unique(labelmap).tolist())
    for info in segments:
        extent = _segment_extent(labelmap, info.label) if info.label in present else None
        seg_dict["segments"].append(info.slicerio_segment(extent))
    # Slicer's convention for an empty segment: an inverted (empty) extent.
    for seg in seg_dict["segments"]:
        seg.setdefault("extent", [0, -1, 0, -1, 0, -1])
    tmp = path.with_name(path.name + ".tmp.nrrd")
    slicerio.write_segmentation(str(tmp), seg_dict, compression_level=compression_level, index_order="C")
    os.replace(tmp, path)
    return path


def _segment_extent(labelmap: np.ndarray, label: int) -> list[int]:
    k, j, i = np.nonzero(labelmap == label)
    return [int(i.min()), int(i.max()), int(j.min()), int(j.max()), int(k.min()), int(k.max())]


def read_segmentation(path: str | os.PathLike) -> Segmentation:
    """Read a .seg.nrrd into a single labelmap (overlapping layers are flattened, later layers win)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such segmentation file: {path}")
    try:
        seg = slicerio.read_segmentation(str(path))
    except Exception as exc:  # slicerio/pynrrd raise many types for a bad file
        raise InputFileError(f"{path} is not a readable .seg.nrrd ({exc.__class__.__name__}: {exc})") from None
    voxels = np.asarray(seg["voxels"])
    # slicerio returns voxels indexed [i, j, k], or [layer, i, j, k] when segments overlap;
    # overlapping layers are flattened into one labelmap with a fresh label per segment.
    segments = [dict(s) for s in seg["segments"]]
    if voxels.ndim == 4:
        flat = np.zeros(voxels.shape[1:], dtype=np.uint8)
        for new_label, s in enumerate(segments, start=1):
            flat[voxels[int(s.get("layer", 0))] == int(s["labelValue"])] = new_label
            s["labelValue"], s["layer"] = new_label, 0
        voxels = flat
    if voxels.ndim != 3:
        raise InputFileError(f"{path} has a {voxels.ndim}D labelmap; a 3D segmentation is required")
    labelmap = np.ascontiguousarray(voxels.transpose(2, 1, 0))
    return Segmentation(labelmap, np.asarray(seg["ijkToLPS"], dtype=float), segments)
