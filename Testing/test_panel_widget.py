"""DVTStagingWidget's Python driven on a fake panel (Testing/fake_panel.py) over real MRML.

No Qt here: these tests catch mistakes in the Widget's own code (names, calls,
state flow: Stage -> Cancel -> results, annotation, worklist, scene close); how
the panel looks and how Qt delivers signals is only checked inside Slicer.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest
import slicer
from slicer_app import vtk_errors
from slicer_module_stubs import import_module_file

import fake_panel
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study
from DVTStagingLib.roi import read_rois

FAKE_CLI = [sys.executable, str(Path(__file__).resolve().parent / "fake_stage_cli.py")]


@pytest.fixture
def panel(slicer_app, tmp_path, monkeypatch):
    dvt = import_module_file()
    qt = sys.modules["qt"]
    monkeypatch.setattr(qt, "QTimer", fake_panel.FakeTimer, raising=False)
    monkeypatch.setattr(qt, "QTableWidgetItem", fake_panel.FakeTableWidgetItem, raising=False)
    monkeypatch.setattr(slicer.util, "loadUI", fake_panel.load_ui)
    monkeypatch.setattr(slicer.util, "childWidgetVariables", fake_panel.child_widget_variables)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", fake_panel.try_with_error_display)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: True)
    errors_shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, *a, **k: errors_shown.append(text))
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda *a, **k: None)
    charts_shown = []
    slicer.modules.plots = types.SimpleNamespace(
        logic=lambda: types.SimpleNamespace(ShowChartInLayout=charts_shown.append))
    slicer.app.cachePath = str(tmp_path / "cache")
    monkeypatch.setattr(dvt.DVTStagingLogic, "ensureDependencies", lambda self, askUser=True: True)

    widget = dvt.DVTStagingWidget()
    widget.setup()
    widget.logic.commandPrefix = FAKE_CLI
    widget.logic.jobParentFolder = str(tmp_path)
    widget.errorsShown, widget.chartsShown = errors_shown, charts_shown
    yield widget
    widget.cleanup()


def _run_until_idle(widget, timeout=120):
    deadline = time.monotonic() + timeout
    while widget._pollTimer.active:
        assert time.monotonic() < deadline, "the staging run did not finish"
        widget.onPollTimer()
        time.sleep(0.05)


def test_setup_wires_the_panel(panel):
    ui = panel.ui
    assert ui.exportButton.enabled is not False and ui.keepIdentifiersCheckBox.checked is False
    assert ui.modelComboBox.itemData(0) == ""          # the default model comes first
    assert [ui.trueStageComboBox.itemData(i) for i in range(4)] == ["", "acute", "subacute", "chronic"]
    assert ui.progressBar.visible is False
    assert ui.statusLabel.text == "Select a BTI volume."
    assert ui.stageButton.enabled is False


def test_stage_button_becomes_cancel_then_shows_results(panel, slicer_app):
    logic, ui = panel.logic, panel.ui
    volume = logic.loadSampleStudy()
    panel._parameterNode.inputVolume = volume
    assert ui.stageButton.enabled and ui.statusLabel.text == f"Ready: {volume.GetName()}"
    with vtk_errors() as errors:
        ui.stageButton.emit("clicked(bool)", False)
        assert ui.stageButton.text == "Cancel" and ui.progressBar.visible and logic.isRunning()
        _run_until_idle(panel)
    assert errors == [] and panel.errorsShown == []
    assert ui.stageButton.text == "Stage" and not ui.progressBar.visible
    assert ui.statusLabel.text.startswith("Study stage: ")
    assert ui.resultsTableView.tableNode is panel._parameterNode.resultsTable is not None
    assert panel.chartsShown and panel.chartsShown[-1].IsA("vtkMRMLPlotChartNode")
    roi = panel._parameterNode.currentROI
    assert roi is not None and ui.roiResultLabel.text.startswith("<b>")
    assert "published T1" in ui.ratioLabel.text

    # Annotation widgets write onto the nodes.
    ui.trueStageComboBox.select(2)
    assert logic.trueStage(roi) == "subacute"
    ui.reviewedCheckBox.emit("toggled(bool)", True)
    ui.notesTextEdit.setPlainText("looks sub-acute")
    assert logic.reviewed(volume) and logic.notes(volume) == "looks sub-acute"


def test_cancel_and_scene_close_leave_the_panel_ready(panel, slicer_app, monkeypatch):
    monkeypatch.setenv("FAKE_STAGE_SECONDS", "60")
    volume = panel.logic.loadSampleStudy()
    panel._parameterNode.inputVolume = volume
    panel.ui.stageButton.emit("clicked(bool)", False)
    assert panel.ui.stageButton.text == "Cancel"
    panel.ui.stageButton.emit("clicked(bool)", False)       # Cancel
    assert not panel.logic.isRunning()
    assert panel.ui.stageButton.text == "Stage" and panel.ui.statusLabel.text == "Cancelled."
    assert panel.errorsShown == []                        # a cancel is not an error

    panel.ui.stageButton.emit("clicked(bool)", False)
    start = time.monotonic()
    slicer_app.scene.Clear(False)
    assert time.monotonic() - start < 1.5
    assert not panel.logic.isRunning() and panel.ui.stageButton.text == "Stage"
    assert panel._parameterNode is not None                # re-initialised after the close
    assert panel.errorsShown == []


def test_worklist_next_saves_labels_and_opens_the_next_study(panel, slicer_app, tmp_path):
    folder = tmp_path / "studies"
    for n, seed in enumerate((5, 6)):
        write_study(make_study(seed, ["chronic"]), folder / f"case-{n}")
    panel.onWorklistFolder(str(folder))
    assert panel.ui.worklistTableWidget.rows == 2
    assert panel.ui.worklistTableWidget.cells[(0, 1)].text == "new"

    volume = panel.logic.openStudy(panel.worklist, panel.worklist.current)
    panel._parameterNode.inputVolume = volume
    truth = read_rois(folder / "case-0" / "thrombus-1.mrk.json")[0]
    roi = panel.logic.addROI(volume, truth.name, center=truth.center_ras.tolist(), size=truth.size_mm.tolist())
    panel._parameterNode.currentROI = roi
    panel.ui.trueStageComboBox.select(3)                  # chronic
    assert panel.ui.worklistTableWidget.cells[(0, 1)].text == "labeled"

    panel.ui.nextStudyButton.emit("clicked(bool)", False)
    assert panel.worklist.current.id == "case-1/image.nrrd"
    assert panel._parameterNode.inputVolume.GetName() == "image.nrrd"
    assert [r[0] for r in panel.worklist.statuses()] and panel.worklist.status(panel.worklist.entries[0]) == "labeled"
    assert panel.ui.worklistTableWidget.cells[(0, 1)].text == "labeled"
    panel.ui.previousStudyButton.emit("clicked(bool)", False)
    reopened = panel.logic.roiNodes(panel._parameterNode.inputVolume)
    assert [panel.logic.trueStage(r) for r in reopened] == ["chronic"]


def test_place_roi_starts_place_mode(panel, slicer_app, monkeypatch):
    selection = slicer_app.scene.AddNewNodeByClass("vtkMRMLSelectionNode")
    interaction = slicer_app.scene.AddNewNodeByClass("vtkMRMLInteractionNode")
    monkeypatch.setattr(slicer.app, "applicationLogic", lambda: types.SimpleNamespace(
        GetSelectionNode=lambda: selection, GetInteractionNode=lambda: interaction))
    volume = panel.logic.loadSampleStudy()
    panel._parameterNode.inputVolume = volume
    panel.ui.placeROIButton.emit("clicked(bool)", False)
    roi = panel._parameterNode.currentROI
    assert roi is not None and roi in panel.logic.roiNodes(volume)
    assert selection.GetActivePlaceNodeID() == roi.GetID()
    assert interaction.GetCurrentInteractionMode() == slicer.vtkMRMLInteractionNode.Place
    panel.ui.deleteROIButton.emit("clicked(bool)", False)
    assert roi.GetScene() is None and panel._parameterNode.currentROI is None


def test_export_button_writes_the_current_study_as_a_deidentified_case(panel, slicer_app, tmp_path, monkeypatch):
    from DVTStagingLib.dataset import load_dataset, validate_dataset

    logic, ui = panel.logic, panel.ui
    volume = logic.loadSampleStudy()
    panel._parameterNode.inputVolume = volume
    roi = logic.roiNodes(volume)[0]
    logic.setTrueStage(roi, "acute")
    qt = sys.modules["qt"]
    target = tmp_path / "exported"
    monkeypatch.setattr(qt, "QFileDialog", types.SimpleNamespace(getExistingDirectory=lambda *a, **k: str(target)),
                        raising=False)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None, raising=False)
    with vtk_errors() as errors:
        ui.exportButton.emit("clicked(bool)", False)
    assert errors == [] and panel.errorsShown == []
    assert validate_dataset(target) == []
    case = load_dataset(target).cases[0]
    assert case.id.startswith("case-") and case.labels[0]["stage"] == "acute"
    assert ui.statusLabel.text.startswith("Exported to")
