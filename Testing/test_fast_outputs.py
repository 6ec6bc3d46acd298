"""The per-click shortcuts give the very numbers and files of the slow way: percentiles from a histogram
(imaging.percentiles) against np.percentile, and the ISA-L overlay NRRDs (io.fast_nrrd) against
SimpleITK's own writer."""

from __future__ import annotations

import numpy as np
import pytest

from DVTStagingLib.imaging.display import display_window
from DVTStagingLib.imaging.percentiles import IntegerHistogram, percentiles_above_floor
from DVTStagingLib.imaging.planes import intensity_scale
from DVTStagingLib.io.volume import Volume, read_volume, write_volume

QS = (5, 1.0, 99.5, [1.0, 99.5], [1, 99.5], 0, 100, 50, [0, 100], 37.3)


def _arrays(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for trial in range(count):
        dtype = [np.int16, np.uint16, np.uint8, np.int8][trial % 4]
        info = np.iinfo(dtype)
        n = int(rng.integers(1, 3000))
        kind = trial % 3
        if kind == 0:       # the whole range: numpy's own integer differences wrap, and so must ours
            values = rng.integers(info.min, info.max, n, endpoint=True)
        elif kind == 1:     # few distinct values: many ties at the order statistics
            values = rng.integers(0, min(50, info.max), n)
        else:               # an MR-like skewed histogram with a background of zeros
            values = np.round(rng.exponential(200, n) * (rng.random(n) > 0.3)).clip(info.min, info.max)
        yield values.astype(dtype)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # numpy's integer overflow, in both
def test_histogram_percentiles_equal_numpys_bit_for_bit():
    for values in _arrays(0, 400):
        histogram = IntegerHistogram.of(values)
        for as_dtype in (values.dtype, np.dtype(np.float32)):      # the raw array, or its float32 copy
            array = values.astype(as_dtype)
            for q in QS:
                want, got = np.asarray(np.percentile(array, q)), np.asarray(histogram.percentile(q, as_dtype))
                assert got.dtype == want.dtype and np.array_equal(got, want), (values.dtype, as_dtype, q)


def test_percentile_falls_back_to_numpy_where_no_histogram_applies():
    rng = np.random.default_rng(1)
    for values in (rng.normal(size=500).astype(np.float32), rng.integers(0, 1 << 30, 500).astype(np.int32)):
        assert IntegerHistogram.of(values) is None
        body = values[values > np.percentile(values, 5)]
        assert np.array_equal(percentiles_above_floor(values, [1, 99.5]), np.percentile(body, [1, 99.5]))
    assert IntegerHistogram.of(np.zeros(0, np.int16)) is None


def _window_by_sorting(values, low=1.0, high=99.5):
    v = values[values > np.percentile(values, 5)] if values.size else values
    if v.size == 0:
        v = values
    lo, hi = np.percentile(v, [low, high])
    return float(lo), float(hi if hi > lo else lo + 1)


def _scale_by_sorting(array, low, high):
    sample = array.ravel()
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 2_000_000 + 1]
    sample = sample.astype(np.float32)
    body = sample[sample > np.percentile(sample, 5)]
    if body.size < 100:
        body = sample
    lo, hi = np.percentile(body, [low, high])
    return float(lo), float(hi)


def test_display_window_and_intensity_scale_are_unchanged():
    rng = np.random.default_rng(2)
    cases = [(rng.exponential(300, (40, 50, 60)) * (rng.random((40, 50, 60)) > 0.4)).astype(np.int16),
             rng.integers(0, 4000, (30, 64, 64)).astype(np.uint16),
             np.full((8, 8, 8), 7, np.int16),                        # constant: the window's fallback
             rng.integers(0, 2, (9, 9, 9)).astype(np.uint8),         # under 100 body voxels
             rng.normal(500, 50, (20, 20, 20)).astype(np.float32)]   # floats: numpy itself
    for values in cases:
        assert display_window(values) == _window_by_sorting(values)
        want = _scale_by_sorting(values, 1.0, 99.5)
        if want[1] > want[0]:
            assert intensity_scale(values, 1.0, 99.5) == want
    # a study over 2 million voxels: the strided sample
    big = (rng.exponential(300, (124, 120, 246))).astype(np.int16)
    assert intensity_scale(big, 1.0, 99.5) == _scale_by_sorting(big, 1.0, 99.5)


def _header_fields(path) -> dict:
    raw = open(path, "rb").read()
    fields = {}
    for line in raw[: raw.index(b"\n\n")].decode("ascii").splitlines()[1:]:
        if line.startswith("#"):
            continue
        key, value = line.split(":", 1)
        fields[key] = value.strip()
    for key in ("space directions", "space origin"):      # numbers: ITK prints some zeros as -0
        fields[key] = [float(x) for x in fields[key].replace("(", " ").replace(")", " ").replace(",", " ").split()]
    return fields


def test_isal_overlay_nrrd_matches_simpleitks_file(tmp_path):
    pytest.importorskip("isal")
    from DVTStagingLib.io.fast_nrrd import write_float_nrrd

    rng = np.random.default_rng(3)
    for trial in range(6):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        if trial % 2:
            rotation = np.eye(3)[[0, 2, 1]] * rng.choice([-1.0, 1.0], 3)     # a coronal stack, flips
        heat = rng.random((7 + trial, 9, 11)).astype(np.float32) * (rng.random((7 + trial, 9, 11)) > 0.5)
        volume = Volume(heat, rng.uniform(0.4, 5.0, 3), rng.normal(0, 100, 3), rotation)
        write_volume(volume, tmp_path / "itk.nrrd")
        assert write_float_nrrd(volume, tmp_path / "isal.nrrd")
        assert _header_fields(tmp_path / "isal.nrrd") == _header_fields(tmp_path / "itk.nrrd")
        ours, theirs = read_volume(tmp_path / "isal.nrrd"), read_volume(tmp_path / "itk.nrrd")
        assert ours.array.dtype == np.float32 and np.array_equal(ours.array, theirs.array)
        for attribute in ("spacing", "origin_lps", "direction_lps"):
            assert np.array_equal(getattr(ours, attribute), getattr(theirs, attribute))


def test_isal_writer_leaves_other_images_to_simpleitk(tmp_path):
    pytest.importorskip("isal")
    from DVTStagingLib.io.fast_nrrd import write_float_nrrd

    labels = Volume(np.zeros((2, 3, 4), np.uint8), [1, 1, 1], [0, 0, 0], np.eye(3))
    assert not write_float_nrrd(labels, tmp_path / "labels.nrrd")
    assert not (tmp_path / "labels.nrrd").exists()


def test_isal_overlay_nrrd_is_the_same_file_each_run(tmp_path):
    """No time stamp in the gzip stream: the same study gives the same overlay bytes."""
    pytest.importorskip("isal")
    import time

    from DVTStagingLib.io.fast_nrrd import write_float_nrrd

    volume = Volume(np.arange(60, dtype=np.float32).reshape(3, 4, 5), [1, 1, 2], [0, 0, 0], np.eye(3))
    write_float_nrrd(volume, tmp_path / "a.nrrd")
    time.sleep(1.1)
    write_float_nrrd(volume, tmp_path / "b.nrrd")
    assert (tmp_path / "a.nrrd").read_bytes() == (tmp_path / "b.nrrd").read_bytes()
