"""One test per defect that only showed in the real Slicer, on strict fakes that fail the way Slicer fails.

Each docstring says what the old code did; each test fails on that old behaviour.  The fakes are in
Testing/slicer_fakes (facts and sources: Testing/slicer_api_facts.md); MRML is real (slicer-core).
Installing packages runs the real DependencyInstaller against Testing/fake_python_slicer.py found as
`PythonSlicer` on PATH (as in Slicer), which "installs" into a dist-info folder first on sys.path.
"""

from __future__ import annotations

import importlib.metadata
import sys

import pytest
import slicer
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study
from DVTStagingLib.slicer import compute
from DVTStagingLib.slicer.jobs import ServerTarget
from DVTStagingLib.slicer.sample_study import SAMPLE_NAME
from slicer_fakes.fixtures import *  # noqa: F401,F403  (fixtures: slicer_session, panel, fake_python)
from slicer_fakes.sample_data import click_sample_button

# Installed versions older than Resources/requirements.txt and the torch minimum: each counts as missing.
TOO_OLD = {"torch": "2.0.0", "torchvision": "0.15.0", "timm": "0.9.0", "safetensors": "0.3.0",
           "slicerio": "1.0.0", "jsonschema": "4.0.0", "matplotlib": "3.0.0"}


def _composite_nodes():
    scene = slicer.mrmlScene
    return [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]


def _volumes_named(name):
    return [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if n.GetName() == name]


# -- (a) the sample in SampleData -------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["5.10", "5.12"])
def test_sample_registers_on_5_10_and_5_12_and_loads_into_the_slice_views(slicer_app, slicer_session, version):
    """Old code: registerCustomSampleDataSource(..., sampleDescription=...) - a keyword no Slicer version
    accepts (TypeError in the startupCompleted slot, so no sample at all), and
    registerCustomSampleDataCategory called unconditionally (AttributeError on 5.10); its downloader
    loaded the study but left the slice views empty (no background volume)."""
    slicer_session.use_slicer_version(version)
    views = slicer_app.add_slice_views()
    slicer_session.load_module()
    slicer_session.startup_completed()                    # Slicer emits startupCompleted() after loading modules
    assert slicer_session.console_errors == []
    source = slicer.modules.sampleDataSources["DVTStaging"][0]
    assert source.sampleName == SAMPLE_NAME and source.customDownloader is not None
    assert source.uris[0].startswith("file://") and source.fileNames == [f"{SAMPLE_NAME}.nrrd"]
    if version == "5.12":
        assert slicer.modules.sampleDataSourceCategories["DVTStaging"]["title"] == "DVT Staging"
    else:
        with pytest.raises(AttributeError):
            slicer.modules.sampleDataSourceCategories

    click_sample_button(SAMPLE_NAME)                      # the user clicks the sample's button
    assert slicer_session.console_errors == [] and slicer_session.errors_shown() == []
    volume, = _volumes_named(SAMPLE_NAME)
    assert [c.GetBackgroundVolumeID() for c in views] == [volume.GetID()] * 3
    assert len(_composite_nodes()) == 3


# -- (b) the same worklist folder again -------------------------------------------------------------------------------
def test_choosing_the_same_worklist_folder_again_reloads_it(panel, slicer_session, tmp_path):
    """Old code listened to ctkDirectoryButton.directoryChanged, which the button does not emit when the
    folder is the one already shown (only directorySelected): studies added since were never listed."""
    folder = tmp_path / "worklist"
    write_study(make_study(5, ["chronic"]), folder / "case-0")
    ui = panel.ui
    slicer_session.user.pick_folder(ui.worklistFolderButton, folder)
    assert ui.worklistTableWidget.rowCount == 1
    write_study(make_study(6, ["acute"]), folder / "case-1")   # a study arrives
    slicer_session.user.pick_folder(ui.worklistFolderButton, folder)
    assert ui.worklistTableWidget.rowCount == 2
    assert ui.worklistTableWidget.item(1, 0).text() == "case-1/image.nrrd"


# -- (b2) clearing the token file field ---------------------------------------------------------------------------------
def test_clearing_the_token_file_field_saves_no_token(panel, slicer_session, tmp_path):
    """Old code saved the token file only on ctkPathLineEdit.currentPathChanged, which CTK never emits for an
    empty path (no nameFilters: its validator's pattern is `.+`, empty input is not acceptable; only
    validInputChanged(false) comes): clearing the field ("empty for a server without a token") kept the old
    token path in the settings, and it was sent again at every Stage."""
    ui, user, settings = panel.ui, slicer_session.user, slicer_session.settings
    token = str(tmp_path / "token.txt")
    user.choose(ui.computeOnComboBox, "server")
    user.type_text(ui.serverUrlLineEdit, "https://staging.example.org")
    user.type_text(ui.serverTokenPathLineEdit, token)
    assert settings[compute.TOKEN_FILE_KEY] == token
    user.type_text(ui.serverTokenPathLineEdit, "")        # select all, Delete
    assert settings[compute.TOKEN_FILE_KEY] == ""
    assert panel.logic.jobs.server() == ServerTarget("https://staging.example.org", None)

    # The same in the next Slicer session: the panel loads the saved path (signals blocked), the user clears it.
    user.type_text(ui.serverTokenPathLineEdit, token)
    slicer_session.unload_module()
    widget = slicer_session.show_module()
    assert widget.ui.serverTokenPathLineEdit.currentPath == token
    user.type_text(widget.ui.serverTokenPathLineEdit, "")
    assert settings[compute.TOKEN_FILE_KEY] == ""


# -- (c) the attention overlay only when its settings change ------------------------------------------------------
def test_unrelated_parameter_changes_keep_the_users_foreground(panel, slicer_app, slicer_session, tmp_path):
    """Old code re-applied the attention overlay on every parameter-node change: selecting another ROI
    or model put the attention map back over a foreground volume the user had chosen in the slice views."""
    ui, logic, user = panel.ui, panel.logic, slicer_session.user
    volume = logic.loadSampleStudy()
    user.click(ui.stageButton)
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    p = panel._parameterNode
    # the default map is the lesion evidence
    evidence, g2l = logic.attentionNode(volume, "evidence"), logic.attentionNode(volume, "global-to-local")
    assert [c.GetForegroundVolumeID() for c in _composite_nodes()] == [evidence.GetID()] * 3
    assert all(c.GetForegroundOpacity() == pytest.approx(0.4) for c in _composite_nodes())

    write_study(make_study(8, ["acute"]), tmp_path / "other")
    other = slicer_app.logic("Volumes").AddArchetypeVolume(str(tmp_path / "other" / "image.nrrd"), "other")
    slicer.util.setSliceViewerLayers(foreground=other)    # the user's own foreground
    user.choose(ui.roiSelector, None)                     # unrelated changes...
    p.modelId = "another-model"
    p.device = "cpu"
    assert p.currentROI is None
    assert [c.GetForegroundVolumeID() for c in _composite_nodes()] == [other.GetID()] * 3

    user.move_slider(ui.attentionOpacitySlider, 0.6)      # ...an overlay setting: the map comes back
    assert [c.GetForegroundVolumeID() for c in _composite_nodes()] == [evidence.GetID()] * 3
    assert all(c.GetForegroundOpacity() == pytest.approx(0.6) for c in _composite_nodes())
    slicer.util.setSliceViewerLayers(foreground=other)
    user.choose(ui.attentionMapComboBox, "global-to-local")
    assert [c.GetForegroundVolumeID() for c in _composite_nodes()] == [g2l.GetID()] * 3
    user.click(ui.showAttentionCheckBox)                  # hidden: our map leaves the foreground
    assert [c.GetForegroundVolumeID() for c in _composite_nodes()] == [None] * 3


# -- (d) dependencies ----------------------------------------------------------------------------------------------------
def test_older_torch_counts_as_missing_and_declining_installs_nothing(panel, slicer_session, fake_python):
    """Old code accepted any installed torch (it only looked for the package), so a torch older than
    the model needs passed the check and staging failed in the child process."""
    fake_python.installed("torch", "2.0.0")
    assert importlib.metadata.version("torch") == "2.0.0"
    ui, logic = panel.ui, panel.logic
    logic.loadSampleStudy()
    slicer_session.answers.append(False)                  # "DVT Staging needs these Python packages..." -> Cancel
    slicer_session.user.click(ui.stageButton)
    question = slicer_session.questions[-1]
    assert "torch>=2.1" in question.text and "timm" not in question.text
    assert question.windowTitle == "DVT Staging - Install Python Packages"
    assert not logic.isRunning() and fake_python.calls() == [] and slicer_session.errors_shown() == []


def test_install_on_5_10_runs_in_a_child_process_while_the_gui_keeps_drawing(panel, slicer_session, fake_python,
                                                                            monkeypatch):
    """Old code ran pip in the GUI thread (subprocess.run): the progress dialog never painted and Slicer
    froze for the minutes torch takes; Slicer 5.10 has no slicer.packaging to do it instead."""
    slicer_session.use_slicer_version("5.10")
    fake_python.installed("torch", "2.0.0")
    fake_python.installed("slicerio", "1.0.0")
    monkeypatch.setenv("FAKE_PIP_SECONDS", "0.3")
    slicer_session.answers.append(True)
    assert panel.logic.ensureDependencies("stage") is True
    calls = [(c["tool"], c["requirements"]) for c in fake_python.calls()]
    assert calls == [("pip", ["light-the-torch>=0.5"]), ("light_the_torch", ["torch>=2.1", "torchvision>=0.16"]),
                     ("pip", ["slicerio>=1.1"])]
    assert importlib.metadata.version("torch") == "2.1" and importlib.metadata.version("slicerio") == "1.1"
    torch_dialog, packages_dialog = slicer_session.progress_dialogs   # one per install step
    assert torch_dialog._s.label_history[0] == "Installing PyTorch (light-the-torch)"
    assert packages_dialog._s.label_history[0] == "Installing Python packages"
    for dialog in (torch_dialog, packages_dialog):
        assert dialog.windowTitle == "DVT Staging" and dialog._s.visible_during_events > 3   # shown meanwhile
        assert not dialog.isVisible()                      # closed at the end
        assert any("Downloading" in text for text in dialog._s.label_history)   # the child's output is shown
    assert slicer_session.process_events_calls > 15        # the GUI kept processing events
    assert slicer_session.pip_dialogs == []
    restart_note = [m.text for m in slicer_session.messages if m.kind == "infoDisplay"]
    assert bool(restart_note) == ("torch" in sys.modules)


def test_cancel_in_the_5_10_install_dialog_stops_pip(panel, slicer_session, fake_python, monkeypatch):
    """Cancel in the install dialog kills pip's process tree; the feature reports False."""
    slicer_session.use_slicer_version("5.10")
    fake_python.installed("slicerio", "1.0.0")
    monkeypatch.setenv("FAKE_PIP_SECONDS", "5")
    slicer_session.answers.append(True)

    def press_cancel_once_shown():
        for dialog in slicer_session.progress_dialogs:
            if dialog.isVisible() and "Downloading" in dialog.labelText:
                slicer_session.user.cancel(dialog)
    slicer_session.during_events.append(press_cancel_once_shown)
    assert panel.ensure("sample") is False
    assert fake_python.calls() == []                      # pip was stopped before it finished
    assert importlib.metadata.version("slicerio") == "1.0.0"
    assert not slicer_session.progress_dialogs[-1].isVisible()


def test_install_on_5_12_uses_slicer_packaging_pip_ensure(panel, slicer_session, fake_python):
    """Slicer 5.12 has slicer.packaging.pip_ensure (its own dialog, PythonSlicer -m pip)."""
    slicer_session.use_slicer_version("5.12")
    fake_python.installed("slicerio", "1.0.0")
    slicer_session.answers.append(True)
    assert panel.logic.ensureDependencies("sample") is True
    assert [(c["tool"], c["requirements"]) for c in fake_python.calls()] == [("pip", ["slicerio>=1.1"])]
    assert fake_python.calls()[0]["argv"][:3] == ["-m", "pip", "install"]
    pip_dialog, = slicer_session.pip_dialogs
    assert pip_dialog["requester"] == "DVTStaging" and pip_dialog["closed"] and pip_dialog["events_while_open"] > 0
    assert slicer_session.progress_dialogs == [] and len(slicer_session.questions) == 1
    assert importlib.metadata.version("slicerio") == "1.1"


@pytest.mark.parametrize("version", ["5.10", "5.12"])
def test_a_failing_pip_gives_a_clear_error(panel, slicer_session, fake_python, monkeypatch, tmp_path, version):
    slicer_session.use_slicer_version(version)
    fake_python.installed("slicerio", "1.0.0")
    monkeypatch.setenv("FAKE_PIP_FAIL", "slicerio")
    panel.logic.loadSampleStudy()
    target = tmp_path / "export"
    slicer_session.folder_answers.append(str(target))
    slicer_session.answers.append(True)
    slicer_session.user.click(panel.ui.exportButton)
    errors = slicer_session.errors_shown()
    if version == "5.10":
        assert len(errors) == 1 and errors[0].startswith("Could not install the Python packages DVT Staging needs: ")
        assert "No matching distribution found for slicerio" in errors[0]
    else:   # pip_ensure shows the failure with pip's log itself; the panel adds no second box
        assert errors == ["Package installation failed."]
        failure = next(m for m in slicer_session.messages if m.text == "Package installation failed.")
        assert "No matching distribution found for slicerio" in failure.kwargs["detailedText"]
    assert not target.exists() and not panel.ui.statusLabel.text.startswith("Exported")


def test_every_entry_point_asks_for_its_features_packages_first(panel, slicer_session, fake_python, tmp_path):
    """Each entry point calls the ensure step of its own feature before it needs a package: sample ->
    slicerio; export -> slicerio, jsonschema; worklist -> nothing; Stage and Auto-detect -> torch and
    every line of requirements.txt.  Declined: nothing runs, nothing is installed."""
    for name, version in TOO_OLD.items():
        fake_python.installed(name, version)
    session, ui, user = slicer_session, panel.ui, slicer_session.user
    session.startup_completed()

    def asked():
        return session.questions[-1].text.split("\n")[1:]

    session.answers.append(False)
    click_sample_button(SAMPLE_NAME)
    assert asked() == ["- slicerio>=1.1"] and _volumes_named(SAMPLE_NAME) == []

    folder = tmp_path / "worklist"
    write_study(make_study(5, ["chronic"]), folder / "case-0")
    count = len(session.questions)
    user.pick_folder(ui.worklistFolderButton, folder)
    user.double_click_cell(ui.worklistTableWidget, 0, 0)
    assert len(session.questions) == count and panel._parameterNode.inputVolume is not None

    session.folder_answers.append(str(tmp_path / "export"))
    session.answers.append(False)
    user.click(ui.exportButton)
    assert asked() == ["- slicerio>=1.1", "- jsonschema>=4.17"] and not (tmp_path / "export").exists()

    everything = ["- torch>=2.1", "- torchvision>=0.16", "- timm>=1.0", "- safetensors>=0.4", "- slicerio>=1.1",
                  "- jsonschema>=4.17", "- matplotlib>=3.7"]
    session.answers.extend([True, False])                 # "No thrombus ROI... detect?" -> OK; install -> Cancel
    user.click(ui.stageButton)
    assert session.questions[-2].text.startswith("No thrombus ROI is placed.")
    assert asked() == everything and not panel.logic.isRunning()
    session.answers.append(False)
    user.click(ui.autoDetectButton)
    assert asked() == everything and not panel.logic.isRunning()
    assert fake_python.calls() == [] and session.errors_shown() == []
