"""Static checks of the layout: the .ui against the code, what CMake and the wheel install, the core's layering,
one definition of the stages, metadata that names real files.  Behaviour of the panel is tested on strict Slicer
fakes elsewhere (test_panel_widget.py, test_slicer_fidelity.py); these checks need no Slicer at all."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "DVTStaging"
LIB = MODULE / "DVTStagingLib"
UI = MODULE / "Resources" / "UI" / "DVTStaging.ui"
PANEL_FILES = [MODULE / "DVTStaging.py", *sorted((MODULE / "DVTStagingPanel").glob("*.py"))]
# The core's subpackages in data-flow order: a module may import its own package and those before it.
# `commands` (the CLI's subcommands) sits on top with cli.py and demo.py.
LAYERS = ["core", "io", "imaging", "phantom", "models", "detection", "staging", "training", "research", "service",
          "slicer", "commands"]


def ui_widgets() -> dict:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def _prop(widget, name):
    prop = next((p for p in widget.findall("property") if p.get("name") == name), None)
    if prop is None:
        return None
    value = next(iter(prop))
    return [s.text for s in value.iter("string")] if value.tag == "stringlist" else value.text


def _ui_names_used(path: Path) -> set[str]:
    """Attribute names read from an object called `ui` (self.ui.x, widget.ui.x, ui.x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Attribute, ast.Name)):
            owner = node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id
            if owner == "ui":
                names.add(node.attr)
    return names


def test_every_ui_name_the_panel_uses_exists_in_the_ui_file():
    for path in PANEL_FILES:
        used = _ui_names_used(path)
        missing = used - set(ui_widgets())
        assert not missing, f"{path.name} uses widgets the .ui lacks: {sorted(missing)}"
    assert set().union(*map(_ui_names_used, PANEL_FILES)) >= {"stageButton", "worklistFolderButton", "exportButton"}


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


def _parameter_fields() -> dict:
    tree = ast.parse((MODULE / "DVTStaging.py").read_text(encoding="utf-8"))
    node_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DVTStagingParameterNode")
    return {n.target.id: ast.unparse(n.annotation) for n in node_class.body if isinstance(n, ast.AnnAssign)}


def test_bound_widgets_can_represent_their_parameter():
    """What parameterNodeWrapper's GUI connectors accept: node -> node combo box of that class, bool ->
    check box, Choice -> combo box, bounded float -> slider widget."""
    fields = _parameter_fields()
    bound = 0
    for name, widget in ui_widgets().items():
        parameter = _prop(widget, "SlicerParameterName")
        if parameter is None:
            continue
        bound += 1
        assert parameter in fields, f"{name} binds '{parameter}', which the parameter node lacks"
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
    assert bound >= 6


def test_panel_has_every_section_the_workflow_needs():
    wanted = {"inputVolumeSelector", "roiSelector", "placeROIButton", "autoDetectButton", "deleteROIButton",
              "modelComboBox", "deviceComboBox", "stageButton", "progressBar", "resultsTableView", "roiResultLabel",
              "showAttentionCheckBox", "attentionOpacitySlider", "attentionMapComboBox", "ratioLabel",
              "trueStageComboBox", "reviewedCheckBox", "notesTextEdit", "worklistFolderButton",
              "worklistFromDICOMButton", "worklistTableWidget", "previousStudyButton", "nextStudyButton",
              "exportButton", "keepIdentifiersCheckBox", "disclaimerLabel"}
    widgets = ui_widgets()
    assert wanted <= set(widgets), sorted(wanted - set(widgets))
    assert _prop(widgets["keepIdentifiersCheckBox"], "checked") == "false"   # exports are de-identified by default


def test_module_file_stays_a_thin_layer():
    source = (MODULE / "DVTStaging.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DVTStagingLogic")
    assert len(source.splitlines()) <= 450
    assert logic.end_lineno - logic.lineno + 1 <= 200
    # The Logic never writes the panel's state: no assignment to a parameter node attribute in it.
    writes = [ast.unparse(t) for n in ast.walk(logic) if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Attribute) and "arameterNode" in ast.unparse(t.value)]
    assert not writes, writes


def test_cmake_lists_exactly_what_the_generator_writes(tmp_path):
    """DVTStaging/CMakeLists.txt is tools/update_module_cmake.py's output for the tree as it is."""
    copy = tmp_path / "repo"
    shutil.copytree(MODULE, copy / "DVTStaging", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, str(REPO / "tools" / "update_module_cmake.py")], cwd=copy, check=True)
    assert (copy / "DVTStaging" / "CMakeLists.txt").read_text() == (MODULE / "CMakeLists.txt").read_text(), \
        "run tools/update_module_cmake.py"
    cmake = (MODULE / "CMakeLists.txt").read_text()
    for needed in ("DVTStagingPanel/worklist_section.py", "DVTStagingLib/slicer/study_nodes.py",
                   "Resources/Models/vdpf-small-phantom.safetensors", "Resources/Models/detector-phantom.json"):
        assert needed in cmake


def test_extension_metadata_declares_slicer_versions_and_names_real_files():
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert 'EXTENSION_DEPENDS "PyTorch"' in cmake
    minimum = re.search(r'set\(DVTSTAGING_MINIMUM_SLICER_VERSION "([\d.]+)"\)', cmake).group(1)
    assert "find_package(Slicer ${DVTSTAGING_MINIMUM_SLICER_VERSION} REQUIRED)" in cmake
    assert minimum == "5.10"     # the first Slicer with Python >= 3.10 (3.12); pyproject asks for >= 3.10
    assert f"Slicer {minimum}" in (REPO / "README.md").read_text(encoding="utf-8")
    prefix = "https://raw.githubusercontent.com/dvtstaging/DVTStaging/main/"
    urls = re.findall(r'set\(EXTENSION_(?:ICONURL|SCREENSHOTURLS) "([^"]+)"\)', cmake)
    assert len(urls) == 2
    for url in urls:
        for one in url.split():
            assert one.startswith(prefix) and (REPO / one[len(prefix):]).is_file(), one


def test_wheel_packages_are_every_package_of_the_core_and_the_bundled_models():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(MODULE).parts) for p in LIB.rglob("__init__.py")}
    assert set(setuptools["packages"]) == found | {"DVTStagingLib.Resources.Models"}
    assert setuptools["package-dir"]["DVTStagingLib.Resources.Models"] == "DVTStaging/Resources/Models"
    assert not (REPO / "Resources" / "Models").exists(), "bundled models live in DVTStaging/Resources/Models only"


def _imported_lib_modules(path: Path) -> list[str]:
    """DVTStagingLib modules a file imports (relative imports resolved)."""
    package = list(path.relative_to(MODULE).with_suffix("").parts)[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                found += [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            elif node.module and node.module.startswith("DVTStagingLib"):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("DVTStagingLib")]
    return found


def test_core_imports_point_only_down_the_data_flow():
    assert sorted(p.name for p in LIB.iterdir() if (p / "__init__.py").is_file()) == sorted(LAYERS)
    upward = []
    for path in LIB.rglob("*.py"):
        parts = path.relative_to(LIB).parts
        if len(parts) == 1:      # cli, demo, __main__: the application on top may use everything
            continue
        here = LAYERS.index(parts[0])
        for target in _imported_lib_modules(path):
            names = target.split(".")
            if len(names) > 1 and names[1] in LAYERS and LAYERS.index(names[1]) > here:
                upward.append(f"{path.relative_to(LIB)} -> {target}")
    assert not upward, upward


def test_only_the_slicer_layer_touches_slicer_and_nothing_in_the_core_touches_qt():
    offenders = []
    for path in LIB.rglob("*.py"):
        in_slicer_layer = path.relative_to(LIB).parts[0] == "slicer"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in ("qt", "ctk", "PythonQt") or (top in ("slicer", "vtk") and not in_slicer_layer):
                    offenders.append(f"{path.relative_to(LIB)}: {name}")
    assert not offenders, offenders


def test_pyqt5_is_only_a_test_dependency_and_the_module_never_imports_it():
    """Real Qt (PyQt5) checks the fakes and the .ui in the tests; in Slicer `qt` is PythonQt, and a second Qt
    binding loaded into Slicer's process would clash with it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "PyQt5>=5.15,<5.16" in project["optional-dependencies"]["test"]
    assert not any(d.lower().startswith("pyqt") for d in project["dependencies"])
    bindings = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")
    offenders = []
    for path in MODULE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: import {n}" for n in names if n.split(".")[0] in bindings]
        if "PyQt" in text or "PySide" in text:   # importlib.import_module("PyQt5...") and the like
            offenders.append(f"{path.relative_to(REPO)} names a Qt binding")
    assert not offenders, offenders


def test_the_stages_are_defined_once():
    from DVTStagingLib.core.stages import INDETERMINATE, STAGES

    literal = re.compile(r"""["']acute["'],\s*["']subacute["'],\s*["']chronic["']""")
    sources = [*LIB.rglob("*.py"), *PANEL_FILES]
    repeats = [str(p.relative_to(REPO)) for p in sources if literal.search(p.read_text(encoding="utf-8"))]
    assert repeats == ["DVTStaging/DVTStagingLib/core/stages.py"], repeats
    result = json.loads((LIB / "schemas" / "result.schema.json").read_text())
    # an answer may also be 'indeterminate' (the model abstains); probabilities are always over the stages
    assert tuple(result["$defs"]["stage"]["enum"]) == (*STAGES, INDETERMINATE)
    assert tuple(result["$defs"]["probabilities"]["required"]) == STAGES
    repeats = [str(p.relative_to(REPO)) for p in sources if f'"{INDETERMINATE}"' in p.read_text(encoding="utf-8")]
    assert repeats == ["DVTStaging/DVTStagingLib/core/stages.py"], repeats


def test_no_unsafe_deserialisation_in_the_code():
    for path in [*LIB.rglob("*.py"), *PANEL_FILES]:
        text = path.read_text(encoding="utf-8")
        assert "pickle.load" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"


def test_committed_model_cards_name_no_machine_path():
    for card in (MODULE / "Resources" / "Models").glob("*.json"):
        text = card.read_text(encoding="utf-8")
        assert not re.search(r'"/(work|tmp|home|root|Users)/|[A-Za-z]:\\\\', text), card.name


def test_the_code_cites_documents_that_exist():
    """Citations like 'docs/model.md' in docstrings point at files in the repository."""
    cited = set()
    for path in [*LIB.rglob("*.py"), *PANEL_FILES, *REPO.glob("Testing/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"DESIGN §\d", text), f"{path.name} cites a design document the repository does not hold"
        cited |= set(re.findall(r"docs/[\w./-]+\.md", text))
    assert cited and all((REPO / c).is_file() for c in cited), sorted(c for c in cited if not (REPO / c).is_file())
