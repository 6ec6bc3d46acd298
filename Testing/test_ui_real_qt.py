"""DVTStaging.ui loaded by real Qt's uic (PyQt5), CTK/MRML classes mapped to their declared base classes
(Testing/real_qt_ui.py): a malformed .ui, a class that does not exist or a property its class lacks fails
here, and the tree the strict fake loader builds (slicer.util.loadUI in the panel tests) is the one Qt builds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import real_qt_ui
import slicer
from real_qt import QtWidgets
from slicer_fakes import MODULE_FILE
from slicer_fakes.fixtures import *  # noqa: F401,F403  (slicer_session)

UI_FILE = MODULE_FILE.parent / "Resources" / "UI" / "DVTStaging.ui"
SIMPLE_VALUES = ("string", "bool", "number", "double", "stringlist")


def _ui_widgets(path=UI_FILE):
    return {w.get("name"): w for w in ET.parse(path).getroot().iter("widget")}


@pytest.fixture(scope="module")
def real_root():
    return real_qt_ui.load_ui(UI_FILE)


def _real_widget(root, name):
    return root if root.objectName() == name else root.findChild(QtWidgets.QWidget, name)


def test_uic_builds_every_widget_of_the_ui_with_its_class(real_root):
    for name, element in _ui_widgets().items():
        widget = _real_widget(real_root, name)
        assert widget is not None, f"uic made no widget '{name}'"
        assert type(widget).__name__ == element.get("class"), name


def test_the_fake_loader_builds_the_same_tree_as_uic(real_root, slicer_session):
    """Each named widget with its class and parent widget (layouts reparent their items to their widget)."""
    fake_root = slicer.util.loadUI(str(UI_FILE))
    fake = {w.objectName: (type(w).__name__, w.parentWidget().objectName if w.parentWidget() else None)
            for w in [fake_root] + fake_root.findChildren() if w.isWidgetType() and w.objectName}
    real = {w.objectName(): (type(w).__name__, w.parentWidget().objectName() if w.parentWidget() else None)
            for w in [real_root] + real_root.findChildren(QtWidgets.QWidget) if w.objectName() in fake}
    assert real == fake and len(fake) == len(_ui_widgets())


def test_properties_set_by_the_ui_read_back_the_same_from_the_fakes(real_root, slicer_session):
    """Plain Qt properties (through the real setters) and the dynamic SlicerParameterName ones."""
    fake_ui = slicer.util.childWidgetVariables(slicer.util.loadUI(str(UI_FILE)))
    compared = 0
    for name, element in _ui_widgets().items():
        real, fake = _real_widget(real_root, name), getattr(fake_ui, name)
        for prop in element.findall("property"):
            value = next(iter(prop))
            if value.tag not in SIMPLE_VALUES or not type(real).__module__.startswith("PyQt5"):
                continue   # enums, sizes: uic's own conversions; stand-ins: their fake is the claim
            key = prop.get("name")
            assert fake.property(key) == real.property(key), f"{name}.{key}"
            compared += 1
    assert compared >= 40


def test_ui_connections_reach_their_receivers(real_root):
    """root.mrmlSceneChanged -> each selector's setMRMLScene, as Slicer's QUiLoader connects them."""
    receivers = [c.findtext("receiver") for c in ET.parse(UI_FILE).getroot().iter("connection")]
    scene = object()
    real_root.mrmlSceneChanged.emit(scene)
    for name in receivers:
        assert _real_widget(real_root, name).standin_calls == [("setMRMLScene(vtkMRMLScene*)", (scene,))], name


@pytest.mark.parametrize("defect, expected", [
    (lambda ui: ui.replace('class="QLineEdit" name="serverUrlLineEdit"', 'class="QLineEdt" name="serverUrlLineEdit"'),
     "QLineEdt"),                                                        # a class that does not exist
    (lambda ui: ui.replace('<widget class="ctkPathLineEdit" name="serverTokenPathLineEdit">',
                           '<widget class="QLineEdit" name="serverTokenPathLineEdit"><property name="currentPath">'
                           '<string>x</string></property>'), "setCurrentPath"),   # the wrong class for a property
    (lambda ui: ui.replace('<property name="wordWrap">', '<property name="wordwrap">', 1), "setWordwrap"),
    (lambda ui: ui.replace('<property name="collapsed">', '<property name="colapsed">', 1), "setColapsed"),
    (lambda ui: ui.replace("</customwidgets>", "<customwidget><class>ctkCheckBox</class><extends>QCheckBox"
                           "</extends><header>ctkCheckBox.h</header></customwidget></customwidgets>"), "ctkCheckBox"),
    (lambda ui: ui.replace("<receiver>inputVolumeSelector</receiver>", "<receiver>statusLabel</receiver>"),
     "setMRMLScene"),                                                    # a slot the receiver lacks
    (lambda ui: ui.replace("</widget>\n <customwidgets>", "</widget>\n <customwidgets><oops>"), "mismatched tag"),
])
def test_a_broken_ui_fails_to_load(tmp_path, defect, expected):
    broken = tmp_path / "broken.ui"
    broken.write_text(defect(UI_FILE.read_text(encoding="utf-8")), encoding="utf-8")
    assert broken.read_text(encoding="utf-8") != UI_FILE.read_text(encoding="utf-8")
    with pytest.raises(Exception, match=expected):
        real_qt_ui.load_ui(broken)
