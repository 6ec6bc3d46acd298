"""Static checks of the Slicer module: .ui widgets, CMake file lists, the Slicer-free core."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "DVTStaging"
UI = MODULE / "Resources" / "UI" / "DVTStaging.ui"


def ui_widget_names() -> set[str]:
    return {w.get("name") for w in ET.parse(UI).getroot().iter("widget")}


def test_every_self_ui_name_exists_in_the_ui_file():
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used, "the widget should use self.ui"
    missing = used - ui_widget_names()
    assert not missing, f"widgets used in DVTStaging.py but not in the .ui: {sorted(missing)}"


def test_every_custom_widget_declares_what_it_extends():
    root = ET.parse(UI).getroot()
    declared = {}
    for cw in root.iter("customwidget"):
        extends = cw.find("extends")
        assert extends is not None and extends.text, f"custom widget {cw.find('class').text} lacks <extends>"
        declared[cw.find("class").text] = extends.text
    used = {w.get("class") for w in root.iter("widget")}
    custom = {c for c in used if c.startswith(("qMRML", "qSlicer", "ctk"))}
    assert custom <= set(declared), f"undeclared custom widgets: {sorted(custom - set(declared))}"


def test_parameter_names_in_ui_match_the_parameter_node():
    names = set()
    for w in ET.parse(UI).getroot().iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                names.add(prop.find("string").text)
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    node_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DVTStagingParameterNode")
    fields = {n.target.id for n in node_class.body if isinstance(n, ast.AnnAssign)}
    assert names and names <= fields, f"SlicerParameterName values without a parameter: {sorted(names - fields)}"


def test_cmake_lists_every_core_file():
    cmake = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    lib = MODULE / "DVTStagingLib"
    files = [p.relative_to(MODULE).as_posix() for p in lib.rglob("*")
             if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts]
    missing = [f for f in files if f not in cmake]
    assert not missing, f"not listed in DVTStaging/CMakeLists.txt (run tools/update_module_cmake.py): {missing}"
    assert "EXTENSION_DEPENDS \"PyTorch\"" in (REPO / "CMakeLists.txt").read_text(encoding="utf-8")


def test_core_does_not_import_slicer_or_qt():
    offenders = []
    for path in (MODULE / "DVTStagingLib").rglob("*.py"):
        if path.name == "mrml_adapter.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("slicer", "qt", "ctk", "PythonQt"):
                    offenders.append(f"{path.name}: {name}")
    assert not offenders, offenders


def test_no_unsafe_deserialisation_in_the_code():
    for path in list((MODULE / "DVTStagingLib").rglob("*.py")) + [MODULE / "DVTStaging.py"]:
        text = path.read_text(encoding="utf-8")
        assert "pickle.load" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"


# ---------------------------------------------------------------------------------------------
# The panel (issue 5)
# ---------------------------------------------------------------------------------------------
def _ui_widgets() -> dict:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def _prop(widget, name):
    prop = next((p for p in widget.findall("property") if p.get("name") == name), None)
    if prop is None:
        return None
    value = next(iter(prop))
    return [s.text for s in value.iter("string")] if value.tag == "stringlist" else value.text


def test_export_is_wired_and_deidentified_by_default():
    widgets = _ui_widgets()
    assert _prop(widgets["exportButton"], "enabled") in (None, "true")
    assert _prop(widgets["keepIdentifiersCheckBox"], "checked") == "false"
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    assert 'self.ui.exportButton.connect("clicked(bool)", self.onExport)' in source


def test_panel_has_every_section_the_issue_asks_for():
    names = set(_ui_widgets())
    wanted = {"inputVolumeSelector", "roiSelector", "placeROIButton", "autoDetectButton", "deleteROIButton",
              "modelComboBox", "deviceComboBox", "stageButton", "progressBar", "resultsTableView", "roiResultLabel",
              "showAttentionCheckBox", "attentionOpacitySlider", "attentionMapComboBox", "ratioLabel",
              "trueStageComboBox", "reviewedCheckBox", "notesTextEdit", "worklistFolderButton",
              "worklistFromDICOMButton", "worklistTableWidget", "previousStudyButton", "nextStudyButton",
              "exportButton", "disclaimerLabel"}
    assert wanted <= names, sorted(wanted - names)


def _parameter_fields() -> dict:
    tree = ast.parse((MODULE / "DVTStaging.py").read_text(encoding="utf-8"))
    node_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DVTStagingParameterNode")
    return {n.target.id: ast.unparse(n.annotation) for n in node_class.body if isinstance(n, ast.AnnAssign)}


def test_bound_widgets_can_represent_their_parameter():
    """What parameterNodeWrapper's GUI connectors accept: node -> node combo box of that class, bool ->
    check box, Choice -> combo box, bounded float -> slider widget."""
    fields = _parameter_fields()
    for name, widget in _ui_widgets().items():
        parameter = _prop(widget, "SlicerParameterName")
        if parameter is None:
            continue
        annotation, cls = fields[parameter], widget.get("class")
        if annotation.startswith("vtkMRML"):
            assert cls == "qMRMLNodeComboBox" and annotation in _prop(widget, "nodeTypes"), name
        elif annotation == "bool":
            assert cls in ("QCheckBox", "ctkCheckBox"), name
        elif "Choice" in annotation:
            assert cls in ("QComboBox", "ctkComboBox"), name
        elif "float" in annotation:
            assert cls in ("ctkSliderWidget", "QDoubleSpinBox", "qMRMLSliderWidget") and "WithinRange" in annotation, name
        else:
            raise AssertionError(f"{name}: no GUI connector binds {annotation} to {cls}")


def test_module_follows_the_scripted_module_template():
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    for needle in ("@parameterNodeWrapper", ".connectGui(self.ui)", "slicer.util.loadUI", "childWidgetVariables",
                   "VTKObservationMixin", "StartCloseEvent", "EndCloseEvent", "registerCustomSampleDataSource",
                   'slicer.app.connect("startupCompleted()", registerSampleData)',
                   "class DVTStagingTest(ScriptedLoadableModuleTest)"):
        assert needle in source, needle
    tests = (MODULE / "Testing" / "Python" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "slicer_add_python_unittest" in tests and "DVTStaging.py" in tests


def test_dependencies_are_installed_the_slicer_way():
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    for needle in ("PyTorchUtils", "installTorch(askConfirmation=", "pip_ensure", "slicer.util.pip_install",
                   "confirmOkCancelDisplay", "requirements.txt"):
        assert needle in source, needle
    assert "import torch" not in source, "the module itself never imports torch: the CLI process does"


def test_module_choices_match_the_core():
    import slicer_module_stubs

    from DVTStagingLib.stage_run import ATTENTION_FILES, DEVICES

    dvt = slicer_module_stubs.import_module_file()
    assert dvt.DEVICE_CHOICES == list(DEVICES)
    assert dvt.ATTENTION_MAPS == list(ATTENTION_FILES)


# Signals of the widget classes the panel connects to (Qt 5 / CTK), to catch typos without Qt.
_SIGNALS = {
    "QPushButton": {"clicked(bool)", "clicked()", "toggled(bool)"},
    "QToolButton": {"clicked(bool)", "clicked()"},
    "QComboBox": {"currentIndexChanged(int)", "currentTextChanged(QString)"},
    "QCheckBox": {"toggled(bool)", "stateChanged(int)", "clicked(bool)"},
    "QPlainTextEdit": {"textChanged()"},
    "QTableWidget": {"cellDoubleClicked(int,int)", "cellClicked(int,int)", "itemSelectionChanged()"},
    "ctkDirectoryButton": {"directoryChanged(QString)", "directorySelected(QString)"},
}


def test_connected_signals_exist_on_their_widgets():
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    widgets = _ui_widgets()
    connections = re.findall(r"self\.ui\.(\w+)\.connect\(\"([^\"]+)\"", source)
    assert len(connections) >= 14
    for name, signal in connections:
        cls = widgets[name].get("class")
        assert signal in _SIGNALS.get(cls, set()), f"{name} ({cls}) has no signal {signal}"
