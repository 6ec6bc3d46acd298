"""Thrombus ROIs: oriented boxes in RAS, their voxel extents, and Slicer markups JSON.

A box has a centre, a size in mm along its own three axes, and the axes as
unit column vectors in RAS.  Boxes made from a volume's voxel extent are
oriented like the volume, so the extent round-trips exactly.

Files are Slicer markups JSON (``.mrk.json``).  They are written with
``"coordinateSystem": "LPS"``: Slicer reads an ROI's ``orientation`` in LPS
whatever the file declares (seen with slicer-core 5.13), so LPS is the one
choice that every Slicer version reads back correctly.  Reading accepts
both RAS and LPS files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import InputFileError, UserError
from .volume import LPS_TO_RAS, Volume

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
    "Markups/Resources/Schema/markups-schema-v1.0.3.json#"
)
_SCHEMA_RE = re.compile(r"markups-schema-v1\.\d+\.\d+\.json#*$", re.IGNORECASE)


@dataclass
class BoxROI:
    """An oriented box in RAS (mm)."""

    name: str
    center_ras: np.ndarray
    size_mm: np.ndarray
    axes_ras: np.ndarray = field(default_factory=lambda: np.eye(3))
    description: str = ""

    def __post_init__(self):
        self.center_ras = np.asarray(self.center_ras, dtype=float).reshape(3)
        self.size_mm = np.asarray(self.size_mm, dtype=float).reshape(3)
        self.axes_ras = np.asarray(self.axes_ras, dtype=float).reshape(3, 3)
        if not np.all(np.isfinite(self.center_ras)) or not np.all(np.isfinite(self.size_mm)):
            raise UserError(f"ROI '{self.name}' has a non-finite centre or size")
        if np.any(self.size_mm <= 0):
            raise UserError(f"ROI '{self.name}' has a zero or negative size {self.size_mm.tolist()}")
        norms = np.linalg.norm(self.axes_ras, axis=0)
        if np.any(norms < 1e-6):
            raise UserError(f"ROI '{self.name}' has a degenerate orientation")
        self.axes_ras = self.axes_ras / norms[None, :]
        if not np.allclose(self.axes_ras.T @ self.axes_ras, np.eye(3), atol=1e-3):
            raise UserError(f"ROI '{self.name}' has an orientation that is not a rotation")

    # -- geometry -----------------------------------------------------------
    def corners_ras(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
        return self.center_ras + (signs * (self.size_mm / 2)) @ self.axes_ras.T

    def contains_ras(self, points_ras: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        local = (np.asarray(points_ras, dtype=float) - self.center_ras) @ self.axes_ras
        return np.all(np.abs(local) <= self.size_mm / 2 + tol, axis=-1)

    @classmethod
    def from_ijk_extent(cls, volume: Volume, lo, hi, name: str, description: str = "") -> "BoxROI":
        """The box covering voxels lo..hi (inclusive, i/j/k order), edges on voxel faces."""
        lo = np.asarray(lo, dtype=float)
        hi = np.asarray(hi, dtype=float)
        if np.any(hi < lo):
            raise ValueError(f"empty voxel extent {lo.tolist()}..{hi.tolist()}")
        center = volume.ijk_to_ras_points((lo + hi) / 2)
        size = (hi - lo + 1) * volume.spacing
        return cls(name, center, size, volume.direction_ras, description)

    def ijk_extent(self, volume: Volume, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive voxel index range (i, j, k) whose centres the box covers.

        The range is that of the box's axis-aligned hull in voxel space.
        Raises `UserError` when the box misses the volume entirely.
        """
        corners = volume.ras_to_ijk_points(self.corners_ras())
        # Voxel centres inside [min, max] of the corner coordinates.
        lo = np.ceil(corners.min(axis=0) - 1e-4).astype(int)
        hi = np.floor(corners.max(axis=0) + 1e-4).astype(int)
        # A box thinner than one voxel still covers the voxel it lies in.
        thin = hi < lo
        mid = np.rint(corners.mean(axis=0)).astype(int)
        lo[thin] = mid[thin]
        hi[thin] = mid[thin]
        size = np.array(volume.shape_ijk)
        if np.any(hi < 0) or np.any(lo > size - 1):
            raise UserError(f"ROI '{self.name}' lies outside the volume")
        if clip:
            lo = np.clip(lo, 0, size - 1)
            hi = np.clip(hi, 0, size - 1)
        return lo, hi

    def voxel_mask(self, volume: Volume) -> np.ndarray:
        """Boolean [k, j, i] mask of voxels whose centres are inside the box (any orientation)."""
        lo, hi = self.ijk_extent(volume)
        mask = np.zeros(volume.array.shape, dtype=bool)
        ii, jj, kk = (np.arange(lo[a], hi[a] + 1) for a in range(3))
        grid = np.stack(np.meshgrid(ii, jj, kk, indexing="ij"), axis=-1).reshape(-1, 3)
        inside = self.contains_ras(volume.ijk_to_ras_points(grid), tol=1e-3)
        sel = grid[inside]
        mask[sel[:, 2], sel[:, 1], sel[:, 0]] = True
        return mask

    def fraction_inside(self, volume: Volume) -> float:
        """Share of the box volume that lies inside the image's extent (by corner hull)."""
        try:
            lo, hi = self.ijk_extent(volume, clip=False)
        except UserError:
            return 0.0
        size = np.array(volume.shape_ijk)
        clo, chi = np.clip(lo, 0, size - 1), np.clip(hi, 0, size - 1)
        full = np.prod(hi - lo + 1.0)
        return float(np.prod(chi - clo + 1.0) / full)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "center_ras": self.center_ras.tolist(),
            "size_mm": self.size_mm.tolist(),
            "axes_ras": self.axes_ras.tolist(),
        }


# ---------------------------------------------------------------------------
# Slicer markups JSON
# ---------------------------------------------------------------------------
def _markup_json(roi: BoxROI, color=(1.0, 0.55, 0.1)) -> dict:
    center_lps = LPS_TO_RAS @ roi.center_ras
    orientation_lps = LPS_TO_RAS @ roi.axes_ras  # row-major, axes as columns
    return {
        "type": "ROI",
        "name": roi.name,
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": False,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": 1,
        "roiType": "Box",
        "center": center_lps.tolist(),
        "orientation": orientation_lps.ravel().tolist(),
        "size": roi.size_mm.tolist(),
        "insideOut": False,
        "controlPoints": [
            {
                "id": "1",
                "label": roi.name,
                "description": roi.description,
                "associatedNodeID": "",
                "position": center_lps.tolist(),
                "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                "selected": True,
                "locked": False,
                "visibility": True,
                "positionStatus": "defined",
            }
        ],
        "measurements": [],
        "display": {"visibility": True, "opacity": 1.0, "color": list(color), "selectedColor": list(color),
                    "propertiesLabelVisibility": True, "fillOpacity": 0.1},
    }


def write_rois(path: str | os.PathLike, rois: list[BoxROI]) -> Path:
    """Write ROIs to one markups JSON file (Slicer loads each as its own ROI node)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"@schema": MARKUPS_SCHEMA, "markups": [_markup_json(r) for r in rois]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _numbers(value, n: int, what: str, where: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, (int, float)) for v in value):
        raise InputFileError(f"{where}: '{what}' must be a list of {n} numbers")
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise InputFileError(f"{where}: '{what}' contains a non-finite number")
    return arr


def read_rois(path: str | os.PathLike) -> list[BoxROI]:
    """Read every ROI markup in a Slicer markups JSON file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such ROI file: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path} is not a JSON file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("markups"), list):
        raise InputFileError(f"{path} is not a Slicer markups file (no 'markups' list)")
    schema = doc.get("@schema", "")
    if schema and not _SCHEMA_RE.search(str(schema)):
        raise InputFileError(f"{path} declares an unknown markups schema: {schema}")
    rois = []
    for index, markup in enumerate(doc["markups"]):
        where = f"{path} markup {index}"
        if not isinstance(markup, dict):
            raise InputFileError(f"{where} is not an object")
        if markup.get("type") != "ROI":
            continue
        system = markup.get("coordinateSystem", "LPS")
        if system not in ("LPS", "RAS"):
            raise InputFileError(f"{where}: unknown coordinateSystem '{system}'")
        flip = LPS_TO_RAS if system == "LPS" else np.eye(3)
        size = _numbers(markup.get("size"), 3, "size", where)
        orientation = _numbers(markup.get("orientation", list(np.eye(3).ravel())), 9, "orientation", where)
        points = markup.get("controlPoints") or []
        # Slicer takes the centre from the first control point when there is one.
        if points and isinstance(points[0], dict) and "position" in points[0]:
            center = _numbers(points[0]["position"], 3, "controlPoints[0].position", where)
        else:
            center = _numbers(markup.get("center"), 3, "center", where)
        name = markup.get("name") or (points[0].get("label") if points and isinstance(points[0], dict) else None)
        name = str(name or f"ROI-{index + 1}")
        description = str(points[0].get("description", "")) if points and isinstance(points[0], dict) else ""
        try:
            rois.append(BoxROI(name, flip @ center, size, flip @ orientation.reshape(3, 3), description))
        except UserError as exc:
            raise InputFileError(f"{where}: {exc}") from None
    if not rois:
        raise InputFileError(f"{path} contains no ROI markup")
    return rois


def roi_names_unique(rois: list[BoxROI]) -> list[BoxROI]:
    """Make ROI names unique by suffixing duplicates (results are keyed by name)."""
    seen: dict[str, int] = {}
    for roi in rois:
        if roi.name in seen:
            seen[roi.name] += 1
            roi.name = f"{roi.name}_{seen[roi.name]}"
        else:
            seen[roi.name] = 1
    return rois
