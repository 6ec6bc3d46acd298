"""Stand-ins for the parts of Slicer's Python that slicer-core lacks, so DVTStaging.py imports in tests.

slicer-core has MRML, the module logics and `slicer.util`, but not
`slicer.ScriptedLoadableModule`, `slicer.parameterNodeWrapper`, `slicer.i18n`,
`qt` or `ctk` (DESIGN §9).  This module supplies small versions of them,
written here: enough for the module's Logic (parameter node with typed
fields kept in a vtkMRMLScriptedModuleNode, so they are saved with the scene)
and for its Widget and Test classes to be defined.  The Widget is not run:
that needs Qt.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import typing
import unittest
from pathlib import Path

import slicer

MODULE_FILE = Path(__file__).resolve().parents[1] / "DVTStaging" / "DVTStaging.py"


# -- slicer.i18n ------------------------------------------------------------------------------
def _i18n():
    m = types.ModuleType("slicer.i18n")
    m.tr = lambda text: text
    m.translate = lambda context, text: text
    return m


# -- slicer.parameterNodeWrapper -------------------------------------------------------------------
class Choice:
    def __init__(self, choices):
        self.choices = list(choices)

    def check(self, name, value):
        if value not in self.choices:
            raise ValueError(f"{name}: {value!r} is not one of {self.choices}")


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def check(self, name, value):
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{name}: {value} is outside [{self.minimum}, {self.maximum}]")


def _field(annotation):
    """(base type, validators) of a possibly Annotated field type."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, [e for e in extras if hasattr(e, "check")]
    return annotation, []


def _is_node_type(t) -> bool:
    return isinstance(t, type) and t.__name__.startswith("vtkMRML")


def parameterNodeWrapper(cls):
    """Typed attributes stored in the wrapped vtkMRMLScriptedModuleNode (nodes as references)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = {name: getattr(cls, name) for name in hints if hasattr(cls, name)}

    def make_property(name, annotation):
        base, validators = _field(annotation)

        def getter(self):
            node = self.parameterNode
            if _is_node_type(base):
                return node.GetNodeReference(name)
            text = node.GetParameter(name)
            if text == "":
                return defaults.get(name, base() if base in (str, bool, int, float) else None)
            if base is bool:
                return text == "true"
            return base(text)

        def setter(self, value):
            node = self.parameterNode
            if _is_node_type(base):
                if value is not None and not value.IsA(base.__name__):
                    raise TypeError(f"{name} must be a {base.__name__}, not {value.GetClassName()}")
                node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
                return
            value = base(value)
            for validator in validators:
                validator.check(name, value)
            node.SetParameter(name, ("true" if value else "false") if base is bool else str(value))

        return property(getter, setter)

    namespace = {"__init__": lambda self, node: setattr(self, "parameterNode", node),
                 "connectGui": lambda self, gui: object(),
                 "disconnectGui": lambda self, tag: None,
                 # Like the real wrapper: observing the wrapper observes its node.
                 "AddObserver": lambda self, event, callback, priority=0.0:
                     self.parameterNode.AddObserver(event, callback, priority),
                 "RemoveObserver": lambda self, tag: self.parameterNode.RemoveObserver(tag),
                 "Modified": lambda self: self.parameterNode.Modified(),
                 "__doc__": cls.__doc__}
    for name, annotation in hints.items():
        namespace[name] = make_property(name, annotation)
    return type(cls.__name__, (), namespace)


def _parameter_node_wrapper():
    m = types.ModuleType("slicer.parameterNodeWrapper")
    m.parameterNodeWrapper = parameterNodeWrapper
    m.Choice = Choice
    m.WithinRange = WithinRange
    return m


# -- slicer.ScriptedLoadableModule ---------------------------------------------------------------------
class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent


class ScriptedLoadableModuleWidget:
    """Enough of the real base for DVTStagingWidget.setup() to run on a fake panel (Testing/fake_panel.py)."""

    def __init__(self, parent=None):
        self.parent = parent or types.SimpleNamespace(isEntered=True)
        self.layout = types.SimpleNamespace(addWidget=lambda widget: None)

    def setup(self):
        pass

    def resourcePath(self, filename):
        return str(MODULE_FILE.parent / "Resources" / filename)


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        super().__init__()
        name = type(self).__name__
        self.moduleName = name[:-5] if name.endswith("Logic") else name

    def getParameterNode(self):
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)   # CreateNodeByClass hands over a reference
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node.SetName(scene.GenerateUniqueName(self.moduleName))
            node = scene.AddNode(node)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None):
        print(message)


def _scripted_loadable_module():
    m = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(m, cls.__name__, cls)
    return m


# -- installing them -------------------------------------------------------------------------------------
def install() -> None:
    """Register the stand-ins (only where the real module is absent)."""
    for name, factory in (("slicer.i18n", _i18n), ("slicer.parameterNodeWrapper", _parameter_node_wrapper),
                          ("slicer.ScriptedLoadableModule", _scripted_loadable_module)):
        if name not in sys.modules:
            module = factory()
            sys.modules[name] = module
            setattr(slicer, name.split(".", 1)[1], module)
    for name in ("qt", "ctk"):
        sys.modules.setdefault(name, types.ModuleType(name))


def import_module_file():
    """DVTStaging.py as the module `DVTStaging` (loaded by path: the repo folder has the same name)."""
    install()
    if "DVTStaging" in sys.modules and getattr(sys.modules["DVTStaging"], "__file__", None) == str(MODULE_FILE):
        return sys.modules["DVTStaging"]
    spec = importlib.util.spec_from_file_location("DVTStaging", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["DVTStaging"] = module
    spec.loader.exec_module(module)
    return module
