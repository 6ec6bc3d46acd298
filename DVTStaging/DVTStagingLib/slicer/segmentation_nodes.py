"""A study's thrombus segmentation in the scene: the detector's mask (thrombus.seg.nrrd, terminology "Thrombus",
SNOMED 396339007: io/segmentation.py) as a segmentation node the annotator refines in Segment Editor.

The study's volume references the node (role `ROLE_SEGMENTATION`), its reference image geometry is the
study volume (Segment Editor edits on the study's grid and offers the study as source volume), and it sits in
the study's "DVT staging" subject-hierarchy folder.  What the annotator drew is read back as a mask on the
study's grid (`thrombus_mask`), which the worklist saves (`write_thrombus_segmentation`, with Slicer's own
writer: the worklist needs no extra package) and the export writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import vtk

import slicer

from . import study_nodes

ROLE_SEGMENTATION = "DVTStaging.thrombusSegmentation"
THROMBUS_CODE = "396339007"     # SNOMED CT "Thrombus", the segment's terminology type
# The terminology entry Slicer stores for io/segmentation.py's thrombus segment (what slicerio writes and reads).
THROMBUS_TERMINOLOGY = ("Segmentation category and type - DICOM master list~SCT^49755003^Morphologically Altered "
                        f"Structure~SCT^{THROMBUS_CODE}^Thrombus~^^~~^^~^^")
THROMBUS_COLOR = (1.0, 0.55, 0.0)


def thrombus_segmentation(volume_node):
    """The study's thrombus segmentation node, or None."""
    return volume_node.GetNodeReference(ROLE_SEGMENTATION) if volume_node is not None else None


def load_thrombus_segmentation(volume_node, path, replace: bool = False):
    """Load a thrombus .seg.nrrd as the study's thrombus segmentation.  A study that already has one keeps it
    (it may hold the annotator's edits) unless `replace`; returns the study's segmentation node."""
    existing = thrombus_segmentation(volume_node)
    if existing is not None and not replace:
        return existing
    scene = volume_node.GetScene()
    node = slicer.modules.segmentations.logic().LoadSegmentationFromFile(
        str(path), True, scene.GenerateUniqueName(f"{volume_node.GetName()} thrombus"))
    if node is None:
        raise RuntimeError(f"cannot load the thrombus segmentation {path}")
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    node.CreateDefaultDisplayNodes()
    if existing is not None:
        scene.RemoveNode(existing)
    volume_node.SetNodeReferenceID(ROLE_SEGMENTATION, node.GetID())
    study_nodes.place_in_study(volume_node, [node])
    return node


def _is_thrombus(segment_id: str, segment) -> bool:
    terminology = vtk.reference("")
    segment.GetTag("TerminologyEntry", terminology)     # "context~category~SCT^396339007^Thrombus~..."
    return (segment_id.lower().startswith("thrombus") or segment.GetName().lower().startswith("thrombus")
            or f"^{THROMBUS_CODE}^" in str(terminology))


def thrombus_segment_ids(segmentation_node) -> list[str]:
    """The node's thrombus segments: by id or name ("thrombus...") or by terminology (SNOMED 396339007)."""
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    return [i for i in ids if _is_thrombus(i, segmentation.GetSegment(i))]


def thrombus_mask(volume_node) -> np.ndarray | None:
    """The union of the study's thrombus segments as a bool [k, j, i] mask on the study's grid; None when the
    study has no thrombus segmentation (an emptied one gives an all-False mask)."""
    node = thrombus_segmentation(volume_node)
    if node is None:
        return None
    dims = volume_node.GetImageData().GetDimensions()
    mask = np.zeros(dims[::-1], dtype=bool)
    for segment_id in thrombus_segment_ids(node):
        array = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume_node)
        if array is not None:
            mask |= np.asarray(array) > 0
    return mask


def write_thrombus_segmentation(volume_node, path) -> Path:
    """Write the study's thrombus mask (`thrombus_mask`) as one segment "thrombus" on the study's grid to `path`
    (.seg.nrrd, replaced atomically), with Slicer's segmentation writer; the study must have a thrombus
    segmentation.  An empty mask is written as Slicer writes empty segmentations (a 1-voxel labelmap)."""
    mask = thrombus_mask(volume_node)
    if mask is None:
        raise ValueError(f"study {volume_node.GetName()} has no thrombus segmentation")
    scene, path = volume_node.GetScene(), Path(path)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName("thrombus-to-save"))
    try:
        node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        segment_id = node.GetSegmentation().AddEmptySegment("thrombus", "Thrombus", list(THROMBUS_COLOR))
        node.GetSegmentation().GetSegment(segment_id).SetTag("TerminologyEntry", THROMBUS_TERMINOLOGY)
        if mask.any():
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), node, segment_id, volume_node)
        storage = slicer.vtkMRMLSegmentationStorageNode()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name[:-len('.seg.nrrd')]}.tmp.seg.nrrd")
        storage.SetFileName(str(tmp))
        if not storage.WriteData(node):
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"cannot write the thrombus segmentation {path}")
        os.replace(tmp, path)
    finally:
        scene.RemoveNode(node)
    return path
