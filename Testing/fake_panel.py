"""A widget-free stand-in for the panel, to drive DVTStagingWidget's Python without Qt.

`load_ui` reads Resources/UI/DVTStaging.ui and gives one `FakeWidget` per
named widget: plain attributes (text, enabled, checked, value...), item lists
for combo boxes and tables, and recorded signal connections that a test can
`emit`.  This checks the Widget's own code paths (names, calls, state
changes); it says nothing about Qt layout, painting or real signal delivery.
"""

from __future__ import annotations

import inspect
import types
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path


def _accepted_arguments(slot, offered: int) -> int:
    """PythonQt passes a slot only as many signal arguments as it takes (clicked(bool) -> onApply())."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return offered
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return offered
    return min(offered, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters))


class FakeWidget:
    def __init__(self, cls: str, name: str):
        self.className, self.name = cls, name
        self.enabled, self.visible, self.toolTip, self.text = True, True, "", ""
        self.checked, self.value, self.maximum, self.currentIndex = False, 0, 100, 0
        self.items: list[tuple[str, object]] = []
        self.cells: dict[tuple[int, int], object] = {}
        self.rows = 0
        self.plainText = ""
        self.signals: dict[str, list] = {}
        self.blocked = False
        self.scene = None
        self.tableNode = None

    # signals
    def connect(self, signal, slot):
        self.signals.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        if not self.blocked:
            for slot in self.signals.get(signal, []):
                slot(*args[:_accepted_arguments(slot, len(args))])

    def blockSignals(self, blocked):
        self.blocked = blocked

    # QWidget
    def setVisible(self, visible):
        self.visible = visible

    def hide(self):
        self.visible = False

    def show(self):
        self.visible = True

    def setMRMLScene(self, scene):
        self.scene = scene

    def setMRMLTableNode(self, node):
        self.tableNode = node

    # QComboBox
    def clear(self):
        self.items, self.currentIndex = [], 0

    def addItem(self, text, data=None):
        self.items.append((text, data))

    def findData(self, data):
        return next((n for n, (_, d) in enumerate(self.items) if d == data), -1)

    def itemData(self, index):
        return self.items[index][1] if 0 <= index < len(self.items) else None

    def select(self, index):   # test helper: what a user's choice does
        self.currentIndex = index
        self.emit("currentIndexChanged(int)", index)

    # QPlainTextEdit
    def setPlainText(self, text):
        self.plainText = text
        self.emit("textChanged()")

    def toPlainText(self):
        return self.plainText

    # QTableWidget
    def setRowCount(self, n):
        self.rows = n
        self.cells = {k: v for k, v in self.cells.items() if k[0] < n}

    def setColumnCount(self, n):
        self.columns = n

    def setHorizontalHeaderLabels(self, labels):
        self.headers = list(labels)

    def insertRow(self, row):
        self.rows += 1

    def setItem(self, row, column, item):
        self.cells[(row, column)] = item

    def selectRow(self, row):
        self.selectedRow = row


class FakeRoot(FakeWidget):
    def __init__(self, widgets):
        super().__init__("qMRMLWidget", "DVTStaging")
        self.children = widgets


def load_ui(path) -> FakeRoot:
    root = ET.parse(path).getroot()
    widgets = {w.get("name"): FakeWidget(w.get("class"), w.get("name")) for w in root.iter("widget")}
    for w in root.iter("widget"):
        for prop in w.findall("property"):
            value = next(iter(prop), None)
            if value is not None and value.tag in ("string", "bool"):
                text = value.text or ""
                setattr(widgets[w.get("name")], prop.get("name"), text == "true" if value.tag == "bool" else text)
    return FakeRoot(widgets)


def child_widget_variables(root: FakeRoot):
    return types.SimpleNamespace(**root.children)


class FakeTimer:
    def __init__(self):
        self.active, self.interval, self.slots = False, 0, []

    def setInterval(self, ms):
        self.interval = ms

    def connect(self, signal, slot):
        self.slots.append(slot)

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class FakeTableWidgetItem:
    def __init__(self, text=""):
        self.text = text


@contextmanager
def try_with_error_display(message, waitCursor=False):
    """Like slicer.util.tryWithErrorDisplay, but the error reaches the test."""
    yield
