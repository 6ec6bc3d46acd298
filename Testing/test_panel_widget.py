"""The DVTStaging panel driven as a user, on strict fakes of Qt/CTK/Slicer (Testing/slicer_fakes) over real MRML.

The module is loaded, shown and entered the way Slicer does it (module object, widget with its panel as
parent, setup(), enter()); the user clicks, chooses, types and picks folders only where a user can
(shown and enabled widgets); signals are those Qt emits; staging runs Testing/fake_stage_cli.py through
the Logic's documented injection points (`jobs.command_prefix`, `jobs.job_parent_folder`, `jobs.worker`).  Every test
also fails when an exception reaches Slicer's Python console (a slot or an observer raised).
What these tests cannot show (layout, painting, real PythonQt conversions): Testing/slicer_api_facts.md.
"""

from __future__ import annotations

import time

import pytest
import slicer
from DVTStagingLib.io.roi import read_rois
from DVTStagingLib.models.catalog import bundled_dir
from DVTStagingLib.models.devices import DEVICES
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study
from DVTStagingLib.slicer.result_nodes import ATTENTION_MAPS
from slicer_app import vtk_errors
from slicer_fakes.fixtures import *  # noqa: F401,F403  (fixtures: slicer_session, panel, shared_cache)


def _items(combo, data=False):
    return [combo.itemData(i) if data else combo.itemText(i) for i in range(combo.count)]


def _load(slicer_app, path, name):
    volume = slicer_app.logic("Volumes").AddArchetypeVolume(str(path), name)
    assert volume is not None
    return volume


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studies")
    for n, seed in enumerate((5, 6)):
        write_study(make_study(seed, ["chronic"]), folder / f"case-{n}")
    return folder


def _stage_and_wait(panel, session, timeout=60):
    session.user.click(panel.ui.stageButton)
    assert panel.logic.isRunning() and panel.ui.stageButton.text == "Cancel"
    session.run_event_loop(lambda: not panel.logic.isRunning(), timeout=timeout)


def test_setup_wires_the_panel(panel, slicer_session):
    ui = panel.ui
    assert _items(ui.trueStageComboBox, data=True) == ["", "acute", "subacute", "chronic"]
    assert _items(ui.trueStageComboBox)[0] == "(not labeled)"
    assert ui.progressBar.isHidden() and not ui.progressBar.visible
    assert ui.stageButton.visible and ui.statusLabel.visible
    assert ui.statusLabel.text == "Select a BTI volume."
    assert not ui.stageButton.enabled and not ui.autoDetectButton.enabled and not ui.placeROIButton.enabled
    assert not ui.deleteROIButton.enabled
    assert _items(ui.deviceComboBox) == list(DEVICES) and ui.deviceComboBox.currentText == "auto"
    assert _items(ui.attentionMapComboBox) == ATTENTION_MAPS
    assert ui.modelComboBox.itemData(0) == "" and ui.modelComboBox.currentIndex == 0
    # qMRMLWidget.setMRMLScene reached the node selectors through the .ui's <connections>.
    for selector in (ui.inputVolumeSelector, ui.roiSelector, ui.resultsTableView):
        assert selector.mrmlScene() is slicer.mrmlScene
    assert ui.inputVolumeSelector.enabled and ui.inputVolumeSelector.nodeTypes == ["vtkMRMLScalarVolumeNode"]
    assert ui.attentionOpacitySlider.minimum == 0.0 and ui.attentionOpacitySlider.maximum == 1.0
    assert ui.attentionOpacitySlider.value == 0.4 and ui.showAttentionCheckBox.checked
    assert not panel._pollTimer.isActive()


def test_parameters_are_bound_both_ways(panel, slicer_session, slicer_app, two_studies):
    ui, user = panel.ui, slicer_session.user
    p = panel._parameterNode
    first = _load(slicer_app, two_studies / "case-0" / "image.nrrd", "first")
    second = _load(slicer_app, two_studies / "case-1" / "image.nrrd", "second")
    # The first volume of an empty selector becomes current (Qt), which writes the parameter node.
    assert p.inputVolume is first and ui.statusLabel.text == "Ready: first"
    user.choose(ui.inputVolumeSelector, second)
    assert p.inputVolume is second and p.parameterNode.GetNodeReference("inputVolume") is second
    assert ui.stageButton.enabled and ui.autoDetectButton.enabled and ui.placeROIButton.enabled
    assert ui.statusLabel.text == "Ready: second"
    # node -> widgets
    p.attentionOpacity = 0.7
    assert ui.attentionOpacitySlider.value == 0.7
    p.device = "cuda"
    assert ui.deviceComboBox.currentText == "cuda"
    p.attentionMap = "global-to-local"
    assert ui.attentionMapComboBox.currentText == "global-to-local"
    # widgets -> node
    user.move_slider(ui.attentionOpacitySlider, 0.25)
    assert p.attentionOpacity == 0.25 and p.parameterNode.GetParameter("attentionOpacity") == "0.25"
    user.click(ui.showAttentionCheckBox)
    assert p.showAttention is False and p.parameterNode.GetParameter("showAttention") == "False"
    user.choose(ui.deviceComboBox, "cpu")
    assert p.device == "cpu"
    user.choose(ui.attentionMapComboBox, "local-to-global")
    assert p.attentionMap == "local-to-global"
    # A node class the selector does not list cannot be set: the selector shows none, the parameter keeps
    # what the user chose.
    table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode")
    ui.inputVolumeSelector.setCurrentNode(table)
    assert ui.inputVolumeSelector.currentNode() is None


def test_stage_becomes_cancel_then_shows_the_results(panel, slicer_session, slicer_app):
    ui, logic = panel.ui, panel.logic
    with vtk_errors() as errors:
        volume = logic.loadSampleStudy()
        assert panel._parameterNode.inputVolume is volume   # auto-selected by the volume selector
        assert ui.statusLabel.text == f"Ready: {volume.GetName()}"
        slicer_session.user.click(ui.stageButton)
        assert ui.stageButton.text == "Cancel" and ui.progressBar.visible and panel._pollTimer.isActive()
        assert not ui.autoDetectButton.enabled and not ui.deviceComboBox.enabled
        slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    assert errors == [] and slicer_session.errors_shown() == []
    p = panel._parameterNode
    assert ui.stageButton.text == "Stage" and not ui.progressBar.visible and not panel._pollTimer.isActive()
    assert ui.statusLabel.text.startswith("Study stage: ") and "fake-model" in ui.statusLabel.text
    assert p.resultsTable is not None and ui.resultsTableView.mrmlTableNode() is p.resultsTable
    chart_id = slicer_app.app_logic.GetSelectionNode().GetActivePlotChartID()   # real Plots logic
    assert chart_id and slicer.mrmlScene.GetNodeByID(chart_id).IsA("vtkMRMLPlotChartNode")
    assert p.currentROI is not None and ui.roiSelector.currentNode() is p.currentROI
    assert ui.roiResultLabel.text.startswith("<b>") and "published T1" in ui.ratioLabel.text
    assert ui.deleteROIButton.enabled and ui.autoDetectButton.enabled


def _answer_shown(panel, session, gate, volume):
    """Click Stage with the fake CLI held between its answer and its overlays; wait for the answer."""
    ui, logic = panel.ui, panel.logic
    session.user.click(ui.stageButton)
    session.run_event_loop(lambda: ui.statusLabel.text.startswith("Study stage: "), timeout=60)
    assert not gate.exists()                     # the overlays are held back: this is the answer alone
    assert logic.isRunning() and ui.stageButton.text == "Cancel" and ui.stageButton.enabled
    p = panel._parameterNode
    assert p.resultsTable is not None and ui.resultsTableView.mrmlTableNode() is p.resultsTable
    assert p.resultsTable.GetNumberOfRows() == len(logic.roiNodes(volume))
    assert p.currentROI is not None and ui.roiResultLabel.text.startswith("<b>")
    assert all(logic.attentionNode(volume, m) is None for m in ATTENTION_MAPS)    # no overlay yet
    return p.resultsTable


def test_the_stage_shows_before_the_overlays(panel, slicer_session, slicer_app, monkeypatch, tmp_path):
    gate = tmp_path / "overlays-may-come"
    monkeypatch.setenv("FAKE_OVERLAYS_GATE", str(gate))
    ui, logic = panel.ui, panel.logic
    with vtk_errors() as errors:
        volume = logic.loadSampleStudy()
        table = _answer_shown(panel, slicer_session, gate, volume)
        chart_id = slicer_app.app_logic.GetSelectionNode().GetActivePlotChartID()
        assert chart_id and slicer.mrmlScene.GetNodeByID(chart_id).IsA("vtkMRMLPlotChartNode")
        gate.touch()
        slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    assert errors == [] and slicer_session.errors_shown() == []
    p = panel._parameterNode
    assert ui.stageButton.text == "Stage" and not ui.progressBar.visible
    assert ui.statusLabel.text.startswith("Study stage: ") and "Drawing" not in ui.statusLabel.text
    assert p.resultsTable is table and table.GetScene() is slicer.mrmlScene     # the answer's table, completed
    evidence = logic.attentionNode(volume, "evidence")
    assert evidence is not None and all(logic.attentionNode(volume, m) is not None for m in ATTENTION_MAPS)
    composite = slicer.mrmlScene.GetNthNodeByClass(0, "vtkMRMLSliceCompositeNode")
    assert composite.GetForegroundVolumeID() == evidence.GetID()              # the overlay is shown as it arrives


def test_cancel_after_the_answer_keeps_the_stage(panel, slicer_session, monkeypatch, tmp_path):
    gate = tmp_path / "never"
    monkeypatch.setenv("FAKE_OVERLAYS_GATE", str(gate))
    ui, logic = panel.ui, panel.logic
    volume = logic.loadSampleStudy()
    table = _answer_shown(panel, slicer_session, gate, volume)
    start = time.monotonic()
    slicer_session.user.click(ui.stageButton)                                 # Cancel, while the maps are made
    assert time.monotonic() - start < 1.5 and not logic.isRunning()
    assert ui.stageButton.text == "Stage" and ui.statusLabel.text == "Cancelled." and not ui.progressBar.visible
    assert slicer_session.errors_shown() == []
    assert panel._parameterNode.resultsTable is table and table.GetNumberOfRows() == 1   # the answer stays
    assert logic.attentionNode(volume, "evidence") is None


def test_annotation_widgets_write_to_the_nodes(panel, slicer_session):
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    volume = logic.loadSampleStudy()
    roi = logic.roiNodes(volume)[0]
    assert not ui.trueStageComboBox.enabled            # no ROI selected yet
    user.choose(ui.roiSelector, roi)
    assert panel._parameterNode.currentROI is roi and ui.trueStageComboBox.enabled
    assert ui.annotationCollapsibleButton.collapsed     # the user opens the section to label
    user.choose(ui.trueStageComboBox, "subacute")
    assert not ui.annotationCollapsibleButton.collapsed
    assert logic.trueStage(roi) == "subacute"
    user.click(ui.reviewedCheckBox)
    user.type_text(ui.notesTextEdit, "looks sub-acute")
    assert logic.reviewed(volume) and logic.notes(volume) == "looks sub-acute"
    # Showing the study again (another parameter change) does not count as an edit.
    panel._parameterNode.attentionOpacity = 0.5
    assert logic.trueStage(roi) == "subacute" and logic.notes(volume) == "looks sub-acute"
    assert ui.trueStageComboBox.currentText == "subacute" and ui.reviewedCheckBox.checked


def test_cancel_and_scene_close_leave_the_panel_ready(panel, slicer_session, slicer_app, monkeypatch):
    monkeypatch.setenv("FAKE_STAGE_SECONDS", "60")
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    volume = logic.loadSampleStudy()
    user.click(ui.stageButton)
    slicer_session.run_event_loop(lambda: ui.progressBar.value > 0, timeout=30)   # progress arrives
    assert ui.statusLabel.text.startswith("staging: ")
    start = time.monotonic()
    user.click(ui.stageButton)                            # Cancel
    assert time.monotonic() - start < 1.5 and not logic.isRunning()
    assert ui.stageButton.text == "Stage" and ui.statusLabel.text == "Cancelled." and not ui.progressBar.visible
    assert slicer_session.errors_shown() == []            # a cancel is not an error

    user.click(ui.stageButton)
    assert logic.isRunning()
    start = time.monotonic()
    slicer_app.scene.Clear(False)                         # File > Close Scene
    assert time.monotonic() - start < 1.5
    assert not logic.isRunning()
    slicer_session.run_event_loop(lambda: not panel._pollTimer.isActive(), timeout=2)   # stops at its next tick
    assert ui.stageButton.text == "Stage" and not ui.progressBar.visible
    assert panel._parameterNode is not None and panel._parameterNode.inputVolume is None
    assert ui.statusLabel.text == "Select a BTI volume." and not ui.stageButton.enabled
    assert slicer_session.errors_shown() == []
    assert volume.GetScene() is None


def test_worklist_next_and_previous_save_the_labels(panel, slicer_session, tmp_path):
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    folder = tmp_path / "worklist"
    for n, seed in enumerate((5, 6)):
        write_study(make_study(seed, ["chronic"]), folder / f"case-{n}")
    user.pick_folder(ui.worklistFolderButton, folder)
    table = ui.worklistTableWidget
    assert table.rowCount == 2 and table.item(0, 1).text() == "new" and table.item(1, 0).text() == "case-1/image.nrrd"
    assert ui.worklistCountsLabel.text.startswith("new: 2")

    user.double_click_cell(table, 0, 0)                   # open the first study
    volume = panel._parameterNode.inputVolume
    assert volume is not None and panel.worklistSection.worklist.current.id == "case-0/image.nrrd"
    truth = read_rois(folder / "case-0" / "thrombus-1.mrk.json")[0]
    roi = logic.addROI(volume, truth.name, center=truth.center_ras.tolist(), size=truth.size_mm.tolist())
    user.choose(ui.roiSelector, roi)
    user.choose(ui.trueStageComboBox, "chronic")
    assert table.item(0, 1).text() == "labeled"

    user.click(ui.nextStudyButton)
    assert panel.worklistSection.worklist.current.id == "case-1/image.nrrd"
    assert panel._parameterNode.inputVolume.GetName() == "image.nrrd" and roi.GetScene() is None
    assert table.item(0, 1).text() == "labeled" and table.item(1, 1).text() == "new"
    user.click(ui.nextStudyButton)                        # at the end: the position stays
    assert ui.statusLabel.text == "End of the worklist."
    user.click(ui.previousStudyButton)
    reopened = logic.roiNodes(panel._parameterNode.inputVolume)
    assert [logic.trueStage(r) for r in reopened] == ["chronic"]


def test_place_roi_starts_place_mode_and_delete_asks(panel, slicer_session, slicer_app):
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    volume = logic.loadSampleStudy()
    user.click(ui.placeROIButton)
    roi = panel._parameterNode.currentROI
    assert roi is not None and roi in logic.roiNodes(volume) and ui.roiSelector.currentNode() is roi
    selection = slicer_app.app_logic.GetSelectionNode()
    assert selection.GetActivePlaceNodeID() == roi.GetID()
    assert selection.GetActivePlaceNodeClassName() == "vtkMRMLMarkupsROINode"
    interaction = slicer_app.app_logic.GetInteractionNode()
    assert interaction.GetCurrentInteractionMode() == slicer.vtkMRMLInteractionNode.Place
    slicer_session.answers.append(False)                  # "Delete ROI ...?" -> Cancel
    user.click(ui.deleteROIButton)
    assert roi.GetScene() is not None
    slicer_session.answers.append(True)
    user.click(ui.deleteROIButton)
    assert slicer_session.questions[-1].text == f"Delete ROI {roi.GetName()}?"
    assert roi.GetScene() is None and panel._parameterNode.currentROI is None and not ui.deleteROIButton.enabled


def test_export_writes_a_deidentified_case(panel, slicer_session, tmp_path):
    from DVTStagingLib.io.dataset import load_dataset, validate_dataset

    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    volume = logic.loadSampleStudy()
    logic.setTrueStage(logic.roiNodes(volume)[0], "acute")
    target = tmp_path / "exported"
    slicer_session.folder_answers.append(str(target))
    with vtk_errors() as errors:
        user.click(ui.exportButton)
    assert errors == [] and slicer_session.errors_shown() == []
    kind, caption, _ = slicer_session.folder_dialogs[-1]
    assert kind == "QFileDialog.getExistingDirectory" and caption == "Dataset folder"
    assert validate_dataset(target) == []
    case = load_dataset(target).cases[0]
    assert case.id.startswith("case-") and case.labels[0]["stage"] == "acute"
    assert not ui.keepIdentifiersCheckBox.checked
    assert ui.statusLabel.text.startswith(f"Exported to {target}")


def test_export_without_a_study_says_so_and_cancelled_folder_does_nothing(panel, slicer_session, tmp_path):
    ui, user = panel.ui, slicer_session.user
    user.click(ui.exportButton)
    assert slicer_session.errors_shown() == ["Select a study to export."]
    panel.logic.loadSampleStudy()
    slicer_session.folder_answers.append("")              # the user cancels the folder dialog
    user.click(ui.exportButton)
    assert len(slicer_session.errors_shown()) == 1 and not ui.statusLabel.text.startswith("Exported")


@pytest.mark.parametrize("version", ["5.10", "5.12"])   # 5.10's disconnectGui leaves its node observer
def test_leaving_and_entering_the_module_rebinds_the_gui(panel, slicer_session, version):
    slicer_session.use_slicer_version(version)
    ui = panel.ui
    p = panel._parameterNode
    slicer_session.exit_module()
    p.attentionOpacity = 0.9                              # changed while the module is not shown
    assert ui.attentionOpacitySlider.value == 0.4
    slicer_session.enter_module()
    assert ui.attentionOpacitySlider.value == 0.9
    slicer_session.user.move_slider(ui.attentionOpacitySlider, 0.3)
    assert panel._parameterNode.attentionOpacity == 0.3
    for _ in range(3):                                    # again and again: one binding, not several
        slicer_session.exit_module()
        slicer_session.enter_module()
    changes = []
    ui.attentionOpacitySlider.valueChanged.connect(changes.append)
    panel._parameterNode.attentionOpacity = 0.8
    assert changes == [0.8] and ui.attentionOpacitySlider.value == 0.8


def test_an_roi_still_being_drawn_is_refused_with_an_error_dialog(panel, slicer_session):
    """tryWithErrorDisplay shows the error and re-raises it (Slicer's behaviour): the slot's traceback
    reaches the Python console, the panel stays ready."""
    ui, user = panel.ui, slicer_session.user
    panel.logic.loadSampleStudy()
    user.click(ui.placeROIButton)                         # placed, not drawn yet
    user.click(ui.stageButton)
    error, = slicer_session.errors_shown()
    assert error.startswith("Staging failed to start.\n\nROI ") and "is not drawn yet" in error
    assert len(slicer_session.console_errors) == 1 and "ValueError" in slicer_session.console_errors[0]
    slicer_session.console_errors.clear()
    assert not panel.logic.isRunning() and ui.stageButton.text == "Stage" and not ui.progressBar.visible
    assert slicer.app.overrideCursor() is None            # the wait cursor was restored


def test_dicom_database_worklist_lists_mr_series_and_opens_them(panel, slicer_session, tmp_path):
    from slicer_fakes.dicom import ctkDICOMDatabase

    study = tmp_path / "dicom-source"
    write_study(make_study(7, ["acute"]), study)
    database = ctkDICOMDatabase(tmp_path / "dicom-db")
    database.fake_add_series("P1", "S1", "1.2.3", {"f1.dcm": {"0008,0060": "MR", "0010,0010": "Doe^J",
                                                              "0008,0020": "20240101", "0008,103E": "BB"}},
                             volume_file=study / "image.nrrd")
    database.fake_add_series("P1", "S1", "1.2.4", {"f2.dcm": {"0008,0060": "CT"}})
    slicer_session.set_dicom_database(database)
    ui, user = panel.ui, slicer_session.user
    user.click(ui.worklistFromDICOMButton)
    table = ui.worklistTableWidget
    assert table.rowCount == 1 and table.item(0, 0).text() == "Doe^J 20240101 BB" and table.item(0, 1).text() == "new"
    user.double_click_cell(table, 0, 0)
    volume = panel._parameterNode.inputVolume
    assert volume is not None and volume.GetAttribute("DICOM.instanceUIDs") == "1.2.3.0"
    assert panel.worklistSection.worklist.state_root == tmp_path / "dicom-db" / "DVTStaging"


@pytest.mark.skipif(not (bundled_dir() / "detector-phantom.json").is_file(), reason="the bundled detector is missing")
def test_auto_detect_with_the_real_cli_selects_the_first_roi_found(panel, slicer_session):
    """Auto-detect runs `dvt-staging detect` (the real CLI and bundled detector) in the background."""
    ui, logic = panel.ui, panel.logic
    logic.jobs.command_prefix = None                      # Slicer's Python -m DVTStagingLib (here: this Python)
    volume = logic.loadSampleStudy()
    before = set(logic.roiNodes(volume))
    slicer_session.user.click(ui.autoDetectButton)
    assert logic.isRunning() and ui.statusLabel.text == "Detecting thrombi..." and not ui.autoDetectButton.enabled
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=120)
    found = [r for r in logic.roiNodes(volume) if r not in before]
    assert found and panel._parameterNode.currentROI is found[0] and ui.roiSelector.currentNode() is found[0]
    assert ui.statusLabel.text.startswith(f"{len(found)} thrombus ROI(s) found.") and ui.autoDetectButton.enabled
    assert logic.thrombusSegmentation(volume) is not None          # the real detector's thrombus.seg.nrrd
    assert slicer_session.errors_shown() == []


def test_staging_without_rois_asks_and_reports_a_failing_run(panel, slicer_session):
    """No ROI: the user is asked whether to detect them; a run that fails shows the CLI's one-line error."""
    ui, logic = panel.ui, panel.logic
    logic.loadSampleStudy()
    for roi in logic.roiNodes(panel._parameterNode.inputVolume):
        logic.removeROI(panel._parameterNode.inputVolume, roi)
    slicer_session.answers.append(False)
    slicer_session.user.click(ui.stageButton)             # "No thrombus ROI is placed..." -> Cancel
    assert not logic.isRunning()
    slicer_session.answers.append(True)
    slicer_session.user.click(ui.stageButton)             # -> OK: the (fake) CLI cannot detect, the run fails
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    assert [q.text for q in slicer_session.questions] == \
        ["No thrombus ROI is placed. Detect thrombi automatically and stage them?"] * 2
    assert slicer_session.errors_shown() == ["Staging failed: fake-dvt-staging: error: the fake CLI cannot detect ROIs"]
    assert ui.stageButton.text == "Stage" and ui.statusLabel.text.startswith("fake-dvt-staging: error")


def test_closing_the_scene_while_the_module_is_not_shown(panel, slicer_session, slicer_app):
    ui = panel.ui
    panel.logic.loadSampleStudy()
    slicer_session.exit_module()
    slicer_app.scene.Clear(False)
    slicer_session.enter_module()
    assert panel._parameterNode.inputVolume is None and ui.statusLabel.text == "Select a BTI volume."
    volume = panel.logic.loadSampleStudy()
    assert panel._parameterNode.inputVolume is volume and ui.stageButton.enabled


# -- defects of the module found on the strict fakes, now fixed --------------------------------------------------------
def test_a_label_map_loaded_first_is_not_taken_as_the_study(slicer_app, slicer_session, two_studies):
    """initializeParameterNode used to pick scene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode"), which returns a
    vtkMRMLLabelMapVolumeNode (a subclass) loaded before the study.  The selector (showChildNodeTypes false)
    cannot show it, yet the panel says "Ready: <label map>" and Stage is enabled for it."""
    volumes = slicer_app.logic("Volumes")
    volumes.AddArchetypeVolume(str(two_studies / "case-0" / "image.nrrd"), "labels", 1)   # 1 = label map
    study = volumes.AddArchetypeVolume(str(two_studies / "case-0" / "image.nrrd"), "study")
    slicer_session.load_module()
    widget = slicer_session.show_module()
    try:
        assert widget._parameterNode.inputVolume is study
        assert widget.ui.inputVolumeSelector.currentNode() is study and widget.ui.statusLabel.text == "Ready: study"
    finally:
        slicer_session.unload_module()


def test_next_saves_the_worklist_study_even_when_another_volume_is_selected(panel, slicer_session, two_studies,
                                                                           tmp_path):
    """_goTo used to save whatever the BTI-volume selector showed as the worklist's current
    study: after the user selects another volume (e.g. an attention map after staging) Next overwrites the
    study's saved labels with that volume's (reviewed and notes lost, the case back to 'new')."""
    import shutil

    folder = tmp_path / "worklist"
    shutil.copytree(two_studies, folder)
    ui, user = panel.ui, slicer_session.user
    user.pick_folder(ui.worklistFolderButton, folder)
    user.double_click_cell(ui.worklistTableWidget, 0, 0)
    user.click(ui.reviewedCheckBox)
    user.type_text(ui.notesTextEdit, "webs")
    other = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "other")
    user.choose(ui.inputVolumeSelector, other)
    user.click(ui.nextStudyButton)
    worklist = panel.worklistSection.worklist
    saved = worklist.annotation(worklist.entries[0])
    assert saved.reviewed and saved.notes == "webs"


def test_results_of_a_run_do_not_land_on_another_selected_study(panel, slicer_session, slicer_app, two_studies,
                                                                monkeypatch):
    """The BTI-volume selector used to stay enabled during a run; if the user selected study B while A was staged,
    onStagingFinished puts A's results table and A's ROI into the panel while B is selected: the
    annotation section then labels A's ROI under B's name."""
    monkeypatch.setenv("FAKE_STAGE_SECONDS", "1")
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    logic.loadSampleStudy()
    other = _load(slicer_app, two_studies / "case-1" / "image.nrrd", "B")
    user.click(ui.stageButton)
    if ui.inputVolumeSelector.enabled:                    # the fix may also be to lock the selector while running
        user.choose(ui.inputVolumeSelector, other)
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=30)
    p = panel._parameterNode
    assert p.currentROI is None or p.currentROI in logic.roiNodes(p.inputVolume)
    assert p.resultsTable is None or p.inputVolume.GetNodeReference("DVTStaging.resultsTable") is p.resultsTable


def test_reentering_the_module_prints_no_warning(panel, slicer_session):
    """exit() used to disconnect the GUI and remove the ModifiedEvent observer but keep self._parameterNode, so
    enter() -> setParameterNode removes the observer a second time: VTKObservationMixin warns
    'does not have observer' in Slicer's Python console."""
    import warnings

    slicer_session.exit_module()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slicer_session.enter_module()
