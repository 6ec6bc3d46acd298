"""A study in the scene: its volume node, its thrombus ROI nodes, and what is recorded on them.

The ROIs of a study are the markups ROI nodes its volume references (role
`ROLE_ROI`); labels and the model's answer per ROI are node attributes, so
they are saved with the scene and in `.mrb` files.  Everything is placed in a
"DVT staging" subject-hierarchy folder beside the volume.
"""

from __future__ import annotations

import json

import slicer

from ..io.roi import BoxROI
from ..research.annotation import CaseAnnotation, check_stage
from .nodes import roi_to_node

ROLE_ROI = "DVTStaging.roi"
# Node attributes (MRML attributes are strings).
ATTR_TRUE_STAGE = "DVTStaging.TrueStage"           # on a ROI node: a stage or "" (not labeled)
ATTR_PREDICTED_STAGE = "DVTStaging.Stage"          # on a ROI node: the model's stage
ATTR_PROBABILITIES = "DVTStaging.Probabilities"    # on a ROI node: JSON {stage: p}
ATTR_RATIO = "DVTStaging.ThrombusMuscleRatio"      # on a ROI node: float or ""
ATTR_REVIEWED = "DVTStaging.Reviewed"              # on the volume node: "1" or "0"
ATTR_NOTES = "DVTStaging.Notes"                    # on the volume node: free text
DEFAULT_ROI_SIZE_MM = (20.0, 20.0, 40.0)


# -- the study ----------------------------------------------------------------------------------
ATTR_OVERLAY = "DVTStaging.Overlay"                # on an attention volume: the map it shows


def first_study_volume(scene):
    """The first volume that can be a study: a plain scalar volume (not a label map, not one of our maps)."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
        if node.GetClassName() == "vtkMRMLScalarVolumeNode" and not node.GetAttribute(ATTR_OVERLAY):
            return node
    return None


# -- ROIs --------------------------------------------------------------------------------------
def roi_nodes(volume_node) -> list:
    """The thrombus ROIs of a study: those its volume references, else every ROI in the scene."""
    if volume_node is None:
        return []
    n = volume_node.GetNumberOfNodeReferences(ROLE_ROI)
    nodes = [volume_node.GetNthNodeReference(ROLE_ROI, i) for i in range(n)]
    nodes = [node for node in nodes if node is not None]
    if nodes:
        return nodes
    scene = volume_node.GetScene()
    return [scene.GetNthNodeByClass(i, "vtkMRMLMarkupsROINode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode"))]


def _adopt(volume_node, roi_node) -> None:
    roi_node.CreateDefaultDisplayNodes()
    volume_node.AddNodeReferenceID(ROLE_ROI, roi_node.GetID())


def add_roi(volume_node, name: str = "", center=None, size=None, interactive: bool = False):
    """A new thrombus ROI of the study: centred in the volume unless told otherwise, or (interactive)
    left undefined for the user to draw in a slice view."""
    scene = volume_node.GetScene()
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name or scene.GenerateUniqueName("thrombus"))
    _adopt(volume_node, roi)
    place_in_study(volume_node, [roi])
    if interactive:
        return roi
    if center is None:
        bounds = [0.0] * 6
        volume_node.GetRASBounds(bounds)
        center = [(bounds[2 * a] + bounds[2 * a + 1]) / 2 for a in range(3)]
    roi.SetCenter(*center)
    roi.SetSize(*(size or DEFAULT_ROI_SIZE_MM))
    return roi


def add_rois(volume_node, rois: list[BoxROI]) -> list:
    """ROI nodes for core boxes (auto-detected or saved ones), referenced by the study."""
    nodes = []
    for roi in rois:
        node = roi_to_node(roi, volume_node.GetScene())
        _adopt(volume_node, node)
        nodes.append(node)
    place_in_study(volume_node, nodes)
    return nodes


def remove_roi(volume_node, roi_node) -> None:
    if volume_node is not None:
        for i in reversed(range(volume_node.GetNumberOfNodeReferences(ROLE_ROI))):
            if volume_node.GetNthNodeReferenceID(ROLE_ROI, i) == roi_node.GetID():
                volume_node.RemoveNthNodeReferenceID(ROLE_ROI, i)
    roi_node.GetScene().RemoveNode(roi_node)


def undrawn_rois(roi_node_list) -> list[str]:
    """Names of ROIs still being placed (no size yet): they cannot be staged."""
    return [n.GetName() for n in roi_node_list if min(n.GetSize()) <= 0]


# -- the model's answer per ROI ---------------------------------------------------------------------
def store_roi_result(roi_node, roi_result) -> None:
    roi_node.SetAttribute(ATTR_PREDICTED_STAGE, roi_result.stage)
    roi_node.SetAttribute(ATTR_PROBABILITIES, json.dumps(roi_result.probabilities))
    ratio = roi_result.thrombus_muscle_ratio
    roi_node.SetAttribute(ATTR_RATIO, "" if ratio is None else repr(float(ratio)))


def roi_result(roi_node) -> dict | None:
    """The staged result stored on a ROI node (None before staging)."""
    stage = roi_node.GetAttribute(ATTR_PREDICTED_STAGE)
    if not stage:
        return None
    ratio = roi_node.GetAttribute(ATTR_RATIO)
    return {"stage": stage, "probabilities": json.loads(roi_node.GetAttribute(ATTR_PROBABILITIES) or "{}"),
            "thrombus_muscle_ratio": float(ratio) if ratio else None}


# -- labels ------------------------------------------------------------------------------------------
def set_true_stage(roi_node, stage: str) -> None:
    roi_node.SetAttribute(ATTR_TRUE_STAGE, check_stage(stage))


def true_stage(roi_node) -> str:
    return roi_node.GetAttribute(ATTR_TRUE_STAGE) or ""


def set_reviewed(volume_node, reviewed: bool) -> None:
    volume_node.SetAttribute(ATTR_REVIEWED, "1" if reviewed else "0")


def reviewed(volume_node) -> bool:
    return volume_node.GetAttribute(ATTR_REVIEWED) == "1"


def set_notes(volume_node, notes: str) -> None:
    volume_node.SetAttribute(ATTR_NOTES, notes or "")


def notes(volume_node) -> str:
    return volume_node.GetAttribute(ATTR_NOTES) or ""


def case_annotation(volume_node) -> CaseAnnotation:
    """The study's labels as a core CaseAnnotation (what the worklist saves)."""
    rois = roi_nodes(volume_node)
    return CaseAnnotation(
        true_stages={r.GetName(): true_stage(r) for r in rois},
        predicted_stages={r.GetName(): r.GetAttribute(ATTR_PREDICTED_STAGE)
                          for r in rois if r.GetAttribute(ATTR_PREDICTED_STAGE)},
        reviewed=reviewed(volume_node), notes=notes(volume_node))


def apply_case_annotation(volume_node, annotation: CaseAnnotation) -> None:
    for roi in roi_nodes(volume_node):
        if roi.GetName() in annotation.true_stages:
            set_true_stage(roi, annotation.true_stages[roi.GetName()])
        if roi.GetName() in annotation.predicted_stages:
            roi.SetAttribute(ATTR_PREDICTED_STAGE, annotation.predicted_stages[roi.GetName()])
    set_reviewed(volume_node, annotation.reviewed)
    set_notes(volume_node, annotation.notes)


# -- subject hierarchy -------------------------------------------------------------------------------
def place_in_study(volume_node, nodes) -> int:
    """Put nodes in a 'DVT staging' folder beside the volume, under its study; returns the folder item."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume_node.GetScene())
    volume_item = sh.GetItemByDataNode(volume_node)
    if not volume_item:   # outside the application nodes do not join the hierarchy by themselves
        volume_item = sh.CreateItem(sh.GetSceneItemID(), volume_node)
    study_item = sh.GetItemParent(volume_item)
    folder_name = f"DVT staging: {volume_node.GetName()}"
    folder_item = sh.GetItemChildWithName(study_item, folder_name)
    if not folder_item:
        folder_item = sh.CreateFolderItem(study_item, folder_name)
    for node in nodes:
        if node is None:
            continue
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, folder_item)
        else:
            sh.CreateItem(folder_item, node)
    return folder_item
