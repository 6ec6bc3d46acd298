"""Issue 19: the annotation loop in Slicer, and the worklist's "uncertain first" order.

- The ordering itself (pure, Slicer-free): `research.worklist.uncertain_first`, `Worklist.sort`, `save_result`.
- On the strict fakes (Testing/slicer_fakes) over real MRML, with Testing/fake_stage_cli.py as the CLI:
  Auto-detect loads the detected thrombus as a segmentation node (terminology Thrombus, in the study's
  subject hierarchy, the study as reference geometry); the annotator's edit survives Next, Previous and Save
  study and reaches the export; "uncertain first" stages the studies without a result in the background
  and orders the table by the results.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import slicer
from DVTStagingLib.cli import main
from DVTStagingLib.core.stages import INDETERMINATE
from DVTStagingLib.io.roi import read_rois
from DVTStagingLib.io.segmentation import read_segmentation
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study
from DVTStagingLib.research.annotation import CaseAnnotation
from DVTStagingLib.research.worklist import (
    FOLDER_ORDER,
    UNCERTAIN_FIRST,
    StudyEntry,
    Worklist,
    result_entropy,
    uncertain_first,
)
from slicer_app import vtk_errors
from slicer_fakes.fixtures import *  # noqa: F401,F403  (fixtures: slicer_session, panel, shared_cache)


def _result(stage, acute, subacute, chronic):
    return {"stage": stage, "probabilities": {"acute": acute, "subacute": subacute, "chronic": chronic}}


# -- the ordering (pure) ------------------------------------------------------------------------------------------------
def test_entropy_of_a_result():
    assert result_entropy(_result("acute", 1.0, 0.0, 0.0)) == 0.0
    assert result_entropy(_result("acute", 1 / 3, 1 / 3, 1 / 3)) == pytest.approx(1.0)
    assert 0 < result_entropy(_result("acute", 0.8, 0.1, 0.1)) < result_entropy(_result("acute", 0.5, 0.3, 0.2)) < 1


def test_uncertain_first_puts_unlabeled_indeterminate_then_high_entropy_first_and_labeled_last():
    e = {name: StudyEntry(name, name, None) for name in "abcdefgh"}
    studies = [
        (e["a"], "labeled", _result(INDETERMINATE, 0.4, 0.3, 0.3)),   # labeled: after every unlabeled study
        (e["b"], "staged", _result("acute", 0.9, 0.05, 0.05)),         # confident
        (e["c"], "new", None),                                        # no result yet
        (e["d"], "staged", _result(INDETERMINATE, 0.6, 0.3, 0.1)),
        (e["e"], "staged", _result("chronic", 0.2, 0.3, 0.5)),        # unsure
        (e["f"], "reviewed", None),
        (e["g"], "staged", _result(INDETERMINATE, 0.4, 0.3, 0.3)),    # indeterminate and the most unsure
        (e["h"], "staged", _result("acute", 0.9, 0.05, 0.05)),        # ties keep the folder order
    ]
    assert [x.id for x in uncertain_first(studies)] == ["g", "d", "e", "b", "h", "c", "a", "f"]
    assert uncertain_first([]) == []


def _result_folder(tmp_path, name, stage, probs, rois=("thrombus-1",)):
    folder = tmp_path / name
    folder.mkdir()
    doc = {"stage": stage, "probabilities": dict(zip(("acute", "subacute", "chronic"), probs)),
           "rois": [{"name": r, "stage": stage} for r in rois]}
    (folder / "result.json").write_text(json.dumps(doc))
    (folder / "rois.mrk.json").write_text("{}")
    return folder


def test_worklist_sort_keeps_the_current_study_and_background_results_make_studies_staged(tmp_path):
    entries = [StudyEntry(f"s{n}", f"s{n}", tmp_path / f"s{n}.nrrd") for n in range(4)]
    worklist = Worklist(entries, tmp_path / "state")
    worklist.go_to("s1")
    folder = worklist.save_result(entries[2], _result_folder(tmp_path, "r2", INDETERMINATE, (0.4, 0.3, 0.3)))
    worklist.save_result(entries[3], _result_folder(tmp_path, "r3", "acute", (0.7, 0.2, 0.1)))
    worklist.save(entries[0], CaseAnnotation({"thrombus-1": "acute"}))
    assert worklist.status(entries[2]) == "staged" and (folder / "rois.mrk.json").is_file()
    assert worklist.last_result(entries[2])["stage"] == INDETERMINATE and worklist.last_result(entries[1]) is None
    worklist.sort(UNCERTAIN_FIRST)
    assert [e.id for e in worklist.entries] == ["s2", "s3", "s1", "s0"] and worklist.current.id == "s1"
    worklist.sort(FOLDER_ORDER)
    assert worklist.entries == entries and worklist.current.id == "s1"
    # A background result never replaces labels or ROIs the annotator saved.
    worklist.save(entries[1], CaseAnnotation({"mine": "chronic"}), rois=[])
    (worklist.case_folder(entries[1]) / "rois.mrk.json").write_text("saved by the annotator")
    worklist.save_result(entries[1], _result_folder(tmp_path, "r1", "acute", (0.5, 0.3, 0.2), rois=("mine",)))
    assert worklist.annotation(entries[1]).true_stages == {"mine": "chronic"}
    assert worklist.annotation(entries[1]).predicted_stages == {"mine": "acute"}
    assert (worklist.case_folder(entries[1]) / "rois.mrk.json").read_text() == "saved by the annotator"
    with pytest.raises(ValueError, match="order must be"):
        worklist.sort("random")


def test_dataset_export_of_a_worklist_folder_refuses_with_one_line(tmp_path, capsys):
    from DVTStagingLib.io.volume import Volume, write_volume

    write_volume(Volume(np.ones((4, 5, 6), np.float32), [1, 1, 1], [0, 0, 0], np.eye(3)), tmp_path / "wl" / "a.nrrd")
    for args, fragment in ((["--out", tmp_path / "o"], "give study folders or --worklist"),
                           (["--worklist", tmp_path / "wl", tmp_path / "wl", "--out", tmp_path / "o"], "one of them"),
                           (["--worklist", tmp_path / "wl", "--out", tmp_path / "o"], "no labeled study"),
                           (["--worklist", tmp_path / "wl", "--all", "--out", tmp_path / "o"], "no study with ROIs")):
        assert main(["dataset", "export", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err, err


# -- the annotation loop on the panel ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered_study():
    return make_study(5, ["chronic"])


def _worklist_folder(tmp_path, study, n):
    folder = tmp_path / "worklist"
    for i in range(n):
        write_study(study, folder / f"case-{i}")
    return folder


def _thrombus_segment(node):
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    return segmentation.GetNthSegmentID(0), segmentation.GetNthSegment(0)


def test_an_edited_thrombus_segmentation_survives_next_and_reaches_the_export(panel, slicer_session, tmp_path,
                                                                              rendered_study):
    import vtk
    from DVTStagingLib.io.dataset import load_dataset, validate_dataset

    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    folder = _worklist_folder(tmp_path, rendered_study, 2)
    user.pick_folder(ui.worklistFolderButton, folder)
    user.double_click_cell(ui.worklistTableWidget, 0, 0)
    volume = panel._parameterNode.inputVolume
    with vtk_errors() as errors:
        user.click(ui.autoDetectButton)                                   # detect --segmentation
        slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    assert errors == [] and slicer_session.errors_shown() == []
    assert ui.statusLabel.text == "1 thrombus ROI(s) found. The thrombus segmentation is ready for Segment Editor."

    # A segmentation node ready for Segment Editor: Thrombus terminology, the study as reference geometry, in
    # the study's "DVT staging" subject-hierarchy folder.
    node = logic.thrombusSegmentation(volume)
    segment_id, segment = _thrombus_segment(node)
    terminology = vtk.reference("")
    segment.GetTag("TerminologyEntry", terminology)
    assert "SCT^396339007^Thrombus" in str(terminology) and segment.GetName() == "Thrombus"
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is volume
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    assert sh.GetItemName(sh.GetItemParent(sh.GetItemByDataNode(node))) == f"DVT staging: {volume.GetName()}"
    detected = logic.thrombusMask(volume)
    assert detected.shape == volume.GetImageData().GetDimensions()[::-1] and detected.any()

    # The annotator paints in Segment Editor (what its effects do to the segment) and labels the ROI.
    edited = detected.copy()
    edited[:, :, : edited.shape[2] // 2] = False                       # erase the left half
    k, j, i = (n // 2 - 1 for n in edited.shape)
    edited[k:k + 2, j - 3:j, i - 3:i] = True                          # paint a patch (inside the ROI)
    slicer.util.updateSegmentBinaryLabelmapFromArray(edited.astype(np.uint8), node, segment_id, volume)
    roi = logic.roiNodes(volume)[0]
    user.choose(ui.roiSelector, roi)
    user.choose(ui.trueStageComboBox, "chronic")

    user.click(ui.nextStudyButton)                                    # saved on Next, the scene cleared
    worklist = panel.worklistSection.worklist
    assert worklist.current.id == "case-1/image.nrrd" and node.GetScene() is None
    saved = read_segmentation(worklist.saved_segmentation(worklist.entries[0]))
    assert np.array_equal(saved.find_mask("thrombus"), edited)
    assert logic.thrombusSegmentation(panel._parameterNode.inputVolume) is None   # case-1 has none

    user.click(ui.previousStudyButton)                                # reopened with the edit
    volume = panel._parameterNode.inputVolume
    assert np.array_equal(logic.thrombusMask(volume), edited)
    edited[k, j + 2, i + 2] = True                                    # one more stroke, kept by Save study
    node = logic.thrombusSegmentation(volume)
    slicer.util.updateSegmentBinaryLabelmapFromArray(edited.astype(np.uint8), node, _thrombus_segment(node)[0],
                                                     volume)
    user.click(ui.saveStudyButton)
    assert ui.statusLabel.text == "Saved case-0/image.nrrd."
    saved = read_segmentation(worklist.saved_segmentation(worklist.entries[0]))
    assert np.array_equal(saved.find_mask("thrombus"), edited)

    target = tmp_path / "dataset"                                     # Export: the case with its segmentation
    slicer_session.folder_answers.append(str(target))
    user.click(ui.exportButton)
    assert slicer_session.errors_shown() == [] and validate_dataset(target) == []
    dataset = load_dataset(target)
    case, = dataset.cases
    assert case.segmentation and case.labels[0]["stage"] == "chronic"
    exported = read_segmentation(dataset.path(case.segmentation))
    assert np.array_equal(exported.find_mask("thrombus"), edited)

    # The same from the command line, for all the labeled studies of the worklist folder: the same case.
    assert main(["dataset", "export", "--worklist", str(folder), "--out", str(tmp_path / "from-cli")]) == 0
    from_cli, = load_dataset(tmp_path / "from-cli").cases
    assert from_cli.id == case.id and from_cli.labels == case.labels
    assert np.array_equal(read_segmentation(tmp_path / "from-cli" / from_cli.segmentation).find_mask("thrombus"),
                          edited)

    # Thrombus painted outside every ROI breaks the dataset format: the export says so, the dataset stays valid.
    edited[0, 0, 0] = True
    slicer.util.updateSegmentBinaryLabelmapFromArray(edited.astype(np.uint8), node, _thrombus_segment(node)[0],
                                                     volume)
    other = tmp_path / "dataset-2"
    slicer_session.folder_answers.append(str(other))
    user.click(ui.exportButton)
    assert "1 voxels of the thrombus segmentation lie outside every ROI" in slicer_session.errors_shown()[-1]
    assert len(slicer_session.console_errors) == 1                   # tryWithErrorDisplay shows it and re-raises
    slicer_session.console_errors.clear()
    assert not (other / "dataset.json").exists()
    assert validate_dataset(target) == []


def test_a_study_with_a_segmentation_keeps_it_when_detection_runs_again(panel, slicer_session):
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    volume = logic.loadSampleStudy()
    user.click(ui.autoDetectButton)
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    node = logic.thrombusSegmentation(volume)
    segment_id, _ = _thrombus_segment(node)
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros(logic.thrombusMask(volume).shape, np.uint8), node,
                                                     segment_id, volume)
    user.click(ui.autoDetectButton)
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    assert logic.thrombusSegmentation(volume) is node and not logic.thrombusMask(volume).any()   # the edit stays
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_an_emptied_or_deleted_segmentation_is_saved_as_such(panel, slicer_session, tmp_path, rendered_study):
    from DVTStagingLib.io.dataset import load_dataset

    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    folder = _worklist_folder(tmp_path, rendered_study, 1)
    user.pick_folder(ui.worklistFolderButton, folder)
    user.double_click_cell(ui.worklistTableWidget, 0, 0)
    user.click(ui.autoDetectButton)
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    volume = panel._parameterNode.inputVolume
    node = logic.thrombusSegmentation(volume)
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros(logic.thrombusMask(volume).shape, np.uint8), node,
                                                     _thrombus_segment(node)[0], volume)
    user.double_click_cell(ui.worklistTableWidget, 0, 0)             # saved, the scene cleared, opened again
    volume = panel._parameterNode.inputVolume
    assert logic.thrombusSegmentation(volume) is not None and not logic.thrombusMask(volume).any()
    assert main(["dataset", "export", "--worklist", str(folder), "--all", "--out", str(tmp_path / "ds")]) == 0
    assert load_dataset(tmp_path / "ds").cases[0].segmentation is None   # no thrombus drawn: boxes only
    slicer.mrmlScene.RemoveNode(logic.thrombusSegmentation(volume))   # deleted in the Data module
    user.click(ui.saveStudyButton)
    worklist = panel.worklistSection.worklist
    assert worklist.saved_segmentation(worklist.current) is None


def test_uncertain_first_stages_studies_in_the_background_and_orders_the_worklist(panel, slicer_session, tmp_path,
                                                                                   rendered_study, monkeypatch):
    ui, user = panel.ui, slicer_session.user
    folder = _worklist_folder(tmp_path, rendered_study, 4)
    answers = {"case-1": _result("acute", 0.9, 0.05, 0.05), "case-2": _result(INDETERMINATE, 0.4, 0.3, 0.3)}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    monkeypatch.setenv("FAKE_STAGE_RESULTS", str(tmp_path / "answers.json"))
    # Earlier sessions: case-0 labeled; cases 1-2 have ROIs the annotator placed; case-3 none (the fake CLI
    # cannot detect ROIs: it stays without a result).
    worklist = Worklist.from_folder(folder)
    rois = read_rois(folder / "case-0" / "thrombus-1.mrk.json")
    worklist.save(worklist.entries[0], CaseAnnotation({"thrombus-1": "chronic"}), rois=rois)
    for entry in worklist.entries[1:3]:
        worklist.save(entry, CaseAnnotation(), rois=rois)

    user.pick_folder(ui.worklistFolderButton, folder)
    table = ui.worklistTableWidget
    names = lambda: [table.item(r, 0).text().split("/")[0] for r in range(table.rowCount)]  # noqa: E731
    assert ui.worklistOrderComboBox.currentText == "folder order"
    assert names() == [f"case-{n}" for n in range(4)]
    assert not panel.worklistSection.stager.active                    # folder order stages nothing

    user.choose(ui.worklistOrderComboBox, "uncertain first")
    stager = panel.worklistSection.stager
    assert stager.active and "staging 3 in the background" in ui.worklistCountsLabel.text
    slicer_session.run_event_loop(lambda: not stager.active, timeout=120)
    assert names() == ["case-2", "case-1", "case-3", "case-0"]
    assert [table.item(r, 1).text() for r in range(4)] == ["staged", "staged", "new", "labeled"]
    assert table.item(0, 2).text() == "indeterminate (uncertainty 0.99)"
    assert table.item(1, 2).text() == "acute (uncertainty 0.36)"
    assert table.item(2, 2).text() == "not staged" and "cannot detect" in table.item(2, 2).toolTip()
    assert ui.worklistCountsLabel.text == "new: 1, staged: 2, labeled: 1, reviewed: 0"

    # The annotator works down the list: the first row is the most uncertain study; Next keeps the order.
    user.double_click_cell(table, 0, 0)
    assert panel.worklistSection.worklist.current.id == "case-2/image.nrrd"
    user.click(ui.nextStudyButton)
    assert panel.worklistSection.worklist.current.id == "case-1/image.nrrd"
    user.choose(ui.worklistOrderComboBox, "folder order")
    assert names() == [f"case-{n}" for n in range(4)]
    assert panel.worklistSection.worklist.index == 1                  # still on case-1
    assert slicer_session.errors_shown() == []
