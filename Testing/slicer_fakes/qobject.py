"""The PythonQt object model, faked: Qt properties, signals and slots with PythonQt's rules.

Facts modelled (Testing/slicer_api_facts.md has the sources):
- A Qt property is read and written as a Python attribute (`label.text = "x"`); a property shadows a
  getter of the same name, so `combo.count()` fails like in PythonQt ('int' object is not callable).
- An attribute that is neither a property, a signal, a slot/method nor an internal name raises
  AttributeError, for reading and for writing (PythonQt would silently store an unknown attribute on the
  wrapper; refusing it catches typos such as `progressBar.maximun = 10`).
- Signals: old style `obj.connect("clicked(bool)", slot)` with a normalized signature the class declares
  (an unknown one raises), new style `obj.clicked.connect(slot)` / `.disconnect(slot)`; an overloaded
  signal name connects its first declared overload.  A slot gets only as many arguments as it accepts.
- An exception in a slot does not reach the emitter: PythonQt prints it (here: recorded as a console
  error) and the next slot still runs.  `blockSignals(True)` suppresses emission.
"""

from __future__ import annotations

import inspect
import re
import sys
import traceback
from types import SimpleNamespace

# -- console: where PythonQt (slots) and VTK (observers) print exceptions ----------------------------
_console_listeners: list = []


def report_exception(exc: BaseException, where: str = "") -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for listener in list(_console_listeners):
        listener(exc, f"{where}\n{text}" if where else text)
    if not _console_listeners:
        sys.stderr.write(text)


# -- signatures ----------------------------------------------------------------------------------------
_SIGNATURE = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")


def _normalize_type(arg: str) -> str:
    arg = arg.strip()
    arg = re.sub(r"^const\s+", "", arg)
    arg = re.sub(r"\s*&$", "", arg)
    arg = re.sub(r"\s+\w+$", "", arg) if re.search(r"[\w*&>]\s+\w+$", arg) else arg   # drop a parameter name
    return re.sub(r"\s+", "", arg)


def normalize_signature(signature: str) -> str:
    match = _SIGNATURE.match(signature)
    if not match:
        raise ValueError(f"'{signature}' is not a Qt signal/slot signature")
    args = [a for a in match.group(2).split(",") if a.strip()]
    return f"{match.group(1)}({','.join(_normalize_type(a) for a in args)})"


def signature_name(signature: str) -> str:
    return signature.split("(", 1)[0]


def signature_arg_count(signature: str) -> int:
    inner = signature[signature.index("(") + 1:-1]
    return len([a for a in inner.split(",") if a])


def accepted_argument_count(slot, offered: int) -> int:
    """PythonQt passes a Python slot only as many signal arguments as it takes (defaults count as taken)."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return offered
    count = 0
    for p in parameters:
        if p.kind == p.VAR_POSITIONAL:
            return offered
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, offered)


# -- property specifications -------------------------------------------------------------------------------
class Prop:
    """A Qt property: `qtype` decides what PythonQt converts; `setter`/`getter` name a method of the class."""

    def __init__(self, qtype: str, default=None, *, setter: str | None = None, getter: str | None = None,
                 readonly: bool = False):
        self.qtype, self.default, self.setter, self.getter, self.readonly = qtype, default, setter, getter, readonly


def convert(qtype: str, value, owner: str, name: str):
    """What PythonQt accepts for a property of this C++ type (TypeError otherwise)."""
    def bad():
        return TypeError(f"{owner}.{name}: cannot convert {type(value).__name__} {value!r} to {qtype}")

    if qtype == "bool":
        if isinstance(value, (bool, int)):
            return bool(value)
        raise bad()
    if qtype == "int":
        if isinstance(value, int):
            return int(value)
        raise bad()
    if qtype == "double":
        if isinstance(value, (int, float)):
            return float(value)
        raise bad()
    if qtype == "QString":
        if isinstance(value, str):
            return value
        raise bad()
    if qtype == "QStringList":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise bad()
    return value   # "QVariant" / opaque (enums, sizes, icons): stored as given


class BoundSignal:
    """`obj.signalName`: connect/disconnect/emit on the first declared overload of that name."""

    def __init__(self, owner, name: str, signature: str):
        self._owner, self._name, self._signature = owner, name, signature

    def connect(self, slot):
        return self._owner._fake_connect(self._signature, slot)

    def disconnect(self, slot=None):
        return self._owner._fake_disconnect(self._signature, slot)

    def emit(self, *args):
        self._owner._fake_emit(self._signature, *args)

    def __repr__(self):
        return f"<signal {self._owner.__class__.__name__}.{self._signature}>"


class _SignalDescriptor:
    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        signature = next((s for s in obj._fake_signals() if signature_name(s) == self.name), None)
        if signature is None:   # a signal this version of the class does not have
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{self.name}'")
        return BoundSignal(obj, self.name, signature)

    def __set__(self, obj, value):
        raise AttributeError(f"'{type(obj).__name__}.{self.name}' is a signal and cannot be assigned")


class _PropDescriptor:
    def __init__(self, name: str, spec: Prop):
        self.name, self.spec = name, spec

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        if self.spec.getter:
            return getattr(obj, self.spec.getter)()
        return obj._s.props[self.name]

    def __set__(self, obj, value):
        if self.spec.readonly:
            raise AttributeError(f"property '{type(obj).__name__}.{self.name}' is read-only")
        value = convert(self.spec.qtype, value, type(obj).__name__, self.name)
        if self.spec.setter:
            getattr(obj, self.spec.setter)(value)
        else:
            obj._s.props[self.name] = value


class QtMeta(type):
    """Builds property and signal descriptors from PROPERTIES and SIGNALS, merged along the bases."""

    def __new__(mcs, name, bases, namespace):
        cls = super().__new__(mcs, name, bases, namespace)
        props, signals = {}, []
        for base in reversed(cls.__mro__[1:]):
            props.update(getattr(base, "_all_props", {}))
            signals.extend(s for s in getattr(base, "_all_signals", ()) if s not in signals)
        own_props = namespace.get("PROPERTIES", {})
        props.update(own_props)
        # The class's own overloads come first (first declared = what new-style connect uses).
        own_signals = [normalize_signature(s) for s in namespace.get("SIGNALS", ())]
        signals = own_signals + [s for s in signals if s not in own_signals]
        cls._all_props, cls._all_signals = props, tuple(signals)
        for prop_name, spec in own_props.items():
            if prop_name in (spec.getter, spec.setter):
                raise TypeError(f"{name}.{prop_name}: a property shadows a method of the same name in PythonQt")
            setattr(cls, prop_name, _PropDescriptor(prop_name, spec))
        for signal_name in {signature_name(s) for s in own_signals}:
            if signal_name in own_props:
                raise TypeError(f"{name}: '{signal_name}' is both a property and a signal")
            setattr(cls, signal_name, _SignalDescriptor(signal_name))
        return cls


def slot(signature: str):
    """Marks a method as a Qt slot (invokable by a .ui <connection> or old-style connect to a slot)."""
    def mark(func):
        func._qt_slot = normalize_signature(signature)
        return func
    return mark


class QObject(metaclass=QtMeta):
    PROPERTIES = {"objectName": Prop("QString", "", setter="setObjectName", getter="_objectName")}
    SIGNALS = ("destroyed()", "destroyed(QObject*)", "objectNameChanged(QString)")

    def __init__(self, parent=None):
        self.__dict__["_s"] = SimpleNamespace(
            props={n: spec.default for n, spec in type(self)._all_props.items() if not spec.getter or True},
            dynamic={}, connections=[], blocked=False, parent=None, children=[], name="")
        if parent is not None:
            self._fake_set_parent(parent)

    # -- strictness ------------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        descriptor = getattr(type(self), name, None)
        if isinstance(descriptor, (_PropDescriptor, _SignalDescriptor)):
            descriptor.__set__(self, value)
            return
        if name == "name":   # PythonQt: `obj.name` is the objectName
            self.setObjectName(convert("QString", value, type(self).__name__, name))
            return
        if callable(descriptor):
            raise AttributeError(f"'{type(self).__name__}.{name}' is a method and cannot be assigned")
        raise AttributeError(f"'{type(self).__name__}' object has no property '{name}' (no such Qt property in "
                             f"the faked class; PythonQt would not make it a Qt property either)")

    def __getattr__(self, name):   # only called when normal lookup failed
        if name == "name":
            return self._s.name
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _fake_signals(self):
        return type(self)._all_signals

    # -- QObject API -----------------------------------------------------------------------------------
    def _objectName(self):
        return self._s.name

    def setObjectName(self, name):
        if name != self._s.name:
            self._s.name = name
            self._fake_emit("objectNameChanged(QString)", name)

    def className(self):
        return type(self).__name__

    def inherits(self, className):
        return any(c.__name__ == className for c in type(self).__mro__)

    def isWidgetType(self):
        return False

    def parent(self):
        return self._s.parent

    def children(self):
        return list(self._s.children)

    def _fake_set_parent(self, parent):
        old = self._s.parent
        if old is not None and self in old._s.children:
            old._s.children.remove(self)
        self._s.parent = parent
        if parent is not None:
            parent._s.children.append(self)

    def setParent(self, parent):
        self._fake_set_parent(parent)

    def findChildren(self, cls=None):
        found = []
        for child in self._s.children:
            if cls is None or isinstance(child, cls):
                found.append(child)
            found.extend(child.findChildren(cls))
        return found

    def property(self, name):
        if name in type(self)._all_props:
            return getattr(self, name)
        return self._s.dynamic.get(name)

    def setProperty(self, name, value):
        if name in type(self)._all_props:
            setattr(self, name, value)
            return True
        self._s.dynamic[name] = value
        return False     # Qt: False for a dynamic property

    def blockSignals(self, block):
        previous = self._s.blocked
        self._s.blocked = bool(block)
        return previous

    def signalsBlocked(self):
        return self._s.blocked

    def deleteLater(self):
        pass

    # -- signals -----------------------------------------------------------------------------------------
    def _fake_check_signal(self, signature: str) -> str:
        normalized = normalize_signature(signature)
        if normalized not in self._fake_signals():
            raise ValueError(f"{type(self).__name__}: no signal '{normalized}' (it has: "
                             f"{', '.join(sorted(self._fake_signals()))})")
        return normalized

    def connect(self, signal, slot):
        """Old-style PythonQt connect: `obj.connect("clicked(bool)", callable)`."""
        return self._fake_connect(self._fake_check_signal(signal), slot)

    def disconnect(self, signal, slot=None):
        return self._fake_disconnect(self._fake_check_signal(signal), slot)

    def _fake_connect(self, signature, slot):
        if not callable(slot):
            raise TypeError(f"{type(self).__name__}.connect({signature}): slot {slot!r} is not callable")
        self._s.connections.append((signature, slot))
        return True

    def _fake_disconnect(self, signature, slot=None):
        before = len(self._s.connections)
        if slot is None:
            self._s.connections = [c for c in self._s.connections if c[0] != signature]
        else:
            for i, (sig, s) in enumerate(self._s.connections):
                if sig == signature and s == slot:
                    del self._s.connections[i]
                    break
        return len(self._s.connections) != before

    # Signals declared with default arguments (`clicked(bool checked = false)`): moc makes a clone
    # `clicked()`; connections to either run in connection order when the signal is emitted.
    CLONES: dict = {}

    def _fake_emit(self, signature, *args):
        if signature not in self._fake_signals():
            raise AssertionError(f"fake bug: {type(self).__name__} emits undeclared {signature}")
        if self._s.blocked:
            return
        group = {signature: signature_arg_count(signature)}
        for cls in type(self).__mro__:
            for clone in getattr(cls, "CLONES", {}).get(signature, ()):
                group[normalize_signature(clone)] = signature_arg_count(normalize_signature(clone))
        for sig, target in list(self._s.connections):
            if sig not in group:
                continue
            given = args[:group[sig]]
            try:
                target(*given[:accepted_argument_count(target, len(given))])
            except Exception as exc:   # PythonQt prints it; the emitter carries on
                report_exception(exc, f"in a slot connected to {type(self).__name__}"
                                      f"('{self._s.name}').{signature}")

    def _fake_receivers(self, signature):
        return [s for sig, s in self._s.connections if sig == normalize_signature(signature)]

    def __repr__(self):
        return f"<fake {type(self).__name__} '{self._s.name}'>"
