"""A background job's outputs as scene nodes: the ROIs (and thrombus segmentation) a detection found; a staging
run's answer as soon as its result.json is there (table, chart, per-ROI results), then, when the run ends, its
overlays beside them."""

from __future__ import annotations

import logging

from ..io.roi import read_rois
from ..research.worklist import SEGMENTATION_FILE
from ..staging.outputs import ROIS_FILE, read_stage_result
from . import result_nodes, segmentation_nodes, study_nodes


def load_results(output_folder, volume_node, roi_nodes=None) -> result_nodes.StagingResultNodes:
    """Nodes for a `dvt-staging stage` output folder; `roi_nodes` in staging order, or None: the ROIs the run
    detected itself (its rois.mrk.json) become new nodes."""
    result = read_stage_result(output_folder)
    return _with_rois(result_nodes.load_results, result, volume_node, roi_nodes)


def _with_rois(load, result, volume_node, roi_nodes):
    if roi_nodes is None:
        roi_nodes = study_nodes.add_rois(volume_node, read_rois(result.rois_path))
    if any(n is None for n in roi_nodes):
        raise RuntimeError("a ROI was deleted while it was being staged")
    return load(result, volume_node, roi_nodes)


def hand_over_answer(job, scene) -> None:
    """A staging job's answer as nodes, given to `job.on_answer` and kept for the job's end.  A problem is
    only logged here: the end of the run loads the folder again and reports it."""
    volume = scene.GetNodeByID(job.volume_node_id)
    if job.on_answer is None or volume is None:
        return
    try:
        roi_nodes = [scene.GetNodeByID(i) for i in job.roi_node_ids] or None
        job.answer_nodes = _with_rois(result_nodes.load_answer, read_stage_result(job.out_folder), volume, roi_nodes)
    except Exception:
        logging.exception("DVTStaging: loading the answer failed")
        return
    job.on_answer(job.answer_nodes)


def finished_nodes(job, volume_node):
    """What a job that ended well made: ROI nodes (detect; the detected thrombus becomes the study's thrombus
    segmentation unless it has one) or the staging result's nodes (raises when its folder cannot be read)."""
    scene = volume_node.GetScene()
    if job.kind == "detect":
        nodes = study_nodes.add_rois(volume_node, read_rois(job.out_folder / ROIS_FILE))
        if (job.out_folder / SEGMENTATION_FILE).is_file():
            segmentation_nodes.load_thrombus_segmentation(volume_node, job.out_folder / SEGMENTATION_FILE)
        return nodes
    if job.answer_nodes is not None:      # the answer is shown: its overlays join it
        return result_nodes.add_overlays(job.answer_nodes, read_stage_result(job.out_folder))
    return load_results(job.out_folder, volume_node, [scene.GetNodeByID(i) for i in job.roi_node_ids] or None)
