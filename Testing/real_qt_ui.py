"""A Qt Designer .ui file loaded by real Qt's uic (PyQt5.uic), with the CTK and MRML classes mapped to the
base class each <customwidget> declares (<extends>).

PyQt5 has no CTK or MRML widgets, so each custom class becomes a stand-in: a subclass of its declared base
with setters for the Qt properties the strict fake of that class declares (Testing/slicer_fakes/widgets.py,
cited to CTK/Slicer headers in slicer_api_facts.md) and the signals and slots the file connects.  A custom
class without a fake, a property neither its base nor its fake has, a plain Qt class that does not exist
or a property a real Qt class lacks makes uic raise, as do malformed XML and connections between unknown
widgets.  VTK pointer types cannot be declared in a PyQt5 signal, so connections carry them as Python objects.
"""

from __future__ import annotations

import io
import re
import sys
import types
import xml.etree.ElementTree as ET
from contextlib import contextmanager

import real_qt
from PyQt5 import uic
from real_qt import QtCore, QtWidgets
from slicer_fakes.qobject import normalize_signature, signature_name
from slicer_fakes.widgets import WIDGET_CLASSES

STANDIN_MODULE = "dvt_uic_standins"
_VTK_POINTER = re.compile(r"\bvtk\w+\*")


def _signal_types(signature: str) -> list:
    inner = signature[signature.index("(") + 1:-1]
    return [object for _ in inner.split(",") if _]


def _standin_class(name: str, base_name: str, signals: set, slots: set):
    base = getattr(QtWidgets, base_name)
    fake = WIDGET_CLASSES.get(name)
    if fake is None:
        raise RuntimeError(f"custom widget {name}: no strict fake declares its properties (slicer_fakes.widgets)")
    namespace = {"standin_properties": None, "standin_calls": None}

    def make_setter(prop):
        def setter(self, value):
            self.standin_properties[prop] = value
        return setter

    for prop in fake._all_props:
        setter_name = f"set{prop[0].upper()}{prop[1:]}"
        if not hasattr(base, setter_name):
            namespace[setter_name] = make_setter(prop)
    for signature in signals:
        namespace[signature_name(signature)] = QtCore.pyqtSignal(*_signal_types(signature))
    for signature in slots:
        if getattr(getattr(fake, signature_name(signature), None), "_qt_slot", None) != signature:
            raise RuntimeError(f"{name} has no slot {signature} (slicer_fakes.widgets)")
        namespace[signature_name(signature)] = \
            lambda self, *args, _s=signature: self.standin_calls.append((_s, args))

    def init(self, parent=None):
        base.__init__(self, parent)
        self.standin_properties, self.standin_calls = {}, []
    namespace["__init__"] = init
    return type(name, (base,), namespace)


def _rewritten(path) -> tuple[bytes, types.ModuleType]:
    """The .ui with its custom widgets' headers pointing at one stand-in module, and that module."""
    root = ET.parse(path).getroot()
    classes = {w.get("name"): w.get("class") for w in root.iter("widget")}
    signals, slots = {}, {}
    for connection in root.iter("connection"):
        for tag, found, owner in (("signal", signals, "sender"), ("slot", slots, "receiver")):
            element = connection.find(tag)
            found.setdefault(classes.get(connection.findtext(owner)), set()).add(normalize_signature(element.text))
            element.text = _VTK_POINTER.sub("PyQt_PyObject", element.text)
    module = types.ModuleType(STANDIN_MODULE)
    for custom in root.iter("customwidget"):
        name = custom.findtext("class")
        setattr(module, name, _standin_class(name, custom.findtext("extends"), signals.get(name, set()),
                                             slots.get(name, set())))
        custom.find("header").text = f"{STANDIN_MODULE}.h"
    return ET.tostring(root, encoding="utf-8"), module


@contextmanager
def _standins(module):
    """The stand-in module importable while uic loads (uic also appends '.' to sys.path: undone)."""
    path = list(sys.path)
    sys.modules[STANDIN_MODULE] = module
    try:
        yield
    finally:
        sys.modules.pop(STANDIN_MODULE, None)
        sys.path[:] = path


def load_ui(path) -> QtWidgets.QWidget:
    real_qt.application()
    text, module = _rewritten(path)
    with _standins(module):
        return uic.loadUi(io.BytesIO(text))
