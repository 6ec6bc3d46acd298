"""The strict fakes (Testing/slicer_fakes) fail and behave the way Slicer does (facts: Testing/slicer_api_facts.md).

If one of these fails, a fake became more permissive than Slicer, or stopped doing what Slicer does;
the panel tests on top of them would then prove less than they claim.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import slicer
from slicer_fakes import MODULE_FILE, UnexpectedDialog, UserCannotDoThat, selected_rows
from slicer_fakes.fixtures import *  # noqa: F401,F403
from slicer_fakes.parameter_node_wrapper import Choice, WithinRange, parameterNodeWrapper

UI_FILE = str(MODULE_FILE.parent / "Resources" / "UI" / "DVTStaging.ui")


@pytest.fixture
def qt(slicer_session):
    return importlib.import_module("qt")


@pytest.fixture
def ctk(slicer_session):
    return importlib.import_module("ctk")


@pytest.fixture
def ui(slicer_session):
    root = slicer.util.loadUI(UI_FILE)
    return root, slicer.util.childWidgetVariables(root)


# -- modules and attributes ------------------------------------------------------------------------------------
def test_only_the_faked_names_exist(qt, ctk, slicer_session):
    assert qt.QTimer and qt.QFileDialog and ctk.ctkSliderWidget
    for module, name in ((qt, "QSpinBox"), (qt, "QMainWindow"), (ctk, "ctkCheckBox"), (qt.Qt, "SomeEnum")):
        with pytest.raises(AttributeError):
            getattr(module, name)
    with pytest.raises(AttributeError):
        slicer.app.someProperty
    with pytest.raises(AttributeError):
        slicer.app.cachePathh = "/tmp"
    with pytest.raises(TypeError):
        slicer.app.cachePath = Path("/tmp")               # a QString property takes a str
    with pytest.raises(AttributeError):
        slicer.modules.noSuchModule


def test_widgets_refuse_unknown_attributes_and_properties_shadow_getters(ui):
    root, w = ui
    with pytest.raises(AttributeError):
        w.progressBar.maximun = 10                        # a typo is not silently stored
    with pytest.raises(AttributeError):
        w.statusLabel.txt
    with pytest.raises(TypeError):
        w.modelComboBox.count()                           # PythonQt: the property shadows count()
    with pytest.raises(TypeError):
        w.statusLabel.text = 3                            # QString property
    with pytest.raises(AttributeError):
        w.stageButton.clicked = None                      # a signal is not assignable
    with pytest.raises(AttributeError):
        w.progressBar.text = "x"                          # read-only property
    assert w.inputVolumeSelector.property("SlicerParameterName") == "inputVolume"   # dynamic .ui property
    assert w.stageButton.property("SlicerParameterName") is None
    assert w.DVTStaging is root and w.verticalLayout.objectName == "verticalLayout"  # root and layouts too


def test_load_ui_fails_like_slicer_for_a_missing_file(slicer_session, tmp_path):
    with pytest.raises(RuntimeError, match="file not found"):
        slicer.util.loadUI(str(tmp_path / "missing.ui"))


# -- signals --------------------------------------------------------------------------------------------------------
def test_signals_old_and_new_style_with_pythonqt_argument_rules(ui, slicer_session):
    _, w = ui
    calls = []
    with pytest.raises(ValueError):
        w.stageButton.connect("clicked(int)", calls.append)            # no such signal
    with pytest.raises(ValueError):
        w.worklistFolderButton.connect("directoryPicked(QString)", calls.append)
    w.stageButton.connect("clicked(bool)", lambda: calls.append("no-arg slot"))   # gets no argument
    w.stageButton.connect("clicked()", lambda *a: calls.append(a))
    w.stageButton.clicked.connect(lambda checked: calls.append(("new", checked)))
    w.stageButton.click()
    assert calls == ["no-arg slot", (), ("new", False)]

    def broken():
        raise KeyError("in a slot")
    later = []
    w.stageButton.clicked.connect(broken)
    w.stageButton.clicked.connect(lambda: later.append(1))
    w.stageButton.click()                                 # PythonQt prints it; the next slot still runs
    assert later == [1] and "KeyError" in slicer_session.console_errors[-1]
    slicer_session.console_errors.clear()
    assert w.stageButton.clicked.disconnect(broken)
    w.stageButton.setEnabled(False)
    w.stageButton.click()                                 # a disabled button does not click
    assert later == [1]


def test_property_writes_emit_what_qt_emits(ui, slicer_session):
    _, w = ui
    seen = []
    w.showAttentionCheckBox.connect("stateChanged(int)", lambda s: seen.append(("state", s)))
    w.showAttentionCheckBox.toggled.connect(lambda c: seen.append(("toggled", c)))
    w.showAttentionCheckBox.checked = True
    w.showAttentionCheckBox.checked = True                # same value: no signal
    assert seen == [("state", 2), ("toggled", True)]
    w.showAttentionCheckBox.blockSignals(True)
    w.showAttentionCheckBox.checked = False
    w.showAttentionCheckBox.blockSignals(False)
    assert len(seen) == 2 and not w.showAttentionCheckBox.checked

    combo, indices = w.trueStageComboBox, []
    combo.currentIndexChanged.connect(indices.append)
    combo.addItem("a", "A")                               # the first item of an empty combo becomes current
    combo.addItem("b", "B")
    combo.currentIndex = 1
    combo.currentIndex = 7                                # out of range: no current item
    combo.clear()
    assert indices == [0, 1, -1] and combo.currentText == "" and combo.findData("B") == -1

    slider, values, decimals = w.attentionOpacitySlider, [], []
    slider.valueChanged.connect(values.append)
    slider.decimalsChanged.connect(decimals.append)
    slider.value = 0.123                                  # not rounded to 2 decimals (only the spin box shows 0.12)
    slider.value = 5.0                                    # clamped to the maximum (1.0 from the .ui)
    slider.value = 5.0                                    # clamped to the same value: no signal
    assert values == [0.123, 1.0] and slider.value == 1.0
    values.clear()
    slider.decimals = 2                                   # the same number: valueChanged and decimalsChanged again
    assert values == [1.0] and decimals == [2]
    slider.decimals = 3                                   # another number: twice (the spin box calls back)
    assert values == [1.0] * 3 and decimals == [2, 3, 3]

    bar = w.progressBar
    bar.value = 150                                       # outside 0-100: ignored (QProgressBar::setValue)
    assert bar.value == 0
    bar.maximum = 1000
    bar.value = 500
    assert bar.value == 500


def test_directory_button_emits_directory_changed_only_for_another_folder(ui, slicer_session, tmp_path):
    _, w = ui
    selected, changed = [], []
    w.worklistFolderButton.connect("directorySelected(QString)", selected.append)
    w.worklistFolderButton.connect("directoryChanged(QString)", changed.append)
    w.worklistFolderButton.directory = str(tmp_path)
    w.worklistFolderButton.setDirectory(str(tmp_path) + "/")   # the same folder again
    assert selected == [str(tmp_path)] * 2 and changed == [str(tmp_path)]


def test_path_line_edit_clearing_emits_only_valid_input_changed(ui, slicer_session):
    """No nameFilters: CTK validates with `.+`, an empty path is not acceptable input."""
    _, w = ui
    edit, seen = w.serverTokenPathLineEdit, []
    edit.connect("currentPathChanged(QString)", lambda p: seen.append(("path", p)))
    edit.connect("validInputChanged(bool)", lambda v: seen.append(("valid", v)))
    edit.currentPath = "/t/token"
    edit.currentPath = "/t/token"                         # the same text: the line edit emits nothing
    edit.currentPath = ""
    edit.currentPath = ""
    assert seen == [("path", "/t/token"), ("valid", True), ("valid", False)]
    edit.blockSignals(True)                               # blocks the ctkPathLineEdit, not its line edit
    edit.currentPath = "/t/other"
    edit.blockSignals(False)
    slicer_session.user.type_text(edit, "")
    assert seen[-1] == ("valid", False) and edit.currentPath == ""
    with pytest.raises(NotImplementedError):
        edit.nameFilters = ["Token (*.txt)"]


def test_table_widget_items(ui, qt):
    _, w = ui
    table = w.worklistTableWidget
    table.setRowCount(1)
    table.setColumnCount(2)
    table.setHorizontalHeaderLabels(["A", "B", "C"])      # beyond columnCount: dropped
    table.setItem(5, 0, qt.QTableWidgetItem("outside"))   # outside the table: ignored
    table.setItem(0, 0, qt.QTableWidgetItem("x"))
    assert table.item(0, 0).text() == "x" and table.item(5, 0) is None and table.horizontalHeaderItem(2) is None
    with pytest.raises(TypeError):
        qt.QTableWidgetItem(Path("x"))
    with pytest.raises(AttributeError):
        table.item(0, 0).text = "y"
    table.selectRow(0)
    assert selected_rows(table) == {0}


# -- MRML widgets -------------------------------------------------------------------------------------------------------
def test_node_combo_box_follows_the_scene_like_qmrmlnodecombobox(ui, slicer_session):
    root, w = ui
    combo, changes = w.inputVolumeSelector, []
    assert not combo.enabled                              # no scene yet
    combo.currentNodeChanged.connect(changes.append)
    scenes = []
    root.mrmlSceneChanged.connect(scenes.append)
    root.setMRMLScene(slicer.mrmlScene)                   # .ui <connections> pass it on
    assert scenes == [slicer.mrmlScene] and combo.mrmlScene() is slicer.mrmlScene and combo.enabled
    first = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "first")
    second = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "second")
    label = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "label")
    assert changes == [first] and combo.currentNode() is first    # first node of an empty list: selected
    combo.setCurrentNode(label)                           # not an item (showChildNodeTypes false in the .ui)
    assert combo.currentNode() is None and changes[-1] is None
    combo.setCurrentNode(second)
    first.SetName("renamed")
    assert combo.currentNodeID == second.GetID()
    second.SetName("renamed too")                         # the current item's text changed (5.12: signal)
    assert changes[-2:] == [second, second]
    slicer_session.use_slicer_version("5.10")
    second.SetName("renamed on 5.10")                     # 5.10 listened to currentIndexChanged(QString) only
    assert changes[-2:] == [second, second] and len(changes) == 4
    with pytest.raises(AttributeError):
        combo.nodeAddedByUserAction                       # new in 5.12
    slicer_session.use_slicer_version("5.12")
    assert combo.nodeAddedByUserAction
    slicer.mrmlScene.RemoveNode(second)                   # a neighbour becomes current
    assert combo.currentNode() is first and changes[-1] is first
    roi_combo = w.roiSelector                             # noneEnabled: nothing selected by itself
    assert roi_combo.currentNode() is None
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    assert roi_combo.currentNode() is None and roi_combo.nodeCount() == 1
    slicer.mrmlScene.Clear(False)
    assert combo.currentNode() is None and changes[-1] is None and roi.GetScene() is None


def test_user_cannot_use_hidden_or_disabled_widgets(ui, slicer_session):
    root, w = ui
    user = slicer_session.user
    w.stageButton.enabled = False
    with pytest.raises(UserCannotDoThat):
        user.click(w.stageButton)
    w.stagingCollapsibleButton.enabled = False            # a disabled parent disables its children
    w.stageButton.enabled = True
    assert not w.stageButton.enabled
    w.stagingCollapsibleButton.enabled = True
    assert w.annotationCollapsibleButton.collapsed and not w.notesTextEdit.visible
    user.type_text(w.notesTextEdit, "ab")                 # the user opens the section first
    assert not w.annotationCollapsibleButton.collapsed and w.notesTextEdit.toPlainText() == "ab"
    with pytest.raises(UserCannotDoThat):
        user.choose(w.deviceComboBox, "gpu")


# -- slicer.util ------------------------------------------------------------------------------------------------------------
def test_try_with_error_display_shows_and_reraises(slicer_session, slicer_app):
    with pytest.raises(ValueError):
        with slicer.util.tryWithErrorDisplay("Could not do it.", waitCursor=True):
            raise ValueError("broken")
    assert slicer_session.errors_shown() == ["Could not do it.\n\nbroken"]
    assert slicer.app.overrideCursor() is None             # the wait cursor was restored
    with pytest.raises(TypeError):
        slicer.util.errorDisplay("x", "title", None, None, "extra")


def test_testing_mode_skips_dialogs(shared_cache):
    from slicer_app import HeadlessSlicer

    app = HeadlessSlicer(testing=True)
    try:
        assert slicer.app.testingEnabled() and slicer.util.confirmOkCancelDisplay("Go?") is True
        with pytest.raises(ValueError):
            with slicer.util.tryWithErrorDisplay("shown?"):
                raise ValueError("no")
        slicer.util.errorDisplay("only logged")
        assert app.session.messages == [] and app.session.questions == []
    finally:
        app.close()


def test_questions_must_be_scripted_and_are_recorded(slicer_session):
    with pytest.raises(UnexpectedDialog):
        slicer.util.confirmOkCancelDisplay("Proceed?")
    slicer_session.answers.extend([False, True])
    assert slicer.util.confirmOkCancelDisplay("One?", windowTitle="T", detailedText="d") is False
    assert slicer.util.confirmOkCancelDisplay("Two?") is True
    assert [(q.text, q.windowTitle) for q in slicer_session.questions] == \
        [("Proceed?", "Slicer confirmation"), ("One?", "T"), ("Two?", "Slicer confirmation")]
    import qt
    with pytest.raises(UnexpectedDialog):
        qt.QFileDialog.getExistingDirectory(None, "Pick")


def test_progress_dialog_as_create_progress_dialog_makes_it(slicer_session):
    dialog = slicer.util.createProgressDialog(maximum=0, labelText="Working", windowTitle="W", notAProperty=1)
    assert not dialog.isVisible()                         # minimumDuration 0: shown by the event loop
    slicer.app.processEvents()
    assert dialog.isVisible() and dialog.labelText == "Working" and dialog.windowTitle == "W"
    assert dialog.wasCanceled is False
    with pytest.raises(TypeError):
        dialog.wasCanceled()                              # a property in PythonQt
    with pytest.raises(AttributeError):
        dialog.wasCanceled = True
    slicer_session.user.cancel(dialog)
    assert dialog.wasCanceled and not dialog.isVisible()


def test_timers_fire_from_the_event_loop(slicer_session, qt):
    timer, ticks = qt.QTimer(), []
    timer.setInterval(10)
    timer.connect("timeout()", lambda: ticks.append(1))
    with pytest.raises(ValueError):
        timer.connect("timedOut()", print)
    timer.start()
    slicer_session.run_event_loop(lambda: len(ticks) >= 3, timeout=5)
    timer.stop()
    assert not timer.active and not timer.isActive()


# -- scripted module base classes ---------------------------------------------------------------------------------------------
def test_widget_without_parent_runs_setup_itself_with_a_parent_it_does_not(slicer_session):
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget

    class ProbeWidget(ScriptedLoadableModuleWidget):
        def setup(self):
            ScriptedLoadableModuleWidget.setup(self)
            self.setupCalls = getattr(self, "setupCalls", 0) + 1

    alone = ProbeWidget()
    assert alone.setupCalls == 1 and alone.parent.mrmlScene() is slicer.mrmlScene and alone.moduleName == "Probe"
    from slicer_fakes.widgets import qSlicerScriptedLoadableModuleWidget
    hosted = ProbeWidget(qSlicerScriptedLoadableModuleWidget())
    assert not hasattr(hosted, "setupCalls") and hosted.layout is hosted.parent.layout()


def test_logic_parameter_node_is_a_singleton_with_module_name(slicer_session):
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

    class ProbeLogic(ScriptedLoadableModuleLogic):
        pass

    node = ProbeLogic().getParameterNode()
    assert node is ProbeLogic().getParameterNode() and node.GetAttribute("ModuleName") == "Probe"
    assert node.GetSingletonTag() == "Probe" and node.IsA("vtkMRMLScriptedModuleNode")


def test_parameter_node_wrapper_stores_types_and_binds_widgets(ui, slicer_session):
    assert slicer.parameterNodeWrapper.parameterNodeWrapper is parameterNodeWrapper

    @parameterNodeWrapper
    class Params:
        volume: slicer.vtkMRMLScalarVolumeNode
        flag: bool = True
        opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
        mode: Annotated[str, Choice(["x", "y"])] = "y"

    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    p = Params(node)
    assert node.GetParameter("flag") == "True" and node.GetParameter("opacity") == "0.5" and p.mode == "y"
    with pytest.raises(ValueError):
        p.mode = "z"
    with pytest.raises(ValueError):
        p.opacity = 2.0
    with pytest.raises(TypeError):
        p.flag = "yes"
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    p.volume = volume
    assert node.GetNodeReference("volume") is volume

    root, w = ui
    root.setMRMLScene(slicer.mrmlScene)
    w.inputVolumeSelector.setProperty("SlicerParameterName", "volume")
    w.showAttentionCheckBox.setProperty("SlicerParameterName", "flag")
    w.attentionOpacitySlider.setProperty("SlicerParameterName", "opacity")
    w.deviceComboBox.setProperty("SlicerParameterName", "mode")
    w.roiSelector.setProperty("SlicerParameterName", "")
    w.attentionMapComboBox.setProperty("SlicerParameterName", "")
    w.deviceComboBox.addItem("stale")
    tag = p.connectGui(w)
    assert [w.deviceComboBox.itemText(i) for i in range(w.deviceComboBox.count)] == ["x", "y"]   # cleared, filled
    assert w.deviceComboBox.currentText == "y" and w.inputVolumeSelector.currentNode() is volume
    w.attentionOpacitySlider.value = 0.25                 # widget -> node
    assert node.GetParameter("opacity") == "0.25"
    p.flag = False                                        # node -> widget
    assert not w.showAttentionCheckBox.checked
    p.disconnectGui(tag)
    p.flag = True
    assert not w.showAttentionCheckBox.checked

    @parameterNodeWrapper
    class Unbounded:
        opacity: float = 0.5

    unbounded = Unbounded(slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"))
    with pytest.raises(ValueError):                       # widgets name parameters Unbounded does not have
        unbounded.connectGui(w)
    with pytest.raises(RuntimeError):                     # ctkSliderWidget needs a bounded float
        unbounded.connectParametersToGui({"opacity": w.attentionOpacitySlider})

    @parameterNodeWrapper
    class Text:
        notes: str = ""

    with pytest.raises(RuntimeError):                     # no connector binds QPlainTextEdit to str
        Text(slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")).connectParametersToGui(
            {"notes": w.notesTextEdit})


# -- SampleData and slicer.packaging in both Slicer versions ------------------------------------------------------------------
@pytest.mark.parametrize("version", ["5.10", "5.12"])
def test_sample_data_registration_as_in_each_version(slicer_session, version):
    slicer_session.use_slicer_version(version)
    import SampleData
    logic = SampleData.SampleDataLogic
    assert hasattr(logic, "registerCustomSampleDataCategory") == (version == "5.12")
    with pytest.raises(TypeError):
        logic.registerCustomSampleDataSource(category="C", sampleName="s", sampleDescription="no such keyword",
                                             uris="file:///x", fileNames="x.nrrd", nodeNames="x")
    with pytest.raises(ValueError):
        logic.registerCustomSampleDataSource(category="C", sampleName="s", uris=["file:///a", "file:///b"],
                                             fileNames=["a.nrrd"], nodeNames=["a", "b"])
    logic.registerCustomSampleDataSource(category="C", sampleName="s", uris="file:///x", fileNames="x.nrrd",
                                         nodeNames="x")
    assert slicer.modules.sampleDataSources["C"][0].nodeNames == ["x"]


def test_slicer_packaging_exists_only_from_5_12(slicer_session, fake_python):
    slicer_session.use_slicer_version("5.10")
    with pytest.raises(ImportError):
        importlib.import_module("slicer.packaging")
    slicer_session.use_slicer_version("5.12")
    packaging = importlib.import_module("slicer.packaging")
    with pytest.raises(TypeError):
        packaging.pip_ensure(["x"], prompt=False)
    fake_python.installed("slicerio", "1.0.0")
    slicer_session.answers.append(False)
    with pytest.raises(RuntimeError, match="User declined"):
        packaging.pip_ensure(["slicerio>=1.1"], requester="Probe")
    assert slicer_session.questions[-1].windowTitle == "Probe - Install Python Packages"
    assert fake_python.calls() == []


def test_fake_python_slicer_installs_and_fails_like_pip(fake_python, monkeypatch):
    run = lambda *args: subprocess.run([str(fake_python.executable), *args], capture_output=True, text=True)
    assert run("-m", "light_the_torch", "install", "torch>=2.1").returncode == 1     # not installed yet
    assert run("-m", "pip", "install", "light-the-torch>=0.5").returncode == 0
    assert run("-m", "light_the_torch", "install", "torch>=2.1").returncode == 0
    importlib.invalidate_caches()
    assert importlib.metadata.version("torch") == "2.1"
    monkeypatch.setenv("FAKE_PIP_FAIL", "timm")
    failed = run("-m", "pip", "install", "timm>=1.0")
    assert failed.returncode == 1 and "No matching distribution found for timm" in failed.stderr
    assert run("-c", "print(6 * 7)").stdout.strip() == "42"                      # anything else: Python
    assert [c["returncode"] for c in fake_python.calls()] == [1, 0, 0, 1]
    assert str(fake_python.site) in sys.path
