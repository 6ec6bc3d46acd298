"""DICOM outputs of `stage` for PACS: a SEG of the thrombus ROIs and a TID 1500 SR of the stages.

Written only when the staged study was read from a DICOM series (the volume
keeps the source file names in ``metadata["dicom_files"]``).  Both objects
join the source study: they copy its patient and study attributes (needed for
PACS to file them with the study) and reference the source images: each slice's own file, or the frames of
an enhanced MR file.

* ``thrombus-seg.dcm``: DICOM SEG, one binary segment "Thrombus ROI" coded
  SCT 396339007 "Thrombus" (category SCT 49755003).  There is no thrombus
  delineation at staging time, so the segment is the union of the ROI boxes
  rasterised on the source grid (voxel centres inside a box), which contains
  the thrombus and some surrounding tissue; the segment description says so.
  Algorithm type SEMIAUTOMATIC for boxes a person drew, AUTOMATIC for boxes
  found by the detector.
* ``stage-sr.dcm``: Comprehensive 3D SR with a TID 1500 Measurement Report,
  one measurement group per ROI (tracking identifier = ROI name) with the
  stage as a qualitative evaluation and the class probabilities as
  measurements in UCUM unit "1".  No standard code for "DVT stage" (or
  acute/subacute/chronic thrombus age as an evaluation) was found, so these
  use the private coding scheme designator ``99DVTSTG``.

pydicom and highdicom are optional (the ``dicom`` extra); without them the
outputs are skipped with a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import __version__

SEG_NAME = "thrombus-seg.dcm"
SR_NAME = "stage-sr.dcm"
PRIVATE_SCHEME = "99DVTSTG"
MANUFACTURER = "DVTStaging (research software, not for clinical use)"
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902


def is_dicom_volume(volume) -> bool:
    meta = getattr(volume, "metadata", None) or {}
    return meta.get("source_format") == "dicom" and bool(meta.get("dicom_files"))


def _codes():
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    return {
        "thrombus": CodedConcept("396339007", "SCT", "Thrombus"),
        "category": CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure"),
        "stage": CodedConcept("DVTSTAGE", PRIVATE_SCHEME, "DVT stage"),
        "unit": CodedConcept("1", "UCUM", "no units"),
        "procedure": codes.SCT.MagneticResonanceImagingOfVessels,
    }


def stage_code(stage: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(stage.upper()[:16], PRIVATE_SCHEME, f"{stage} thrombus")


def probability_code(stage: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(f"P-{stage.upper()}"[:16], PRIVATE_SCHEME, f"Probability of {stage} stage")


def _frames(dataset) -> int:
    return int(getattr(dataset, "NumberOfFrames", 1) or 1)


def _source_datasets(volume):
    """Headers of the source images, in the volume's k order: one file per slice (GDCM sorts the files along
    the normal), or one multi-frame file (enhanced MR) whose frame k is slice k (GDCM keeps the frame order)."""
    import pydicom

    files = volume.metadata["dicom_files"]
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    frames = sum(_frames(d) for d in datasets)
    if frames != volume.array.shape[0] or (len(datasets) > 1 and frames != len(datasets)):
        raise ValueError(f"{len(datasets)} source files of {frames} frames for {volume.array.shape[0]} slices")
    return datasets


def _slice_references(sources, slices):
    """The SR's references to the volume's slices `slices`: each slice's own file, or its frames of the one
    multi-frame file."""
    import highdicom as hd

    if len(sources) == 1 and _frames(sources[0]) > 1:
        return [hd.sr.SourceImageForMeasurementGroup.from_source_image(
            sources[0], referenced_frame_numbers=[int(k) + 1 for k in slices])]
    return [hd.sr.SourceImageForMeasurementGroup.from_source_image(sources[int(k)]) for k in slices]


def _atomic_save(dataset, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    dataset.save_as(tmp, enforce_file_format=True)
    os.replace(tmp, path)
    return path


def write_thrombus_seg(volume, rois, sources, path: Path, model_id: str, auto_detected: bool):
    import highdicom as hd
    from pydicom.sr.codedict import codes as dcm_codes

    codes = _codes()
    mask = np.zeros(volume.array.shape, dtype=bool)
    for roi in rois:
        mask |= roi.voxel_mask(volume)
    # The volume array is [k, j, i]: frame k, DICOM row j, column i, like the source slices.
    algorithm = hd.AlgorithmIdentificationSequence(
        name="DVTStaging thrombus detector" if auto_detected else "DVTStaging ROI box rasterisation",
        family=dcm_codes.cid7162.ArtificialIntelligence if auto_detected
        else dcm_codes.cid7162.MorphologicalOperations,
        version=__version__,
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Thrombus ROI",
        segmented_property_category=codes["category"],
        segmented_property_type=codes["thrombus"],
        algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if auto_detected
                        else hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC),
        algorithm_identification=algorithm,
    )
    description.SegmentDescription = "Box ROI(s) around the thrombus; not a delineation"
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model_id[:64],
        software_versions=__version__,
        device_serial_number="none",
        content_label="THROMBUS_ROI",
        content_description="DVTStaging thrombus ROIs (research use only)",
        series_description="DVTStaging thrombus ROI SEG",
    )
    return _atomic_save(seg, path), seg


def write_stage_sr(result: dict, volume, rois, sources, path: Path, seg=None):
    import highdicom as hd
    from pydicom.sr.codedict import codes as dcm_codes

    codes = _codes()
    model = result["model"]
    observer = hd.sr.ObserverContext(
        observer_type=dcm_codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="DVTStaging", manufacturer_name=MANUFACTURER, model_name=model["id"][:64]),
    )
    algorithm = hd.sr.AlgorithmIdentification(name=model["id"][:64], version=(model.get("version") or "0")[:64])
    by_name = {r.name: r for r in rois}
    groups = []
    for entry in result["rois"]:
        roi = by_name[entry["name"]]
        covered = np.flatnonzero(roi.voxel_mask(volume).any(axis=(1, 2)))
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=entry["name"][:64]),
            finding_type=codes["thrombus"],
            algorithm_id=algorithm,
            measurements=[hd.sr.Measurement(name=probability_code(c), value=float(p), unit=codes["unit"],
                                            algorithm_id=algorithm)
                          for c, p in entry["probabilities"].items()],
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=codes["stage"],
                                                                 value=stage_code(entry["stage"]))],
            source_images=_slice_references(sources, covered),
        ))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes["procedure"],
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(sources) + ([seg] if seg is not None else []),
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description="DVTStaging stage report (research use only)",
    )
    return _atomic_save(sr, path)


def write_dicom_outputs(volume, rois, result: dict, out: Path, auto_detected: bool = False) -> dict:
    """Write the SEG and SR into `out`; returns the entries for result["outputs"] ({} when skipped)."""
    from ..core.progress import status

    if not is_dicom_volume(volume):
        return {}
    try:
        import highdicom  # noqa: F401
        import pydicom  # noqa: F401
    except ImportError:
        status("stage: warning: DICOM SEG/SR not written (install pydicom and highdicom: the 'dicom' extra)")
        return {}
    out = Path(out)
    try:
        sources = _source_datasets(volume)
        _, seg = write_thrombus_seg(volume, rois, sources, out / SEG_NAME, result["model"]["id"], auto_detected)
        write_stage_sr(result, volume, rois, sources, out / SR_NAME, seg)
    except Exception as exc:  # a source series highdicom cannot derive from must not lose the staging result
        for name in (SEG_NAME, SR_NAME):
            (out / name).unlink(missing_ok=True)
        status(f"stage: warning: DICOM SEG/SR not written ({type(exc).__name__}: {' '.join(str(exc).split())})")
        return {}
    return {"dicom_seg": SEG_NAME, "dicom_sr": SR_NAME}
