"""One scenario, two back-ends: the strict fakes (Testing/slicer_fakes, as the panel sees them through
PythonQt) and real Qt 5.15 widgets (PyQt5).  A scenario names its objects, the signals to record, the steps
and the state to read after each step; `run(scenario, backend)` returns, per step, the signals emitted (in
order, with their arguments) and the state, in plain Python values, so the two runs compare with `==`.

Steps and probes use only what both back-ends share: Qt properties by name (an attribute in PythonQt,
`setProperty`/`property` in PyQt5, which must know the property), methods by name, and the event loop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import real_qt
from real_qt import QtCore, QtWidgets


# -- what a scenario is made of ------------------------------------------------------------------------------
@dataclass(frozen=True)
class New:
    """An object of the scenario: a class of the `qt` module, its parent (another object's name), constructor
    arguments after the parent (QTableWidgetItem takes its text and no parent)."""
    cls: str
    parent: str | None = None
    args: tuple = ()


@dataclass(frozen=True)
class Item:
    """A fresh QTableWidgetItem with this text, as a method argument."""
    text: str


@dataclass(frozen=True)
class Ref:
    """Another object of the scenario, as a method argument."""
    name: str


@dataclass(frozen=True)
class Set:
    obj: str
    prop: str
    value: object


@dataclass(frozen=True)
class Call:
    obj: str
    method: str
    args: tuple = ()


@dataclass(frozen=True)
class Events:
    """Let the event loop run (timers due now fire, a progress dialog due now shows)."""


@dataclass
class Scenario:
    name: str
    objects: dict            # name -> New
    steps: list              # Set / Call / Events
    signals: dict = field(default_factory=dict)   # object name -> normalized signatures to record
    probes: dict = field(default_factory=dict)    # object name -> property names or (method, *args) tuples


SELECTED_ROWS = ("selected rows",)   # probe: the rows a table shows as selected (no common Qt accessor)
NOT_WIDGETS = ("QTableWidgetItem", "QSettings")   # made without a parent argument


# -- back-ends --------------------------------------------------------------------------------------------------
class FakeBackend:
    """The fakes through PythonQt's rules: a property is an attribute."""

    name = "fake"

    def __init__(self, session):
        self.session = session
        self.qt = importlib.import_module("qt")

    def new(self, spec: New, parent):
        cls = getattr(self.qt, spec.cls)
        if spec.cls in NOT_WIDGETS:
            return cls(*spec.args)
        return cls(parent)

    def item(self, text):
        return self.qt.QTableWidgetItem(text)

    def connect(self, obj, signature, slot):
        obj.connect(signature, slot)

    def set(self, obj, prop, value):
        setattr(obj, prop, value)

    def get(self, obj, prop):
        return getattr(obj, prop)

    def process_events(self):
        self.session.process_events()

    def selected_rows(self, table):
        from slicer_fakes import selected_rows
        return sorted(selected_rows(table))

    def is_item(self, value):
        return isinstance(value, self.qt.QTableWidgetItem)


_PYQT_TYPES = {"int": int, "bool": bool, "double": float, "QString": str}


class RealBackend:
    """PyQt5 widgets; QSettings writes an INI file in the test's folder."""

    name = "PyQt5"

    def __init__(self, settings_file):
        self.app = real_qt.application()
        self.settings_file = str(settings_file)

    def new(self, spec: New, parent):
        if spec.cls == "QSettings":
            return QtCore.QSettings(self.settings_file, QtCore.QSettings.IniFormat)
        cls = getattr(QtWidgets, spec.cls, None) or getattr(QtCore, spec.cls)
        if spec.cls in NOT_WIDGETS:
            return cls(*spec.args)
        return cls(parent)

    def item(self, text):
        return QtWidgets.QTableWidgetItem(text)

    def connect(self, obj, signature, slot):
        name, args = signature[:-1].split("(")
        types = [_PYQT_TYPES[t] for t in args.split(",") if t]
        signal = getattr(obj, name)
        if types:
            signal = signal[types[0]] if len(types) == 1 else signal[tuple(types)]
        signal.connect(slot)

    def set(self, obj, prop, value):
        if not obj.setProperty(prop, value):
            raise AttributeError(f"real {type(obj).__name__} has no Qt property '{prop}'")

    def get(self, obj, prop):
        if obj.metaObject().indexOfProperty(prop) < 0:
            raise AttributeError(f"real {type(obj).__name__} has no Qt property '{prop}'")
        return obj.property(prop)

    def process_events(self):
        self.app.processEvents()

    def selected_rows(self, table):
        return sorted({index.row() for index in table.selectionModel().selectedRows()})

    def is_item(self, value):
        return isinstance(value, QtWidgets.QTableWidgetItem)


# -- running a scenario -----------------------------------------------------------------------------------------
def run(scenario: Scenario, backend) -> list:
    """[(step, signals emitted by it, state after it)] with the creation as step 0."""
    objects, names = {}, {}
    for name, spec in scenario.objects.items():
        objects[name] = backend.new(spec, objects.get(spec.parent))
        names[id(objects[name])] = name

    def plain(value):
        """Back-end objects as scenario names, items as their text, flags and enums as int."""
        if id(value) in names:
            return names[id(value)]
        if backend.is_item(value):
            return ("item", value.text())
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return int(value)

    emitted = []
    for name, signatures in scenario.signals.items():
        for signature in signatures:
            backend.connect(objects[name], signature,
                            lambda *args, _n=name, _s=signature: emitted.append((_n, _s, plain(args))))

    def state():
        values = {}
        for name, probes in scenario.probes.items():
            for probe in probes:
                obj = objects[name]
                if probe == SELECTED_ROWS:
                    values[(name, probe)] = backend.selected_rows(obj)
                elif isinstance(probe, tuple):
                    values[(name, probe)] = plain(getattr(obj, probe[0])(*probe[1:]))
                else:
                    values[(name, probe)] = plain(backend.get(obj, probe))
        return values

    def arg(value):
        if isinstance(value, Item):
            return backend.item(value.text)
        return objects[value.name] if isinstance(value, Ref) else value

    record = [("create", list(emitted), state())]
    for step in scenario.steps:
        emitted.clear()
        if isinstance(step, Set):
            backend.set(objects[step.obj], step.prop, step.value)
        elif isinstance(step, Call):
            getattr(objects[step.obj], step.method)(*[arg(a) for a in step.args])
        elif isinstance(step, Events):
            backend.process_events()
        else:
            raise TypeError(f"unknown step {step!r}")
        record.append((step, list(emitted), state()))
    return record
