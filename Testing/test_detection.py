"""Thrombus detection: box linking, ROI geometry, the bundled detector on phantom studies, `detect` CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from DVTStagingLib.cli import main
from DVTStagingLib.detection.detector import DetectedObject, PostProcess, detect_rois, select_rois
from DVTStagingLib.detection.evaluation import StudyOutcome, average_precision, choose_roi_threshold, iou_3d
from DVTStagingLib.detection.linking import SliceBox, link_boxes, merge_overlapping
from DVTStagingLib.detection.view import DetectorInput, prepare_view
from DVTStagingLib.io.roi import BoxROI, read_rois
from DVTStagingLib.io.segmentation import read_segmentation
from DVTStagingLib.io.volume import Volume, write_volume
from DVTStagingLib.models import catalog
from scipy import ndimage


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("progress:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("dvt-staging: error: ") and "Traceback" not in err
    return lines[0]


def slab(volume: Volume, k0: int, k1: int) -> Volume:
    """Slices k0..k1-1 of a volume, geometry kept (a smaller study keeps the tests quick)."""
    origin = volume.ijk_to_lps[:3, :3] @ np.array([0, 0, k0]) + volume.origin_lps
    return Volume(np.ascontiguousarray(volume.array[k0:k1]), volume.spacing, origin, volume.direction_lps)


# ---------------------------------------------------------------------------
# Linking and metrics on synthetic boxes
# ---------------------------------------------------------------------------
def test_linking_chains_boxes_across_a_gap_and_keeps_objects_apart():
    boxes = []
    for s in (0, 1, 2, 4, 5):                         # object A, faint (missing) on slice 3
        boxes.append(SliceBox(s, 10 + s % 2, 16, 10, 15, 0.9))
    for s in range(2, 7):                             # object B in the other leg
        boxes.append(SliceBox(s, 50, 56, 80, 86, 0.8))
    boxes.append(SliceBox(9, 100, 103, 100, 103, 0.6))  # a one-slice blip
    tracks = link_boxes(boxes, max_gap=1, min_overlap=0.3)
    assert len(tracks) == 3
    by_first = {t.first_slice: t for t in tracks}
    assert len(by_first[0].boxes) == 5 and by_first[0].last_slice == 5
    assert len(by_first[2].boxes) == 5
    # One bright slice scores a third of a three-slice object of the same brightness.
    assert by_first[9].score(3) == pytest.approx(0.2)
    assert by_first[0].score(3) == pytest.approx(0.9)
    lo, hi = by_first[0].extent()
    assert lo.tolist() == [0, 10, 10] and hi.tolist() == [5, 16, 15]


def test_linking_does_not_bridge_a_long_gap_and_merges_overlapping_tracks():
    boxes = [SliceBox(s, 10, 20, 10, 20, 0.9) for s in (0, 1, 5, 6)]
    assert len(link_boxes(boxes, max_gap=1)) == 2
    assert len(link_boxes(boxes, max_gap=3)) == 1
    # Two tracks side by side over one thrombus (e.g. split by a channel) become one object.
    pair = [SliceBox(s, 10, 20, 10, 14, 0.9) for s in range(3)] + [SliceBox(s, 10, 20, 14, 30, 0.7) for s in range(3)]
    tracks = link_boxes(pair, max_gap=0, min_overlap=0.9)
    assert len(tracks) == 2
    merged = merge_overlapping(tracks, gap=0)
    assert len(merged) == 1 and merged[0].extent()[1].tolist() == [2, 20, 30]


def test_metric_helpers():
    assert iou_3d((np.array([0, 0, 0]), np.array([9, 9, 9])), (np.array([0, 0, 0]), np.array([9, 9, 4]))) == 0.5
    assert iou_3d((np.array([0, 0, 0]), np.array([1, 1, 1])), (np.array([5, 5, 5]), np.array([6, 6, 6]))) == 0.0
    # Perfect ranking: AP 1; the only hit ranked last among two: AP 0.5.
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([0.9, 0.8]), np.array([False, True]), 1) == pytest.approx(0.5)
    outcomes = [StudyOutcome("a", 10, 0, 1, object_scores=[0.9, 0.3], object_hits=[0, -1], object_ious=[0.5, 0]),
                StudyOutcome("b", 10, 0, 1, object_scores=[0.8], object_hits=[0], object_ious=[0.6])]
    # Full recall without the false object: any threshold in (0.3, 0.8]; the middle is chosen.
    assert choose_roi_threshold(outcomes, 0.25) == pytest.approx(0.55)


def test_too_many_objects_means_no_rois_and_a_warning():
    objects = [DetectedObject(0.9, np.zeros(3, int), np.ones(3, int), []) for _ in range(6)]
    kept, warning = select_rois(objects, PostProcess(max_rois=4))
    assert kept == [] and "No ROIs" in warning
    kept, warning = select_rois(objects[:2], PostProcess(max_rois=4))
    assert len(kept) == 2 and warning is None


# ---------------------------------------------------------------------------
# Geometry: view extents back to voxels and RAS, for an oblique coronal stack
# ---------------------------------------------------------------------------
def test_roi_geometry_of_a_view_extent_in_an_oblique_volume():
    angle = np.deg2rad(12.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    # Coronal stack stored as i = right->left (LPS -x), j = superior->inferior, k = posterior->anterior.
    direction = tilt @ np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T
    shape_kji = (20, 30, 24)
    volume = Volume(np.random.default_rng(0).normal(100, 10, shape_kji).astype(np.float32), [0.9, 1.1, 2.5],
                    [10.0, -20.0, 30.0], direction)
    view = prepare_view(volume, DetectorInput())
    assert view.n_slices == 30                         # axial slices come from the j axis here
    index = np.arange(volume.array.size).reshape(shape_kji)
    viewed = view.orientation.apply(index)
    lo, hi = np.array([4, 3, 5]), np.array([9, 12, 15])   # (slice, row, col) in the view
    ijk_lo, ijk_hi = view.view_extent_to_ijk(lo, hi)
    roi = BoxROI.from_ijk_extent(volume, ijk_lo, ijk_hi, "thrombus-1")
    assert np.allclose(roi.axes_ras, volume.direction_ras)
    inside = viewed[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1].ravel()
    k, j, i = np.unravel_index(inside, shape_kji)
    assert roi.contains_ras(volume.ijk_to_ras_points(np.stack([i, j, k], axis=1)), tol=1e-6).all()
    # ...and exactly those voxels: the box is the view extent, no more.
    assert roi.voxel_mask(volume).sum() == inside.size


# ---------------------------------------------------------------------------
# The bundled detector on phantom studies
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bilateral_study():
    from DVTStagingLib.phantom.study import make_study

    study = make_study(5, ["acute", "subacute"])       # axial stack, a thrombus in each leg
    extents = [roi.ijk_extent(study.volume) for roi in study.rois]
    k0 = max(min(lo[2] for lo, _ in extents) - 4, 0)
    k1 = max(hi[2] for _, hi in extents) + 5
    return slab(study.volume, k0, k1), study.rois


@pytest.fixture(scope="module")
def normal_study_file(tmp_path_factory):
    from DVTStagingLib.phantom.study import make_study

    study = make_study(3, [])                           # oblique axial stack, no thrombus
    return write_volume(slab(study.volume, 60, 110), tmp_path_factory.mktemp("normal") / "normal.nrrd")


def test_bilateral_study_gives_one_roi_per_leg(bilateral_study):
    volume, truth = bilateral_study
    result = detect_rois(volume, device="cpu", progress=False)
    assert [r.name for r in result.rois] == ["thrombus-1", "thrombus-2"]
    assert all(0.0 <= s <= 1.0 for s in result.scores) and result.warning is None
    assert result.probability.shape == volume.array.shape and result.probability.dtype == np.float32
    sides = sorted(np.sign(r.center_ras[0]) for r in result.rois)
    assert sides == [-1.0, 1.0]
    for true_roi in truth:
        best = max(iou_3d(true_roi.ijk_extent(volume), r.ijk_extent(volume)) for r in result.rois)
        assert best >= 0.3
    doc = result.to_json(volume)
    assert doc["schema"] == "dvt-staging/detections@1" and doc["found"] == 2
    assert all(len(r["slices"]) >= 2 for r in doc["rois"])


def test_non_leg_volume_gives_no_flood_of_rois():
    rng = np.random.default_rng(1)
    array = ndimage.gaussian_filter(rng.normal(size=(40, 160, 160)), 3) * 400 + 500
    k, j, i = np.ogrid[:40, :160, :160]
    for _ in range(25):
        c = rng.uniform([0, 0, 0], [40, 160, 160])
        r = rng.uniform(3, 15, 3)
        array[((k - c[0]) / r[0] * 2) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i - c[2]) / r[2]) ** 2 < 1] += \
            rng.uniform(-400, 800)
    volume = Volume(array.astype(np.float32), [1.0, 1.0, 2.0], [0, 0, 0], np.eye(3))
    result = detect_rois(volume, device="cpu", progress=False, keep_probability=False)
    assert len(result.rois) <= PostProcess().max_rois


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def test_detect_cli_normal_study_writes_empty_rois(capsys, tmp_path, normal_study_file):
    out = tmp_path / "det"
    code, _, err = run_cli(capsys, "detect", normal_study_file, "--out", out, "--device", "cpu", "--segmentation")
    assert code == 0, err
    assert "no thrombus found" in err
    doc = json.loads((out / "detections.json").read_text())
    assert doc["found"] == 0 and doc["rois"] == []
    assert json.loads((out / "rois.mrk.json").read_text())["markups"] == []
    seg = read_segmentation(out / "thrombus.seg.nrrd")
    assert not seg.mask("thrombus").any()
    # Results already there: refused without --overwrite, one line, exit 2.
    code, _, err = run_cli(capsys, "detect", normal_study_file, "--out", out)
    assert "--overwrite" in one_error_line(err) and code == 2


def test_detect_cli_writes_rois_detections_and_segmentation(capsys, tmp_path, bilateral_study):
    volume, _ = bilateral_study
    image = write_volume(volume, tmp_path / "study.nrrd")
    out = tmp_path / "det"
    code, _, err = run_cli(capsys, "detect", image, "--out", out, "--device", "cpu", "--segmentation")
    assert code == 0, err
    rois = read_rois(out / "rois.mrk.json")
    assert [r.name for r in rois] == ["thrombus-1", "thrombus-2"]
    doc = json.loads((out / "detections.json").read_text())
    assert doc["schema"] == "dvt-staging/detections@1"
    assert doc["geometry"]["size_ijk"] == list(volume.shape_ijk)
    assert doc["model"]["id"] == "detector-phantom" and len(doc["model"]["sha256"]) == 64
    for roi_doc, roi in zip(doc["rois"], rois):
        assert roi_doc["name"] == roi.name and 0 < roi_doc["score"] <= 1
        assert np.allclose(roi_doc["center_ras"], roi.center_ras, atol=1e-3)
        lo, hi = np.array(roi_doc["ijk_min"]), np.array(roi_doc["ijk_max"])
        for box in roi_doc["slices"]:
            assert np.all(np.array(box["ijk_min"]) >= lo) and np.all(np.array(box["ijk_max"]) <= hi)
            assert box["ijk_min"][2] == box["ijk_max"][2]          # one slice of the k stack
    thrombus = read_segmentation(out / "thrombus.seg.nrrd").mask("thrombus")
    assert thrombus.shape == volume.array.shape and thrombus.any()
    covered = np.zeros_like(thrombus)
    for roi in rois:
        covered |= roi.voxel_mask(volume)
    assert not (thrombus & ~covered).any()


def test_detect_cli_bad_input_is_one_line_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "detect", tmp_path / "missing.nrrd", "--out", tmp_path / "o")
    assert code == 2 and "no such file" in one_error_line(err)
    flat = write_volume(Volume(np.ones((4, 8, 8), np.float32), [1, 1, 1], [0, 0, 0], np.eye(3)), tmp_path / "flat.nrrd")
    code, _, err = run_cli(capsys, "detect", flat, "--out", tmp_path / "o")
    assert code == 2 and "constant" in one_error_line(err)
    code, _, err = run_cli(capsys, "detect", flat, "--model", "no-such-detector", "--out", tmp_path / "o")
    assert code == 2


def test_detect_cli_refuses_tampered_weights(capsys, tmp_path, normal_study_file):
    entry = catalog.resolve(None, kind="detector")
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(entry.card_path, folder / entry.card_path.name)
    weights = folder / entry.weights_path.name
    data = bytearray(entry.weights_path.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "detect", normal_study_file, "--model", folder / entry.card_path.name,
                           "--out", tmp_path / "o", "--device", "cpu")
    line = one_error_line(err)
    assert code == 2 and "sha256" in line and "checksum" in line
