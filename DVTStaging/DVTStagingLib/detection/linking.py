"""From per-slice probability maps to 2D boxes, and from 2D boxes to 3D tracks.

All coordinates here are view coordinates (slice, row, col) of the plane the
detector looks at; `geometry.py` maps them back to the volume's voxels.
Box ranges are inclusive, as voxel extents are everywhere in this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


@dataclass
class SliceBox:
    """One 2D detection: a box in a view slice, with the detector's confidence."""

    slice: int
    row0: int
    row1: int
    col0: int
    col1: int
    score: float

    @property
    def area(self) -> int:
        return (self.row1 - self.row0 + 1) * (self.col1 - self.col0 + 1)

    def to_dict(self) -> dict:
        return {"slice": self.slice, "rows": [self.row0, self.row1], "cols": [self.col0, self.col1],
                "score": round(float(self.score), 4)}


def box_iou(a: SliceBox, b: SliceBox) -> float:
    """Intersection over union of two boxes' pixel ranges (the slice is ignored)."""
    rows = min(a.row1, b.row1) - max(a.row0, b.row0) + 1
    cols = min(a.col1, b.col1) - max(a.col0, b.col0) + 1
    if rows <= 0 or cols <= 0:
        return 0.0
    inter = rows * cols
    return inter / (a.area + b.area - inter)


def box_overlap_of_smaller(a: SliceBox, b: SliceBox) -> float:
    """Intersection over the smaller box: a thrombus that widens between slices still links."""
    rows = min(a.row1, b.row1) - max(a.row0, b.row0) + 1
    cols = min(a.col1, b.col1) - max(a.col0, b.col0) + 1
    if rows <= 0 or cols <= 0:
        return 0.0
    return rows * cols / min(a.area, b.area)


def slice_boxes(probability: np.ndarray, slice_index: int, threshold: float, join_pixels: int = 1,
                min_pixels: int = 1) -> list[SliceBox]:
    """Boxes around the connected regions of one [rows, cols] probability map.

    Regions closer than `join_pixels` are joined first, so a thrombus split by
    a recanalised channel gives one box, not two.
    """
    above = probability >= threshold
    if not above.any():
        return []
    grouped = ndimage.binary_dilation(above, iterations=join_pixels) if join_pixels > 0 else above
    labels, count = ndimage.label(grouped, structure=np.ones((3, 3), bool))
    labels = np.where(above, labels, 0)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        region = labels[found] == index
        if region.sum() < min_pixels:
            continue
        score = float(probability[found][region].max())
        rows, cols = found
        boxes.append(SliceBox(slice_index, rows.start, rows.stop - 1, cols.start, cols.stop - 1, score))
    return boxes


@dataclass
class Track:
    """2D boxes in nearby slices that belong to one object."""

    boxes: list[SliceBox] = field(default_factory=list)

    @property
    def first_slice(self) -> int:
        return min(b.slice for b in self.boxes)

    @property
    def last_slice(self) -> int:
        return max(b.slice for b in self.boxes)

    def last_box(self) -> SliceBox:
        return max(self.boxes, key=lambda b: b.slice)

    def score(self, top_k: int = 3) -> float:
        """Mean of the k best slice scores, missing ones counted as 0: one bright slice is not a thrombus."""
        per_slice: dict[int, float] = {}
        for b in self.boxes:
            per_slice[b.slice] = max(per_slice.get(b.slice, 0.0), b.score)
        best = sorted(per_slice.values(), reverse=True)[:top_k]
        return float(sum(best) / top_k)

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive (slice, row, col) bounds of all boxes."""
        lo = np.array([self.first_slice, min(b.row0 for b in self.boxes), min(b.col0 for b in self.boxes)])
        hi = np.array([self.last_slice, max(b.row1 for b in self.boxes), max(b.col1 for b in self.boxes)])
        return lo, hi


def link_boxes(boxes: list[SliceBox], max_gap: int = 1, min_overlap: float = 0.3) -> list[Track]:
    """Chain boxes through the slices: a box joins the track whose last box it overlaps most.

    A track may skip up to `max_gap` slices (a thrombus faint on one slice is
    still one thrombus).  Boxes are taken strongest first within a slice, and
    each track takes at most one box per slice.
    """
    tracks: list[Track] = []
    by_slice: dict[int, list[SliceBox]] = {}
    for box in boxes:
        by_slice.setdefault(box.slice, []).append(box)
    for s in sorted(by_slice):
        taken: set[int] = set()
        for box in sorted(by_slice[s], key=lambda b: -b.score):
            best, best_overlap = None, min_overlap
            for n, track in enumerate(tracks):
                if n in taken or not (0 < s - track.last_slice <= max_gap + 1):
                    continue
                overlap = box_overlap_of_smaller(box, track.last_box())
                if overlap >= best_overlap:
                    best, best_overlap = n, overlap
            if best is None:
                tracks.append(Track([box]))
                taken.add(len(tracks) - 1)
            else:
                tracks[best].boxes.append(box)
                taken.add(best)
    return tracks


def _extents_touch(a: Track, b: Track, gap: int) -> bool:
    alo, ahi = a.extent()
    blo, bhi = b.extent()
    slack = np.array([gap + 1, 0, 0])
    return bool(np.all(alo <= bhi + slack) and np.all(blo <= ahi + slack))


def merge_overlapping(tracks: list[Track], gap: int = 1) -> list[Track]:
    """Join tracks whose 3D extents overlap: two boxes over one thrombus would be two ROIs."""
    merged = [Track(list(t.boxes)) for t in tracks]
    changed = True
    while changed:
        changed = False
        for a in range(len(merged)):
            for b in range(a + 1, len(merged)):
                if _extents_touch(merged[a], merged[b], gap):
                    merged[a].boxes.extend(merged.pop(b).boxes)
                    changed = True
                    break
            if changed:
                break
    for track in merged:
        track.boxes.sort(key=lambda b: (b.slice, -b.score))
    return merged
