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
