"""slicer.util.loadUI on the fakes: a Qt Designer .ui file becomes a tree of fake widgets.

Like QUiLoader: one object per <widget> of the class it names (a class without a fake is an error
here, where QUiLoader would make a plain QWidget), <property> values set in file order through the
property setters (stdset="0" makes a dynamic property, read back with property(name)), layouts as
children of their widget, and the <connections> of the file connected (sender signal -> receiver slot).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from .qobject import normalize_signature, signature_name
from .widgets import LAYOUT_CLASSES, WIDGET_CLASSES, QLayout, QWidget


def _value(element):
    tag, text = element.tag, element.text or ""
    if tag == "string":
        return text
    if tag == "bool":
        return text.strip() == "true"
    if tag == "number":
        return int(text)
    if tag == "double":
        return float(text)
    if tag == "stringlist":
        return [s.text or "" for s in element.findall("string")]
    if tag in ("enum", "set", "cstring"):
        return text
    if tag in ("rect", "size"):
        return {child.tag: int(child.text) for child in element}
    return ET.tostring(element, encoding="unicode")   # anything else: opaque


def _apply_properties(obj, element, path):
    for prop in element.findall("property"):
        name = prop.get("name")
        value = _value(next(iter(prop)))
        if prop.get("stdset") == "0":
            obj._s.dynamic[name] = value
            continue
        if name not in type(obj)._all_props:
            raise RuntimeError(f"{path}: {type(obj).__name__} '{obj.objectName}' has no Qt property '{name}' "
                               f"in the fake (is it a real property of that class?)")
        setattr(obj, name, value)


def _build_layout(element, parent, path):
    cls = LAYOUT_CLASSES.get(element.get("class"))
    if cls is None:
        raise RuntimeError(f"{path}: no fake for layout class {element.get('class')}")
    layout = cls()
    layout.setObjectName(element.get("name") or "")
    if isinstance(parent, QWidget):
        parent.setLayout(layout)
    else:
        parent.addLayout(layout)
    _apply_properties(layout, element, path)
    for item in element.findall("item"):
        for child in item:
            if child.tag == "widget":
                widget = _build_widget(child, layout.parentWidget(), path)
                layout.addWidget(widget)
            elif child.tag == "layout":
                _build_layout(child, layout, path)
    return layout


def _build_widget(element, parent, path):
    cls = WIDGET_CLASSES.get(element.get("class"))
    if cls is None:
        raise RuntimeError(f"{path}: no fake for widget class {element.get('class')}")
    widget = cls(parent)
    widget.setObjectName(element.get("name") or "")
    _apply_properties(widget, element, path)
    for child in element:
        if child.tag == "widget":
            _build_widget(child, widget, path)
        elif child.tag == "layout":
            _build_layout(child, widget, path)
    return widget


def _find(root, name):
    if root.objectName == name:
        return root
    return next((c for c in root.findChildren() if c.objectName == name), None)


def load_ui(path):
    if not os.path.isfile(path):
        raise RuntimeError(f"Could not load UI file: file not found {path}\n\n")
    tree = ET.parse(path).getroot()
    top = tree.find("widget")
    if top is None:
        raise RuntimeError(f"Could not load UI file: {path}\n\n")
    root = _build_widget(top, None, path)
    root._s.hidden = False   # it is put into the module panel right away
    connections = tree.find("connections")
    for connection in (connections if connections is not None else []):
        sender = _find(root, connection.findtext("sender"))
        receiver = _find(root, connection.findtext("receiver"))
        signal = normalize_signature(connection.findtext("signal"))
        slot_signature = normalize_signature(connection.findtext("slot"))
        if sender is None or receiver is None:
            raise RuntimeError(f"{path}: connection between unknown widgets {connection.findtext('sender')} -> "
                               f"{connection.findtext('receiver')}")
        method = getattr(type(receiver), signature_name(slot_signature), None)
        if getattr(method, "_qt_slot", None) != slot_signature:
            raise RuntimeError(f"{path}: {type(receiver).__name__} has no slot {slot_signature}")
        sender.connect(signal, getattr(receiver, signature_name(slot_signature)))
    return root


def child_widget_variables(widget):
    """slicer.util.childWidgetVariables: every named object under `widget` (the widget itself included,
    layouts too, as findChildren walks children()) as an attribute of a plain object."""
    ui = type("", (), {})()
    for obj in [widget] + widget.findChildren():
        if isinstance(obj, (QWidget, QLayout)) and obj.objectName:
            setattr(ui, obj.objectName, obj)
    return ui
