"""DICOM SEG and SR written by `stage` when the study is a DICOM series (for PACS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

from DVTStagingLib.cli import main  # noqa: E402
from DVTStagingLib.io.dicom_outputs import PRIVATE_SCHEME, SEG_NAME, SR_NAME  # noqa: E402
from DVTStagingLib.io.roi import BoxROI, read_rois, write_rois  # noqa: E402
from DVTStagingLib.io.volume import read_volume  # noqa: E402
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid  # noqa: E402

STUDY_UID = generate_uid()


def write_mr_series(volume, folder, patient_name="DOE^JANE", patient_id="PID-12345"):
    """An MR Image Storage series of the volume, one file per slice, with patient identifiers.

    Files are named in reverse slice order so that the reader has to sort them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, frame_uid = generate_uid(), generate_uid()
    direction = volume.direction_lps
    n = volume.array.shape[0]
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{n - k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_name, patient_id, "19700101", "F"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY_UID, series_uid, frame_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "ACC1"
        ds.ReferringPhysicianName, ds.Manufacturer = "", "test"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 3, k + 1
        ds.SeriesDescription = "BTI test"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "GR", "NONE", "", "3D"
        ds.EchoTrainLength = 1
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [float(v) for v in volume.ijk_to_lps[:3, :3] @ [0, 0, k] + volume.origin_lps]
        ds.ImageOrientationPatient = [float(v) for v in [*direction[:, 0], *direction[:, 1]]]
        ds.PixelSpacing = [float(volume.spacing[1]), float(volume.spacing[0])]
        ds.SliceThickness = float(volume.spacing[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = volume.array.shape[1], volume.array.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(volume.array[k].astype(np.int16)).tobytes()
        ds.save_as(folder / f"im{n - k:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A phantom study with two thrombi as a DICOM series, staged through the CLI."""
    from DVTStagingLib.phantom.study import make_study

    tmp = tmp_path_factory.mktemp("dicom_outputs")
    study = make_study(5, ["acute", "chronic"])
    series = write_mr_series(study.volume, tmp / "series")
    roi_file = write_rois(tmp / "rois.mrk.json", study.rois)
    out = tmp / "out"
    assert main(["stage", str(series), "--roi", str(roi_file), "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    return {"series": series, "out": out, "result": result, "rois": study.rois, "volume": read_volume(series)}


def test_outputs_are_listed_in_result(staged):
    assert staged["result"]["outputs"]["dicom_seg"] == SEG_NAME
    assert staged["result"]["outputs"]["dicom_sr"] == SR_NAME
    assert (staged["out"] / SEG_NAME).is_file() and (staged["out"] / SR_NAME).is_file()


def test_seg_has_thrombus_segment_covering_the_rois(staged):
    seg = hd.seg.segread(staged["out"] / SEG_NAME)
    volume = staged["volume"]
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.StudyInstanceUID == STUDY_UID
    assert seg.PatientID == "PID-12345"
    assert seg.SegmentationType == "BINARY"
    assert len(seg.SegmentSequence) == 1
    desc = seg.get_segment_description(1)
    assert desc.segment_label == "Thrombus ROI"
    assert (desc.segmented_property_type.value, desc.segmented_property_type.scheme_designator) == ("396339007", "SCT")
    assert desc.algorithm_type.value == "SEMIAUTOMATIC"   # boxes drawn by a person, rasterised by us
    # Frames by source instance, in the volume's k order (the reader sorted the files along the normal).
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in volume.metadata["dicom_files"]]
    for k, ds in enumerate(headers):   # the file list is in k order, whatever the file names
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient],
                                   (volume.ijk_to_lps @ [0, 0, k, 1])[:3], atol=1e-3)
    order = [ds.SOPInstanceUID for ds in headers]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=order, segment_numbers=[1],
                                               combine_segments=True, assert_missing_frames_are_empty=True)
    expected = np.zeros(volume.array.shape, dtype=bool)
    for roi in staged["rois"]:
        expected |= roi.voxel_mask(volume)
    assert expected.any()
    np.testing.assert_array_equal(np.asarray(pixels) > 0, expected)


def _sr_items(dataset):
    """(concept name code, item) of every content item, depth first."""
    for item in getattr(dataset, "ContentSequence", []):
        name = item.ConceptNameCodeSequence[0]
        yield (name.CodingSchemeDesignator, name.CodeValue), item
        yield from _sr_items(item)


def test_sr_reports_one_stage_per_roi_like_result_json(staged):
    sr = hd.sr.srread(staged["out"] / SR_NAME)
    result = staged["result"]
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"   # Comprehensive 3D SR
    assert sr.StudyInstanceUID == STUDY_UID
    assert sr.PatientID == "PID-12345"
    template = sr.ContentTemplateSequence[0]
    assert template.TemplateIdentifier == "1500"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence
    assert {e.StudyInstanceUID for e in evidence} == {STUDY_UID}
    source_series = read_volume(staged["series"]).metadata["dicom"]["SeriesInstanceUID"]
    assert source_series in {s.SeriesInstanceUID for e in evidence for s in e.ReferencedSeriesSequence}

    source_uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
                   for f in staged["volume"].metadata["dicom_files"]}
    groups = [item for key, item in _sr_items(sr) if key == ("DCM", "125007")]   # Measurement Group
    assert len(groups) == len(result["rois"]) == 2
    found = {}
    for group in groups:
        items = dict(_sr_items(group))
        name = items[("DCM", "112039")].TextValue                                   # Tracking Identifier
        stage = items[(PRIVATE_SCHEME, "DVTSTAGE")].ConceptCodeSequence[0]
        assert stage.CodingSchemeDesignator == PRIVATE_SCHEME
        probs = {}
        for (scheme, code), item in _sr_items(group):
            if scheme == PRIVATE_SCHEME and code.startswith("P-"):
                value = item.MeasuredValueSequence[0]
                assert value.MeasurementUnitsCodeSequence[0].CodeValue == "1"
                assert value.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
                probs[code[2:].lower()] = float(value.NumericValue)
        images = {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                  for key, item in _sr_items(group) if key == ("DCM", "121112")}       # Source of Measurement
        assert images and images <= source_uids, "each group references the source slices its ROI covers"
        found[name] = (stage.CodeValue.lower(), probs)
    for roi in result["rois"]:
        stage, probs = found[roi["name"]]
        assert stage == roi["stage"]
        for c, p in roi["probabilities"].items():
            assert probs[c] == pytest.approx(p, abs=1e-4)


def test_detected_rois_make_an_automatic_segment(staged, tmp_path):
    from DVTStagingLib.io.dicom_outputs import write_dicom_outputs

    outputs = write_dicom_outputs(staged["volume"], staged["rois"], staged["result"], tmp_path, auto_detected=True)
    assert outputs == {"dicom_seg": SEG_NAME, "dicom_sr": SR_NAME}
    desc = hd.seg.segread(tmp_path / SEG_NAME).get_segment_description(1)
    assert desc.algorithm_type.value == "AUTOMATIC"
    assert desc.algorithm_identification[0].AlgorithmName == "DVTStaging thrombus detector"


def test_no_dicom_outputs_for_a_non_dicom_input(tmp_path, capsys):
    from DVTStagingLib.io.dicom_outputs import write_dicom_outputs
    from DVTStagingLib.io.volume import Volume

    volume = Volume(np.zeros((4, 5, 6), np.int16), [1, 1, 1], [0, 0, 0], np.eye(3), {"source_format": "nrrd"})
    roi = BoxROI("r", [-2, -2, 1], [2, 2, 2])
    assert write_dicom_outputs(volume, [roi], {}, tmp_path) == {}
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def enhanced(staged, tmp_path_factory):
    """The same series as one enhanced MR file (highdicom's legacy conversion: a position for every frame),
    staged through the CLI with the same ROIs."""
    import warnings

    from highdicom.legacy import LegacyConvertedEnhancedMRImage

    tmp = tmp_path_factory.mktemp("enhanced")
    slices = [pydicom.dcmread(f) for f in staged["volume"].metadata["dicom_files"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # no window centre/width to carry over: a note, not a fault
        image = LegacyConvertedEnhancedMRImage(slices, series_instance_uid=generate_uid(), series_number=7,
                                               sop_instance_uid=generate_uid(), instance_number=1)
    (tmp / "enhanced").mkdir()
    image.save_as(tmp / "enhanced" / "series.dcm")
    roi_file = write_rois(tmp / "rois.mrk.json", staged["rois"])
    out = tmp / "out"
    assert main(["stage", str(tmp / "enhanced"), "--roi", str(roi_file), "--out", str(out), "--device", "cpu"]) == 0
    return {"file": tmp / "enhanced" / "series.dcm", "out": out, "uid": image.SOPInstanceUID,
            "result": json.loads((out / "result.json").read_text(encoding="utf-8")),
            "volume": read_volume(tmp / "enhanced")}


def test_an_enhanced_mr_file_reads_as_its_series_and_stages_the_same(staged, enhanced):
    """One multi-frame file was refused as 'a single slice'; GDCM places its frames from their positions."""
    series, volume = staged["volume"], enhanced["volume"]
    assert volume.metadata["dicom_files"] == [str(enhanced["file"])]
    assert volume.metadata["dicom"]["StudyInstanceUID"] == STUDY_UID
    assert volume.shape_ijk == series.shape_ijk
    # every voxel at the same place in the patient, whatever order the frames were stored in
    corners = np.array([[i, j, k, 1] for i in (0, 5) for j in (0, 7) for k in range(series.array.shape[0])]).T
    points = series.ijk_to_lps @ corners
    back = np.rint(np.linalg.solve(volume.ijk_to_lps, points)).astype(int)
    np.testing.assert_allclose(volume.ijk_to_lps @ back, points, atol=1e-3)
    np.testing.assert_array_equal(volume.array[back[2], back[1], back[0]],
                                  series.array[corners[2], corners[1], corners[0]])
    for one, other in zip(staged["result"]["rois"], enhanced["result"]["rois"]):
        assert (one["name"], one["stage"]) == (other["name"], other["stage"])
        for c, p in one["probabilities"].items():
            assert other["probabilities"][c] == pytest.approx(p, abs=1e-4)


def test_the_seg_and_sr_of_an_enhanced_mr_study_reference_its_frames(enhanced):
    out, volume = enhanced["out"], enhanced["volume"]
    assert enhanced["result"]["outputs"]["dicom_seg"] == SEG_NAME
    seg = hd.seg.segread(out / SEG_NAME)
    frames = list(range(1, volume.array.shape[0] + 1))
    pixels = seg.get_pixels_by_source_frame(source_sop_instance_uid=enhanced["uid"], source_frame_numbers=frames,
                                            segment_numbers=[1], combine_segments=True,
                                            assert_missing_frames_are_empty=True)
    expected = np.zeros(volume.array.shape, dtype=bool)
    rois = {r.name: r for r in read_rois(out / "rois.mrk.json")}
    for roi in rois.values():
        expected |= roi.voxel_mask(volume)
    assert expected.any()
    np.testing.assert_array_equal(np.asarray(pixels) > 0, expected)
    sr = hd.sr.srread(out / SR_NAME)
    groups = [item for key, item in _sr_items(sr) if key == ("DCM", "125007")]
    assert len(groups) == 2
    for group in groups:
        name = dict(_sr_items(group))[("DCM", "112039")].TextValue
        covered = np.flatnonzero(rois[name].voxel_mask(volume).any(axis=(1, 2))) + 1
        sources = [item.ReferencedSOPSequence[0] for key, item in _sr_items(group) if key == ("DCM", "121112")]
        assert [s.ReferencedSOPInstanceUID for s in sources] == [enhanced["uid"]]
        assert [int(f) for f in sources[0].ReferencedFrameNumber] == covered.tolist()


def test_a_multi_frame_file_without_frame_positions_is_refused(tmp_path):
    """MR Image Storage with several frames records one position: where the others lie is unknown."""
    from DVTStagingLib.core.errors import InputFileError

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "frames.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), generate_uid(), "X"
    ds.NumberOfFrames, ds.Rows, ds.Columns, ds.SamplesPerPixel = 12, 16, 16, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "MONOCHROME2", 16, 16, 15
    ds.PixelRepresentation, ds.PixelSpacing, ds.SliceThickness = 0, [0.8, 0.8], 3.0
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.PixelData = (np.arange(12 * 16 * 16) % 900).astype(np.uint16).tobytes()
    ds.save_as(tmp_path / "frames.dcm", enforce_file_format=True)
    with pytest.raises(InputFileError, match="12 frames of SOP class 1.2.840.10008.5.1.4.1.1.4, which records no "
                                             "position for each frame"):
        read_volume(tmp_path / "frames.dcm")
