"""Find thrombus ROIs in a study: probability map per slice -> 2D boxes -> 3D tracks -> ROIs.

The network segments thrombus on 2.5D axial slices; connected regions of its
probability map are the per-slice detections, which are chained through the
slices into 3D objects.  Each object's score is the mean of its three best
slice scores, and objects above the model card's `roi_threshold` (chosen on
the validation split) become ROIs named thrombus-1, thrombus-2, ... by
descending score.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..core.errors import UserError
from ..core.progress import Progress
from ..io.roi import BoxROI
from ..io.volume import Volume
from ..models import catalog
from ..models.devices import resolve_device
from .linking import SliceBox, Track, link_boxes, merge_overlapping, slice_boxes
from .network import DEFAULT_CONFIG, build_network, for_inference
from .view import DetectorInput, DetectorView, prepare_view

SCHEMA = "dvt-staging/detections@1"
CANDIDATE_FLOOR = 0.05   # weaker objects are not even candidates (keeps evaluation lists short)


@dataclass(frozen=True)
class PostProcess:
    """Thresholds that turn probabilities into ROIs; stored in the model card."""

    pixel_threshold: float = 0.5     # probability that makes a pixel thrombus
    join_mm: float = 3.0             # regions closer than this in a slice are one detection
    max_gap_mm: float = 6.0          # a track may skip slices spanning up to this
    min_overlap: float = 0.3         # box overlap (of the smaller box) that links two slices
    top_k: int = 3                   # slices averaged into an object's score
    roi_threshold: float = 0.5       # object score that makes an ROI
    roi_margin_mm: float = 3.0       # margin around the object, as an annotator draws a box
    min_pixels: int = 2              # smaller regions are noise
    max_width_mm: float = 40.0       # wider in-plane than any thrombosed femoral/iliac vein: not thrombus
    max_rois: int = 4                # more ROIs than this: the study is not what the detector knows

    @classmethod
    def from_dict(cls, data: dict | None) -> "PostProcess":
        data = data or {}
        return cls(**{k: type(getattr(cls, k))(data[k]) for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Detector:
    network: torch.nn.Module
    spec: DetectorInput
    post: PostProcess
    device: torch.device
    model_id: str = "untrained"
    sha256: str | None = None
    card: dict = field(default_factory=dict)


_LOADED: dict[tuple, Detector] = {}


def load_detector(model=None, device="auto") -> Detector:
    """The detector of a catalogue id or model card (None: the bundled one), weights checked by sha256."""
    if isinstance(model, Detector):
        return model
    torch_device = resolve_device(device)
    entry = catalog.resolve(model, kind="detector")
    key = (str(entry.card_path), entry.card["sha256"], str(torch_device))
    if key in _LOADED:
        return _LOADED[key]
    state = catalog.load_weights(entry)
    config = entry.card["config"]
    network = build_network(config.get("network", DEFAULT_CONFIG))
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"weights of detector '{entry.id}' do not fit its configuration ({first})") from None
    network = for_inference(network).to(torch_device)
    detector = Detector(network, DetectorInput.from_dict(entry.card.get("input", {})),
                        PostProcess.from_dict(config.get("postprocess")), torch_device, entry.id,
                        entry.card["sha256"], entry.card)
    _LOADED[key] = detector
    return detector


@dataclass
class DetectedObject:
    """One 3D object found in the study, an ROI or a weaker candidate."""

    score: float
    ijk_min: np.ndarray
    ijk_max: np.ndarray
    boxes: list[SliceBox]           # per-slice boxes in view pixels


@dataclass
class DetectionResult:
    rois: list[BoxROI]
    scores: list[float]
    slice_boxes: list[list[dict]]   # per ROI: its per-slice boxes as voxel extents with scores
    probability: np.ndarray | None  # float32 [k, j, i] on the input grid
    objects: list[DetectedObject]   # every candidate, ROIs first (for FROC analysis)
    view: DetectorView
    detector: Detector
    timings: dict = field(default_factory=dict)
    warning: str | None = None      # set when the study does not look like a leg study

    def thrombus_labelmap(self, label: int) -> np.ndarray:
        """uint8 [k, j, i]: thrombus pixels inside the reported ROIs (a first segment to edit)."""
        out = np.zeros(self.view.volume.array.shape, dtype=np.uint8)
        if self.probability is None:
            return out
        inside = np.zeros(out.shape, dtype=bool)
        for roi in self.rois:
            inside |= roi.voxel_mask(self.view.volume)
        out[(self.probability >= self.detector.post.pixel_threshold) & inside] = label
        return out

    def to_json(self, volume: Volume) -> dict:
        orientation = self.view.orientation
        slice_axis = "ijk"[2 - orientation.axes[0]]
        rois = []
        for roi, score, boxes, obj in zip(self.rois, self.scores, self.slice_boxes, self.objects):
            rois.append({
                "name": roi.name, "score": round(float(score), 4),
                "ijk_min": obj.ijk_min.tolist(), "ijk_max": obj.ijk_max.tolist(),
                "center_ras": roi.center_ras.tolist(), "size_mm": roi.size_mm.tolist(),
                "axes_ras": roi.axes_ras.tolist(), "slices": boxes,
            })
        return {
            "schema": SCHEMA,
            "model": {"id": self.detector.model_id, "sha256": self.detector.sha256},
            "device": str(self.detector.device),
            "slice_axis": slice_axis,
            "thresholds": asdict(self.detector.post),
            "input": self.detector.spec.to_dict(),
            "found": len(self.rois),
            "warning": self.warning,
            "rois": rois,
            "geometry": volume.geometry_dict(),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "intended_use": catalog.NOT_FOR_CLINICAL_USE,
        }


def probability_maps(detector: Detector, view: DetectorView, progress: Progress | None = None,
                     batch: int = 16, slices=None) -> torch.Tensor:
    """[slices, H, W] thrombus probability on the detector grid; with `slices` (indices), only those are
    computed and the others are 0."""
    wanted = np.arange(view.n_slices) if slices is None else np.unique(np.asarray(slices, dtype=int))
    out = torch.zeros((view.n_slices, *view.planes.shape[1:]), dtype=torch.float32)
    with torch.inference_mode():
        for n, s in enumerate(range(0, len(wanted), batch), start=1):
            idx = wanted[s:s + batch]
            x = view.inputs(idx).to(detector.device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
            out[torch.from_numpy(idx)] = torch.sigmoid(detector.network(x).float()).cpu()
            if progress is not None:
                progress.update(n)
    return out


def slice_boxes_in_view(view: DetectorView, probability: torch.Tensor, post: PostProcess,
                        threshold: float | None = None) -> list[SliceBox]:
    """Per-slice detections (regions above the threshold, default the card's), in view pixels."""
    threshold = post.pixel_threshold if threshold is None else threshold
    h, w = view.small_shape
    join = max(0, int(round(post.join_mm / view.spec.pixel_mm)))
    found = []
    maps = probability[:, :h, :w].numpy()
    candidates = np.flatnonzero(maps.reshape(len(maps), -1).max(axis=1) >= threshold)
    for s in candidates:
        for box in slice_boxes(maps[s], int(s), threshold, join, post.min_pixels):
            r0, r1, c0, c1 = view.to_view_pixels(box.row0, box.row1, box.col0, box.col1)
            found.append(SliceBox(int(s), r0, r1, c0, c1, box.score))
    return found


def objects_from_boxes(view: DetectorView, boxes: list[SliceBox], post: PostProcess) -> list[DetectedObject]:
    """Link per-slice boxes into 3D objects, strongest first, with their voxel extents."""
    slice_mm = view.orientation.spacing[0]
    gap = max(0, int(np.floor(post.max_gap_mm / slice_mm)) - 1)
    tracks: list[Track] = merge_overlapping(link_boxes(boxes, gap, post.min_overlap), gap)
    objects = []
    row_mm, col_mm = view.orientation.spacing[1:]
    for track in tracks:
        score = track.score(post.top_k)
        if score < CANDIDATE_FLOOR:
            continue
        widest = max(max((b.row1 - b.row0 + 1) * row_mm, (b.col1 - b.col0 + 1) * col_mm) for b in track.boxes)
        if widest > post.max_width_mm:
            continue
        lo, hi = track.extent()
        ijk_min, ijk_max = view.view_extent_to_ijk(lo, hi)
        objects.append(DetectedObject(score, ijk_min, ijk_max, track.boxes))
    objects.sort(key=lambda o: -o.score)
    return objects


def select_rois(objects: list[DetectedObject], post: PostProcess) -> tuple[list[DetectedObject], str | None]:
    """The objects that become ROIs, and a warning when the study looks unlike any the detector knows.

    A leg holds one or two thrombi; a flood of confident objects means another
    anatomy or contrast (a guard, not a learned rejection), and no ROIs beat many wrong ones.
    """
    kept = [o for o in objects if o.score >= post.roi_threshold]
    if len(kept) > post.max_rois:
        return [], (f"{len(kept)} thrombus-like regions found, more than the {post.max_rois} a leg study can hold: "
                    "is this a black-blood thigh or pelvis study? No ROIs reported")
    return kept, None


def padded_extent(obj: DetectedObject, spacing_ijk, shape_ijk, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The object's voxel extent grown by the ROI margin (at least one voxel), inside the volume."""
    margin = np.maximum(np.ceil(margin_mm / np.asarray(spacing_ijk, dtype=float)), 1).astype(int)
    lo = np.maximum(obj.ijk_min - margin, 0)
    hi = np.minimum(obj.ijk_max + margin, np.asarray(shape_ijk) - 1)
    return lo, hi


def roi_of(view: DetectorView, obj: DetectedObject, name: str, margin_mm: float) -> BoxROI:
    volume = view.volume
    lo, hi = padded_extent(obj, volume.spacing, volume.shape_ijk, margin_mm)
    return BoxROI.from_ijk_extent(volume, lo, hi, name, description=f"auto-detected thrombus, score {obj.score:.2f}")


def _box_record(view: DetectorView, box: SliceBox) -> dict:
    lo, hi = view.view_extent_to_ijk((box.slice, box.row0, box.col0), (box.slice, box.row1, box.col1))
    return {"ijk_min": lo.tolist(), "ijk_max": hi.tolist(), "score": round(float(box.score), 4)}


def detect_rois(volume: Volume, model=None, device="auto", progress: bool = True, keep_probability: bool = True,
                batch: int = 16) -> DetectionResult:
    """Thrombus ROIs of a study (empty lists when it shows no thrombus).

    `model` is a catalogue id, a model card path, a loaded `Detector`, or None
    for the bundled detector.
    """
    timings = {}
    start = time.perf_counter()
    detector = load_detector(model, device)
    timings["load_model"] = time.perf_counter() - start

    t = time.perf_counter()
    view = prepare_view(volume, detector.spec)
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    n_batches = (view.n_slices + batch - 1) // batch
    bar = Progress("detect", n_batches) if progress else None
    probability = probability_maps(detector, view, bar, batch)
    timings["network"] = time.perf_counter() - t

    t = time.perf_counter()
    boxes = slice_boxes_in_view(view, probability, detector.post)
    objects = objects_from_boxes(view, boxes, detector.post)
    kept, warning = select_rois(objects, detector.post)
    rois = [roi_of(view, o, f"thrombus-{n}", detector.post.roi_margin_mm) for n, o in enumerate(kept, start=1)]
    slice_records = [[_box_record(view, b) for b in o.boxes] for o in kept]
    timings["linking"] = time.perf_counter() - t

    t = time.perf_counter()
    volume_probability = view.to_volume(probability) if keep_probability else None
    timings["probability_map"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return DetectionResult(rois, [o.score for o in kept], slice_records, volume_probability, objects, view,
                           detector, timings, warning)
