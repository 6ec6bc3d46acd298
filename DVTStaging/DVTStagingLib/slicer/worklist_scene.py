"""Studies between disk and the scene: open a worklist study with its saved ROIs, labels and thrombus
segmentation, save them back, list the DICOM database as a worklist, export studies as a dataset, load the
sample study."""

from __future__ import annotations

from pathlib import Path

import slicer

from ..io.roi import read_rois
from . import result_nodes, segmentation_nodes, study_nodes
from .nodes import roi_from_node, update_volume_node, volume_from_node


def _load_volume_file(path, name: str):
    node = slicer.modules.volumes.logic().AddArchetypeVolume(str(path), name)
    if node is None:
        raise RuntimeError(f"Cannot load study {name} from {path}")
    return node


def open_study(worklist, entry):
    """Load a worklist study with the ROIs and labels saved for it; returns its volume node."""
    scene = slicer.mrmlScene
    if entry.kind == "dicom-series":
        from DICOMLib import DICOMUtils

        node_ids = DICOMUtils.loadSeriesByUID([entry.id])
        volume = next((scene.GetNodeByID(i) for i in node_ids if scene.GetNodeByID(i).IsA("vtkMRMLScalarVolumeNode")),
                      None)
        if volume is None:
            raise RuntimeError(f"Cannot load study {entry.name}: the series holds no volume")
    elif entry.kind == "file":
        volume = _load_volume_file(entry.path, Path(entry.name).name)
    else:   # a DICOM folder outside the database: read with the core, exact geometry
        from ..io.volume import read_volume

        volume = update_volume_node(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", entry.name),
                                    read_volume(entry.path))
        volume.CreateDefaultDisplayNodes()
    saved = worklist.saved_rois(entry)
    if saved is not None:
        study_nodes.add_rois(volume, read_rois(saved))
    study_nodes.apply_case_annotation(volume, worklist.annotation(entry))
    segmentation = worklist.saved_segmentation(entry)
    if segmentation is not None:
        segmentation_nodes.load_thrombus_segmentation(volume, segmentation)
    return volume


def save_study(volume_node, worklist, entry) -> Path:
    """Keep the study's ROIs, labels, thrombus segmentation (as edited) and last result beside it (the
    worklist's case folder)."""
    rois = [roi_from_node(n) for n in study_nodes.roi_nodes(volume_node)]
    has_segmentation = segmentation_nodes.thrombus_segmentation(volume_node) is not None
    if has_segmentation:
        segmentation_nodes.write_thrombus_segmentation(volume_node, worklist.segmentation_path(entry))
    return worklist.save(entry, study_nodes.case_annotation(volume_node), rois=rois,
                         result_folder=result_nodes.result_folder(volume_node),
                         remove_segmentation=not has_segmentation)


def worklist_from_dicom_database(database):
    """One worklist entry per MR series of Slicer's DICOM database; labels kept in the database folder."""
    from ..research.worklist import StudyEntry, Worklist

    if database is None or not database.isOpen:
        raise RuntimeError("The DICOM database is not open.")
    entries = []
    for patient in database.patients():
        for study in database.studiesForPatient(patient):
            for series in database.seriesForStudy(study):
                files = database.filesForSeries(series, 1)
                if not files or database.fileValue(files[0], "0008,0060") not in ("MR", ""):
                    continue
                name = " ".join(v for v in (database.fileValue(files[0], tag)
                                            for tag in ("0010,0010", "0008,0020", "0008,103E")) if v)
                entries.append(StudyEntry(series, name or series, None, "dicom-series"))
    if not entries:
        raise RuntimeError("The DICOM database holds no MR series.")
    return Worklist(entries, Path(database.databaseDirectory) / "DVTStaging")


def export_studies(volume_nodes, out_folder, keep_identifiers: bool = False, overwrite: bool = False):
    """Export the studies (ROIs, true stages, reviewed flag, last results, thrombus segmentation unless empty)
    as a dataset; returns it."""
    from ..research.export import ExportStudy, export_cases

    studies = []
    for volume in volume_nodes:
        rois = study_nodes.roi_nodes(volume)
        answers = {r.GetName(): study_nodes.roi_result(r) for r in rois}
        results = {name: answer for name, answer in answers.items() if answer}
        uids = (volume.GetAttribute("DICOM.instanceUIDs") or "").split()
        storage = volume.GetStorageNode()
        source = uids[0] if uids else (storage.GetFileName() if storage and storage.GetFileName() else
                                       f"{volume.GetID()}/{volume.GetName()}")
        mask = segmentation_nodes.thrombus_mask(volume)
        studies.append(ExportStudy(
            volume=volume_from_node(volume), rois=[roi_from_node(r) for r in rois],
            labels=[{"roi": r.GetName(), "stage": study_nodes.true_stage(r) or None} for r in rois],
            status="reviewed" if study_nodes.reviewed(volume) else None, prediction=results or None,
            notes=study_nodes.notes(volume), source_id=source,
            thrombus_mask=mask if mask is not None and mask.any() else None))
    return export_cases(studies, out_folder, keep_identifiers=keep_identifiers, overwrite=overwrite, progress=False)


def load_sample_study(cache_dir):
    """The phantom sample study (generated into the cache on first use) with its thrombus ROI."""
    from .sample_study import IMAGE_FILE, SAMPLE_NAME, ensure_sample_study

    folder = ensure_sample_study(cache_dir)
    volume = _load_volume_file(folder / IMAGE_FILE, SAMPLE_NAME)
    for roi_file in sorted(folder.glob("thrombus-*.mrk.json")):
        study_nodes.add_rois(volume, read_rois(roi_file))
    return volume
