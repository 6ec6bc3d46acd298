"""Geometry round trips: files, IJK <-> RAS, ROI boxes and markups JSON, DICOM series."""

from __future__ import annotations

import json
import locale
from contextlib import contextmanager

import numpy as np
import pytest
import SimpleITK as sitk
from DVTStagingLib.core.errors import InputFileError
from DVTStagingLib.io.roi import BoxROI, read_rois, write_rois
from DVTStagingLib.io.volume import Volume, read_volume, write_volume
from geometry_strategies import directions, origins, shapes_kji, spacings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_volume(shape, spacing, origin, direction, dtype=np.int16):
    array = (np.arange(np.prod(shape)) % 251).reshape(shape).astype(dtype)
    return Volume(array, spacing, origin, direction)


@SETTINGS
@given(shape=shapes_kji, spacing=spacings, origin=origins, direction=directions(),
       ext=st.sampled_from([".nrrd", ".nii.gz", ".mha"]))
def test_file_round_trip_keeps_geometry(tmp_path, shape, spacing, origin, direction, ext):
    volume = make_volume(shape, spacing, origin, direction)
    path = write_volume(volume, tmp_path / f"v{ext}")
    back = read_volume(path)
    # NIfTI stores the header in float32; NRRD and MHA in full precision.
    atol = 2e-4 if ext == ".nii.gz" else 1e-9
    assert back.shape_ijk == volume.shape_ijk
    np.testing.assert_allclose(back.spacing, volume.spacing, atol=atol)
    np.testing.assert_allclose(back.origin_lps, volume.origin_lps, atol=atol * 10)
    np.testing.assert_allclose(back.direction_lps, volume.direction_lps, atol=atol)
    np.testing.assert_array_equal(back.array, volume.array)


@SETTINGS
@given(shape=shapes_kji, spacing=spacings, origin=origins, direction=directions(),
       ijk=st.lists(st.floats(-5, 20), min_size=3, max_size=3))
def test_ijk_to_ras_matches_itk_and_inverts(shape, spacing, origin, direction, ijk):
    volume = make_volume(shape, spacing, origin, direction)
    image = volume.to_sitk()
    lps = np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk]))
    ras = volume.ijk_to_ras_points(ijk)
    # RAS is LPS with the first two axes negated.
    np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(volume.ras_to_ijk_points(ras), ijk, atol=1e-6)


@SETTINGS
@given(shape=shapes_kji, spacing=spacings, origin=origins, direction=directions(), data=st.data())
def test_roi_from_voxel_extent_round_trips(tmp_path, shape, spacing, origin, direction, data):
    volume = make_volume(shape, spacing, origin, direction)
    size = np.array(volume.shape_ijk)
    lo = np.array([data.draw(st.integers(0, n - 1)) for n in size])
    hi = np.array([data.draw(st.integers(a, n - 1)) for a, n in zip(lo, size)])
    roi = BoxROI.from_ijk_extent(volume, lo, hi, "box")
    got_lo, got_hi = roi.ijk_extent(volume)
    np.testing.assert_array_equal(got_lo, lo)
    np.testing.assert_array_equal(got_hi, hi)
    # Exactly the voxels of the extent are inside the box, whatever the orientation.
    assert roi.voxel_mask(volume).sum() == np.prod(hi - lo + 1)
    # And the markups JSON file brings back the same box.
    back = read_rois(write_rois(tmp_path / "r.mrk.json", [roi]))[0]
    assert back.name == "box"
    np.testing.assert_allclose(back.center_ras, roi.center_ras, atol=1e-9)
    np.testing.assert_allclose(back.size_mm, roi.size_mm, atol=1e-9)
    np.testing.assert_allclose(back.axes_ras, roi.axes_ras, atol=1e-9)


def test_markups_file_is_lps_with_control_point_at_centre(tmp_path):
    roi = BoxROI("t1", [10.0, -20.0, 30.0], [4, 5, 6])
    doc = json.loads(write_rois(tmp_path / "r.mrk.json", [roi]).read_text(encoding="utf-8"))
    markup = doc["markups"][0]
    assert markup["type"] == "ROI" and markup["coordinateSystem"] == "LPS"
    assert markup["center"] == [-10.0, 20.0, 30.0]
    assert markup["controlPoints"][0]["position"] == [-10.0, 20.0, 30.0]


def test_ras_markups_are_read_in_ras(tmp_path):
    roi = BoxROI("t1", [10.0, -20.0, 30.0], [4, 5, 6], np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]))
    path = write_rois(tmp_path / "r.mrk.json", [roi])
    doc = json.loads(path.read_text(encoding="utf-8"))
    m = doc["markups"][0]
    m["coordinateSystem"] = "RAS"
    m["center"] = roi.center_ras.tolist()
    m["controlPoints"][0]["position"] = roi.center_ras.tolist()
    m["orientation"] = roi.axes_ras.ravel().tolist()
    path.write_text(json.dumps(doc), encoding="utf-8")
    back = read_rois(path)[0]
    np.testing.assert_allclose(back.center_ras, roi.center_ras)
    np.testing.assert_allclose(back.axes_ras, roi.axes_ras)


def test_roi_outside_volume_is_reported():
    volume = make_volume((4, 5, 6), np.ones(3), np.zeros(3), np.eye(3))
    far = BoxROI("far", [500.0, 500.0, 500.0], [5, 5, 5])
    with pytest.raises(Exception, match="outside the volume"):
        far.ijk_extent(volume)
    assert far.fraction_inside(volume) == 0.0


@contextmanager
def locale_restored():
    """ITK's DICOM writer leaves the C library's locale at "C" (ASCII), and every later `subprocess.run(...,
    text=True)` of the test session would then decode a child's UTF-8 output as ASCII."""
    previous = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, previous)


def write_dicom_series(volume: Volume, folder, patient_name="DOE^JANE", patient_id="PID-12345", decimals=6):
    """A DICOM MR series of the volume, one file per slice, with patient identifiers (slice positions written
    with `decimals` decimals, as scanners round them)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = volume.to_sitk()
    direction = volume.direction_lps
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.1"
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        origin = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "MR", "0010|0010": patient_name, "0010|0020": patient_id, "0010|0030": "19700101",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid,
            "0020|0013": str(k + 1), "0020|0032": "\\".join(f"{v:.{decimals}f}" for v in origin),
            "0020|0037": "\\".join(f"{v:.6f}" for v in [*direction[:, 0], *direction[:, 1]]),
            "0018|0050": f"{volume.spacing[2]:.6f}", "0028|0030": f"{volume.spacing[1]:.6f}\\{volume.spacing[0]:.6f}",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for key, value in tags.items():
            sl.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        with locale_restored():
            writer.Execute(sl)
    return folder


def test_a_dicom_series_that_is_not_one_regular_grid_is_refused_with_the_reason(tmp_path):
    """ITK reads such a series with one mean slice spacing, every slice after a gap in the wrong place."""
    volume = make_volume((8, 9, 10), np.array([0.9, 0.8, 2.5]), np.array([-100.0, 50.0, 20.0]), np.eye(3))
    gap = write_dicom_series(volume, tmp_path / "gap")
    (gap / "slice004.dcm").unlink()
    with pytest.raises(InputFileError, match=r"unevenly spaced slices \(2.5 to 5 mm apart: a missing slice\?\)"):
        read_volume(gap)
    # two echoes in one series: a second file at each position
    echoes = write_dicom_series(volume, tmp_path / "echoes")
    second = sitk.ReadImage(str(echoes / "slice002.dcm"))
    second.SetMetaData("0008|0018", "1.2.826.0.1.3680043.2.1125.1.1.99")
    second.SetMetaData("0020|0013", "99")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(echoes / "echo2-slice002.dcm"))
    with locale_restored():
        writer.Execute(second)
    with pytest.raises(InputFileError, match="several slices at one position"):
        read_volume(echoes)
    # the complete series still reads, one file per position
    (echoes / "echo2-slice002.dcm").unlink()
    assert read_volume(echoes).shape_ijk == volume.shape_ijk
    # positions rounded to 0.1 mm in the header (3.3 or 3.4 mm apart for 3.33 mm slices): read as one grid
    thirds = make_volume((8, 9, 10), np.array([0.9, 0.8, 10 / 3]), np.array([-100.0, 50.0, 20.0]), np.eye(3))
    rounded = read_volume(write_dicom_series(thirds, tmp_path / "rounded", decimals=1))
    np.testing.assert_allclose(rounded.spacing, thirds.spacing, atol=0.02)


def test_a_folder_above_its_dicom_series_names_them(tmp_path):
    """A CD or PACS export nests its series (PATIENT/STUDY/SERIES): the folder above them names where they are."""
    volume = make_volume((4, 5, 6), np.array([0.9, 0.8, 2.5]), np.array([-100.0, 50.0, 20.0]), np.eye(3))
    for series in ("SE0", "SE1"):
        write_dicom_series(volume, tmp_path / "cd" / "DICOM" / "PA0" / series)
    (tmp_path / "cd" / "README.TXT").write_text("disc contents", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"holds no DICOM files itself, its subfolders do: DICOM/PA0/SE0 "
                                             r"\(4 files\), DICOM/PA0/SE1 \(4 files\); give the folder of the series"):
        read_volume(tmp_path / "cd")
    assert read_volume(tmp_path / "cd" / "DICOM" / "PA0" / "SE1").shape_ijk == volume.shape_ijk


def test_dicom_series_folder_reads_with_geometry_and_identifiers(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    volume = make_volume((5, 6, 7), np.array([0.9, 0.8, 2.5]), np.array([-100.0, 50.0, 20.0]), direction)
    folder = write_dicom_series(volume, tmp_path / "dicom")
    back = read_volume(folder)
    assert back.shape_ijk == volume.shape_ijk
    np.testing.assert_allclose(back.spacing, volume.spacing, atol=1e-4)
    np.testing.assert_allclose(back.origin_lps, volume.origin_lps, atol=1e-3)
    np.testing.assert_allclose(back.direction_lps, volume.direction_lps, atol=1e-5)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.metadata["source_format"] == "dicom"
    assert back.metadata["dicom"]["PatientID"] == "PID-12345"
    # A single file of the series stands for the whole series.
    single = read_volume(sorted(folder.iterdir())[2])
    assert single.shape_ijk == volume.shape_ijk
