"""slicer.parameterNodeWrapper, faked after Base/Python/slicer/parameterNodeWrapper (wrapper.py,
serializers.py, validators.py, guiConnectors.py) at v5.12.0 (v5.10.0 differs only in disconnectGui,
which there leaves the ModifiedEvent observer of connectGui in place).

Modelled: typed members stored in the vtkMRMLScriptedModuleNode (str/int/float as text, bool as
"True"/"False", nodes as node references plus an empty marker parameter), defaults written when the
wrapper is made, validators (NotNone, IsInstance, Choice, WithinRange, Minimum, Maximum) run on every
write, cached reads refreshed on the node's ModifiedEvent, and connectGui: the widgets of the
childWidgetVariables namespace whose SlicerParameterName property names a member get a GUI connector
chosen by widget class and member type (an unsupported pair raises RuntimeError), the member's value is
written into the widget, the widget's signal writes back into the node, and the node's ModifiedEvent
updates every connected widget.  Not modelled: parameter packs, lists/dicts/unions, enum choices.
"""

from __future__ import annotations

import logging
import typing
import weakref

import slicer
import vtk

from . import runtime
from .modules import strict_module

SlicerParameterNamePropertyName = "SlicerParameterName"


# -- validators ----------------------------------------------------------------------------------------------
class Validator:
    def validate(self, value) -> None:
        raise NotImplementedError


class NotNone(Validator):
    def validate(self, value):
        if value is None:
            raise ValueError("Value must not be None")


class IsInstance(Validator):
    def __init__(self, classtype):
        self.classtype = classtype

    def validate(self, value):
        if value is not None and not isinstance(value, self.classtype):
            raise TypeError(f"Value must be of type '{self.classtype}', is type '{type(value)}' value '{value}'")


class WithinRange(Validator):
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value):
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Value must be within range [{self.minimum}, {self.maximum}], is {value}")


class Minimum(Validator):
    def __init__(self, minimum):
        self.minimum = minimum

    def validate(self, value):
        if value < self.minimum:
            raise ValueError(f"Value must be greater than {self.minimum}, is {value}")


class Maximum(Validator):
    def __init__(self, maximum):
        self.maximum = maximum

    def validate(self, value):
        if value > self.maximum:
            raise ValueError(f"Value must be less than {self.maximum}, is {value}")


class Choice(Validator):
    def __init__(self, choices):
        self.choices = choices

    def validate(self, value):
        if value not in self.choices:
            raise ValueError(f"Value is {value}, but must be in one of the following: {self.choices}")


class Default:
    def __init__(self, value):
        self.value = value


def _is_node_type(t) -> bool:
    return isinstance(t, type) and issubclass(t, slicer.vtkMRMLNode)


# -- serializers --------------------------------------------------------------------------------------------------
class _Serializer:
    def __init__(self, type_, validators):
        self.type, self.validators = type_, validators

    def isIn(self, node, name):
        return node.HasParameter(name)

    def write(self, node, name, value):
        for validator in self.validators:
            validator.validate(value)
        self._write(node, name, value)


class _NumberSerializer(_Serializer):
    default = 0

    def _write(self, node, name, value):
        node.SetParameter(name, str(value))

    def read(self, node, name):
        return self.type(node.GetParameter(name))


class _StringSerializer(_Serializer):
    default = ""

    def _write(self, node, name, value):
        node.SetParameter(name, str(value))

    def read(self, node, name):
        return node.GetParameter(name)


class _BoolSerializer(_Serializer):
    default = False

    def _write(self, node, name, value):
        node.SetParameter(name, "True" if value else "False")

    def read(self, node, name):
        return node.GetParameter(name) == "True"


class _NodeSerializer(_Serializer):
    default = None

    def _write(self, node, name, value):
        node.SetParameter(name, "")
        node.SetNodeReferenceID(name, value.GetID() if value is not None else None)

    def read(self, node, name):
        return node.GetNodeReference(name)


def _create_serializer(type_, annotations):
    validators = [a for a in annotations if isinstance(a, Validator)]
    rest = [a for a in annotations if not isinstance(a, Validator)]
    if type_ in (int, float):
        base = [NotNone(), IsInstance((int, float) if type_ is float else int)]
        return _NumberSerializer(type_, base + validators), rest
    if type_ is str:
        return _StringSerializer(str, [NotNone(), IsInstance(str)] + validators), rest
    if type_ is bool:
        return _BoolSerializer(bool, [NotNone(), IsInstance(bool)] + validators), rest
    if _is_node_type(type_):
        return _NodeSerializer(type_, [IsInstance(type_)] + validators), rest
    raise Exception(f"Unable to create serializer for type: {type_} (not in the fake)")


class _ParameterInfo:
    def __init__(self, name, serializer, default, annotated_type):
        self.basename, self.serializer, self.default, self.unalteredType = name, serializer, default, annotated_type


def _split(annotated):
    if typing.get_origin(annotated) is typing.Annotated:
        base, *extras = typing.get_args(annotated)
        return base, list(extras)
    return annotated, []


# -- per-member storage with a cache ---------------------------------------------------------------------------------
class _CachedParameter:
    def __init__(self, info: _ParameterInfo, node):
        self.info, self.node = info, node
        self._writing = False
        if not info.serializer.isIn(node, info.basename):
            info.serializer.write(node, info.basename, info.default.value)
        self._value = self._read_node()
        me = weakref.ref(self)
        self._tag = runtime.add_vtk_observer(node, vtk.vtkCommand.ModifiedEvent,
                                             lambda c, e: me() is not None and me()._on_modified())

    def __del__(self):
        try:
            self.node.RemoveObserver(self._tag)
        except Exception:
            pass

    def _read_node(self):
        """_Parameter.read: a member missing from the node (e.g. after a scene close) gets its default first."""
        if not self.info.serializer.isIn(self.node, self.info.basename):
            self.info.serializer.write(self.node, self.info.basename, self.info.default.value)
        return self.info.serializer.read(self.node, self.info.basename)

    def _on_modified(self):
        if not self._writing:
            self._value = self._read_node()

    def read(self):
        return self._value

    def write(self, value):
        self._writing = True
        try:
            with slicer.util.NodeModify(self.node):
                self.info.serializer.write(self.node, self.info.basename, value)
                self._value = self._read_node()
        finally:
            self._writing = False


# -- GUI connectors ----------------------------------------------------------------------------------------------
class GuiConnector:
    SIGNAL = None

    def __init__(self, widget):
        self._widget = widget
        self._callback = None

    def onChanged(self, callback):
        if self._callback is not None:
            getattr(self._widget, self.SIGNAL).disconnect(self._changed)
        self._callback = callback
        if callback is not None:
            getattr(self._widget, self.SIGNAL).connect(self._changed)

    def _changed(self):
        if self._callback:
            self._callback()

    def widget(self):
        return self._widget


class _CheckBoxToBool(GuiConnector):
    SIGNAL = "stateChanged"

    def read(self):
        return self._widget.checked

    def write(self, value):
        self._widget.checked = value


class _PushButtonToBool(GuiConnector):
    SIGNAL = "toggled"

    def __init__(self, widget):
        super().__init__(widget)
        if not widget.checkable:
            logging.warning("Making push button checkable for conversion to bool")
            widget.checkable = True

    def read(self):
        return self._widget.checked

    def write(self, value):
        self._widget.checked = value


class _SliderToNumber(GuiConnector):
    SIGNAL = "valueChanged"

    def __init__(self, widget, type_, annotations):
        super().__init__(widget)
        self._integer = type_ is int
        if self._integer:
            widget.decimals = 0
        within = next((a for a in annotations if isinstance(a, WithinRange)), None)
        minimum = next((a for a in annotations if isinstance(a, Minimum)), None)
        maximum = next((a for a in annotations if isinstance(a, Maximum)), None)
        if within is None and (minimum is None or maximum is None):
            raise RuntimeError("Cannot have a connection to ctkSliderWidget where the float types is unbounded.")
        widget.minimum = within.minimum if within else minimum.minimum
        widget.maximum = within.maximum if within else maximum.maximum

    def read(self):
        return int(self._widget.value) if self._integer else self._widget.value

    def write(self, value):
        self._widget.value = int(value) if self._integer else value


class _ComboBoxToChoice(GuiConnector):
    """QComboBoxToStringableConnector: CLEARS the combo box, adds str(choice) for each choice."""

    SIGNAL = "currentIndexChanged"

    def __init__(self, widget, choices):
        super().__init__(widget)
        self._choices = choices
        widget.clear()
        for choice in choices:
            widget.addItem(str(choice))

    def read(self):
        return self._choices[self._widget.currentIndex]

    def write(self, value):
        for index, choice in enumerate(self._choices):
            if choice == value:
                self._widget.currentIndex = index
                return
        raise ValueError(f"Unable to find value {value} in choices {self._choices}")


class _NodeComboBoxToNode(GuiConnector):
    SIGNAL = "currentNodeChanged"

    def __init__(self, widget, type_):
        super().__init__(widget)
        widget.nodeTypes = (type_().GetClassName(),)

    def read(self):
        return self._widget.currentNode()

    def write(self, value):
        self._widget.setCurrentNode(value)


class _LabelToStr(GuiConnector):
    def onChanged(self, callback):
        self._callback = callback   # QLabel has no textChanged signal

    def read(self):
        return self._widget.text

    def write(self, value):
        self._widget.text = value


def createGuiConnector(widget, datatype):
    import ctk
    import qt

    type_, annotations = _split(datatype)
    kind = type(widget)
    if type_ is bool and kind is qt.QCheckBox:
        return _CheckBoxToBool(widget)
    if type_ is bool and kind is qt.QPushButton:
        return _PushButtonToBool(widget)
    if type_ in (float, int) and kind is ctk.ctkSliderWidget:
        return _SliderToNumber(widget, type_, annotations)
    if type_ in (int, float, str, bool) and kind is qt.QComboBox:
        choice = next((a for a in annotations if isinstance(a, Choice)), None)
        if choice is None:
            raise RuntimeError("ComboBoxToStringableConnector requires the Choice annotation to be used.")
        return _ComboBoxToChoice(widget, choice.choices)
    if _is_node_type(type_) and kind is slicer.qMRMLNodeComboBox:
        return _NodeComboBoxToNode(widget, type_)
    if type_ is str and kind is qt.QLabel:
        return _LabelToStr(widget)
    raise RuntimeError(f"Unable to create GUI connector from datatype '{datatype}' to widget type '{kind}'.")


# -- the wrapper -----------------------------------------------------------------------------------------------------
def _check_name(obj, name):
    if name not in obj.allParameters:
        raise ValueError(f"Cannot find a param with the given name: {name}")


def _init(self, parameterNode, prefix=None):
    self.parameterNode = parameterNode
    self._parameterGUIs = {}
    self._nextParameterGUIsTag = 0
    self._guiVtkObserverTags = {}
    self._updatingGUIFromParameterNode = False
    for info in self.allParameters.values():
        setattr(self, f"_{info.basename}_impl", _CachedParameter(info, parameterNode))


def _getValue(self, name):
    _check_name(self, name)
    return getattr(self, f"_{name}_impl").read()


def _setValue(self, name, value):
    _check_name(self, name)
    getattr(self, f"_{name}_impl").write(value)


def _updateGUIFromParameterNode(self):
    if self._updatingGUIFromParameterNode:
        return
    try:
        self._updatingGUIFromParameterNode = True
        with slicer.util.NodeModify(self):
            for mapping in list(self._parameterGUIs.values()):
                for name, connector in mapping.items():
                    connector.write(self.getValue(name))
    finally:
        self._updatingGUIFromParameterNode = False


def _connectParametersToGui(self, mapping):
    for name in mapping:
        _check_name(self, name)
    connectors = {name: w if isinstance(w, GuiConnector) else createGuiConnector(w, self.dataType(name))
                  for name, w in mapping.items()}
    tag = self._nextParameterGUIsTag
    self._nextParameterGUIsTag += 1
    self._parameterGUIs[tag] = connectors
    for name, connector in connectors.items():
        connector.write(self.getValue(name))

        def callback(name=name, connector=connector):
            with slicer.util.NodeModify(self):
                if not self._updatingGUIFromParameterNode:
                    self.setValue(name, connector.read())
        connector.onChanged(callback)
    self._guiVtkObserverTags[tag] = runtime.add_vtk_observer(
        self.parameterNode, vtk.vtkCommand.ModifiedEvent, lambda caller, event: _updateGUIFromParameterNode(self))
    return tag


def _connectGui(self, gui):
    widgets = {}
    if getattr(gui, "isWidgetType", lambda: False)():
        import qt
        candidates = gui.findChildren(qt.QWidget)
    else:
        candidates = gui.__dict__.values()
    for widget in candidates:
        name = widget.property(SlicerParameterNamePropertyName)
        if name:
            widgets[name] = widget
    return _connectParametersToGui(self, widgets)


def _disconnectGui(self, tag):
    if tag in self._parameterGUIs:
        for connector in self._parameterGUIs[tag].values():
            connector.onChanged(None)
        del self._parameterGUIs[tag]
    if runtime.current is not None and runtime.current.version == "5.10":
        return   # 5.10: the ModifiedEvent observer added by connectGui stays
    if tag in self._guiVtkObserverTags:
        self.RemoveObserver(self._guiVtkObserverTags.pop(tag))


def parameterNodeWrapper(classtype=None):
    def wrap(cls):
        members = typing.get_type_hints(cls, include_extras=True)
        params = {}
        for name, annotated in members.items():
            type_, annotations = _split(annotated)
            try:
                serializer, annotations = _create_serializer(type_, annotations)
            except Exception as exc:
                raise Exception(f"Unable to create serializer for {cls} member {name}") from exc
            defaults = [a for a in annotations if isinstance(a, Default)]
            annotations = [a for a in annotations if not isinstance(a, Default)]
            if hasattr(cls, name):
                default = Default(getattr(cls, name))
            else:
                default = defaults[0] if defaults else Default(serializer.default)
            if annotations:
                logging.warning(f"Unused annotations: {annotations}")
            params[name] = _ParameterInfo(name, serializer, default, annotated)
            setattr(cls, name, property(lambda self, n=name: getattr(self, f"_{n}_impl").read(),
                                        lambda self, value, n=name: getattr(self, f"_{n}_impl").write(value)))

        def checked(attr, value):
            if hasattr(cls, attr):
                raise ValueError(f"Cannot use reserved name '{attr}' in a parameterNodeWrapper")
            setattr(cls, attr, value)

        checked("allParameters", params)
        checked("_is_parameter_node_wrapper", True)
        cls.__init__ = _init
        checked("default", lambda self, name: (_check_name(self, name), self.allParameters[name].default)[1])
        checked("isCached", lambda self, name: (_check_name(self, name), True)[1])
        checked("dataType", staticmethod(lambda name: (_check_name(cls, name), params[name].unalteredType)[1]))
        checked("getValue", _getValue)
        checked("setValue", _setValue)
        checked("connectGui", _connectGui)
        checked("connectParametersToGui", _connectParametersToGui)
        checked("disconnectGui", _disconnectGui)
        checked("StartModify", lambda self: self.parameterNode.StartModify())
        checked("EndModify", lambda self, wasModified: self.parameterNode.EndModify(wasModified))
        checked("AddObserver", lambda self, event, callback, priority=0.0:
                self.parameterNode.AddObserver(event, callback, priority))
        checked("RemoveObserver", lambda self, tag: self.parameterNode.RemoveObserver(tag))
        checked("Modified", lambda self: self.parameterNode.Modified())
        return cls

    if classtype is None:
        return wrap
    return wrap(classtype)


def isParameterNodeWrapper(obj):
    return getattr(obj, "_is_parameter_node_wrapper", False)


def make_module():
    return strict_module(
        "slicer.parameterNodeWrapper", "slicer.parameterNodeWrapper (fake, see slicer_fakes/parameter_node_wrapper.py)",
        parameterNodeWrapper=parameterNodeWrapper, isParameterNodeWrapper=isParameterNodeWrapper,
        SlicerParameterNamePropertyName=SlicerParameterNamePropertyName, createGuiConnector=createGuiConnector,
        GuiConnector=GuiConnector, Validator=Validator, NotNone=NotNone, IsInstance=IsInstance,
        WithinRange=WithinRange, Minimum=Minimum, Maximum=Maximum, Choice=Choice, Default=Default)
