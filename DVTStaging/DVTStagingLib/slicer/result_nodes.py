"""What one staging run puts into the scene: per-ROI answers, the results table, the per-slice chart,
the attention volumes (heat colours, 0-1), all in the study's subject-hierarchy folder.

The volume node references the result nodes (roles below), so a re-run
replaces them and a saved scene finds them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import slicer
import vtk

from ..core.stages import STAGE_TITLES, STAGES, stage_rgb
from ..io.volume import read_volume
from ..staging.outputs import OVERLAY_FILES, StageResult
from . import study_nodes
from .nodes import update_volume_node

ROLE_TABLE = "DVTStaging.resultsTable"
ROLE_CHART = "DVTStaging.sliceChart"
ROLE_ATTENTION = "DVTStaging.attention."   # + map name
ATTR_RESULT_FOLDER = "DVTStaging.ResultFolder"   # on the table: where the run's files are (for the worklist)
ATTENTION_MAPS = list(OVERLAY_FILES)     # the heat maps a result may show; evidence first (default)
# Heat colour tables, best first: the first two come with Slicer's colour files, PET-Heat is built in.
HEAT_COLOR_NODE_NAMES = ("Inferno", "ColdToHotRainbow", "PET-Heat")
ATTENTION_VISIBLE_FROM = 0.05   # below this the map is transparent: the study stays readable around the hot spot
SERIES_LINE_STYLES = ("Solid", "Dash", "Dot", "DashDot")   # one per ROI in the chart


@dataclass
class StagingResultNodes:
    """What one staging run put into the scene."""

    result: StageResult                 # the run's result.json
    volumeNode: object                  # the staged study
    roiNodes: list                      # one markups ROI per staged thrombus, in result order
    tableNode: object                   # one row per ROI
    chartNode: object                   # per-slice probabilities
    sliceTableNodes: list               # the chart's tables and series
    attentionNodes: dict                # map name -> scalar volume node
    folderItemID: int                   # subject-hierarchy folder holding all of them


def load_results(result: StageResult, volume_node, roi_node_list: list) -> StagingResultNodes:
    """Nodes for a finished run whose ROIs are `roi_node_list` (same order as result.rois)."""
    return add_overlays(load_answer(result, volume_node, roi_node_list), result)


def load_answer(result: StageResult, volume_node, roi_node_list: list) -> StagingResultNodes:
    """The answer's nodes (ROI results, table, chart), shown while the overlays are still being made; an
    earlier run's result nodes go."""
    if len(roi_node_list) != len(result.rois):
        raise ValueError(f"the run staged {len(result.rois)} ROIs, but {len(roi_node_list)} were sent")
    remove_results(volume_node)
    for node, roi_result in zip(roi_node_list, result.rois):
        study_nodes.store_roi_result(node, roi_result)
    table = _results_table(volume_node, result)
    chart, slice_nodes = _slice_chart(volume_node, result)
    folder = study_nodes.place_in_study(volume_node, roi_node_list + [table, chart] + slice_nodes)
    return StagingResultNodes(result, volume_node, list(roi_node_list), table, chart, slice_nodes, {}, folder)


def add_overlays(nodes: StagingResultNodes, result: StageResult) -> StagingResultNodes:
    """The heat maps of the completed run `result` (the same run as `nodes`' answer) join its nodes."""
    for which in ATTENTION_MAPS:
        path = result.attention_path(which)
        if path is not None and which not in nodes.attentionNodes:
            nodes.attentionNodes[which] = _attention_volume(nodes.volumeNode, path, which)
    study_nodes.place_in_study(nodes.volumeNode, list(nodes.attentionNodes.values()))
    nodes.result = result
    return nodes


def results_table(volume_node):
    return volume_node.GetNodeReference(ROLE_TABLE) if volume_node else None


def result_folder(volume_node) -> str | None:
    """The output folder of the study's last run, while it exists."""
    table = results_table(volume_node)
    return table.GetAttribute(ATTR_RESULT_FOLDER) if table is not None else None


def remove_results(volume_node) -> None:
    """Drop the result nodes of an earlier run of this study (ROIs and labels stay)."""
    scene = volume_node.GetScene()
    doomed = [volume_node.GetNodeReference(ROLE_TABLE)]
    doomed += [volume_node.GetNodeReference(ROLE_ATTENTION + m) for m in ATTENTION_MAPS]
    chart = volume_node.GetNodeReference(ROLE_CHART)
    if chart is not None:
        for i in range(chart.GetNumberOfPlotSeriesNodes()):
            series = chart.GetNthPlotSeriesNode(i)
            doomed += [series, series.GetTableNode() if series else None]
        doomed.append(chart)
    for node in {id(n): n for n in doomed if n is not None}.values():
        if scene.IsNodePresent(node):
            scene.RemoveNode(node)


def attention_node(volume_node, which: str = "evidence"):
    return volume_node.GetNodeReference(ROLE_ATTENTION + which) if volume_node else None


def show_attention(volume_node, which: str = "evidence", visible: bool = True, opacity: float = 0.4) -> None:
    """The attention map as foreground over the study in every slice view; hidden: our map leaves the
    foreground (a volume the user put there stays)."""
    attention = attention_node(volume_node, which)
    ours = {n.GetID() for n in (attention_node(volume_node, m) for m in ATTENTION_MAPS) if n is not None}
    scene = volume_node.GetScene()
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        if not composite.GetBackgroundVolumeID():
            composite.SetBackgroundVolumeID(volume_node.GetID())
        if visible and attention is not None:
            composite.SetForegroundVolumeID(attention.GetID())
            composite.SetForegroundOpacity(float(opacity))
        elif composite.GetForegroundVolumeID() in ours:
            composite.SetForegroundVolumeID(None)


def heat_color_node(scene):
    for name in HEAT_COLOR_NODE_NAMES:
        node = scene.GetFirstNodeByName(name)
        if node is not None and node.IsA("vtkMRMLColorNode"):
            return node
    return None


def _attention_volume(volume_node, path, which: str):
    scene = volume_node.GetScene()
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                   scene.GenerateUniqueName(f"{volume_node.GetName()} attention ({which})"))
    update_volume_node(node, read_volume(path))
    node.SetAttribute(study_nodes.ATTR_OVERLAY, which)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    color = heat_color_node(scene)
    if color is not None:
        display.SetAndObserveColorNodeID(color.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)   # the map is 0-1: equal values look the same in every study
    display.SetApplyThreshold(True)
    display.SetThreshold(ATTENTION_VISIBLE_FROM, 1.0)
    volume_node.SetNodeReferenceID(ROLE_ATTENTION + which, node.GetID())
    return node


_COLUMNS = [("name", vtk.vtkStringArray, "ROI"), ("stage", vtk.vtkStringArray, "Stage"),
            *((f"p_{s}", vtk.vtkDoubleArray, f"P({STAGE_TITLES[s].lower()})") for s in STAGES),
            ("thrombus_muscle_ratio", vtk.vtkDoubleArray, "Thrombus/muscle ratio"),
            ("reason", vtk.vtkStringArray, "Why indeterminate")]


def _results_table(volume_node, result: StageResult):
    scene = volume_node.GetScene()
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{volume_node.GetName()} staging"))
    rows = result.table_rows()
    for key, array_type, title in _COLUMNS:
        array = array_type()
        array.SetName(key)
        for row in rows:
            array.InsertNextValue(row[key])
        table.AddColumn(array)
        table.SetColumnTitle(key, title)
    table.SetAttribute("DVTStaging.StudyStage", result.stage)
    table.SetAttribute("DVTStaging.Model", json.dumps(result.model))
    table.SetAttribute("DVTStaging.Device", result.device)
    table.SetAttribute(ATTR_RESULT_FOLDER, str(result.folder))
    volume_node.SetNodeReferenceID(ROLE_TABLE, table.GetID())
    return table


def _slice_chart(volume_node, result: StageResult):
    scene = volume_node.GetScene()
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode",
                                    scene.GenerateUniqueName(f"{volume_node.GetName()} per-slice probabilities"))
    axes = sorted({r.slice_axis for r in result.rois}) or ["k"]
    chart.SetTitle("Per-slice stage probabilities")
    chart.SetXAxisTitle(f"slice index ({', '.join(axes)})")
    chart.SetYAxisTitle("probability")
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(0.0, 1.0)
    tables = []
    for n, roi in enumerate(result.rois):
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{roi.name} per-slice"))
        index = vtk.vtkDoubleArray()
        index.SetName("slice")
        for s in roi.slices:
            index.InsertNextValue(s.index)
        table.AddColumn(index)
        for stage in STAGES:
            values = vtk.vtkDoubleArray()
            values.SetName(stage)
            for s in roi.slices:
                values.InsertNextValue(s.probabilities[stage])
            table.AddColumn(values)
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{roi.name} {stage}")
            series.SetAndObserveTableNodeID(table.GetID())
            series.SetXColumnName("slice")
            series.SetYColumnName(stage)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            series.SetLineStyle(getattr(slicer.vtkMRMLPlotSeriesNode,
                                        f"LineStyle{SERIES_LINE_STYLES[n % len(SERIES_LINE_STYLES)]}"))
            series.SetColor(*stage_rgb(stage))
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        tables.append(table)
    volume_node.SetNodeReferenceID(ROLE_CHART, chart.GetID())
    series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
    return chart, tables + series
