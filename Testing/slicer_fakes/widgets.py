"""Fake Qt, CTK and MRML widgets: the classes of DVTStaging.ui and what the module code calls on them.

Each class declares the Qt properties (PROPERTIES), the signals (SIGNALS) and the slots/methods of the
real class (Qt 5.15, CTK, Slicer 5.10-5.12 MRML widgets), with the behaviour the panel relies on:
which signal a property change emits, when it does not (same value, blockSignals), what happens to a
value out of range.  Facts and sources: Testing/slicer_api_facts.md.
"""

from __future__ import annotations

import os

import slicer
import vtk

from . import runtime
from .qobject import Prop, QObject, convert, slot

# Qt enum values the panel (and the fakes) use.
UNCHECKED, PARTIALLY_CHECKED, CHECKED = 0, 1, 2
USER_ROLE, DISPLAY_ROLE, EDIT_ROLE, TOOLTIP_ROLE = 256, 0, 2, 3


class UserCannotDoThat(AssertionError):
    """The test asked the user to act on a widget a user cannot reach (disabled, hidden, no such item)."""


# -- layouts ---------------------------------------------------------------------------------------------
class QLayout(QObject):
    PROPERTIES = {"spacing": Prop("int", 6), "contentsMargins": Prop("QVariant", None),
                  "sizeConstraint": Prop("QVariant", None)}

    def __init__(self, parent=None):
        super().__init__(None)
        self._s.owner = None
        self._s.items = []
        if isinstance(parent, QWidget):
            parent.setLayout(self)
        elif parent is not None:
            self._fake_set_parent(parent)

    def parentWidget(self):
        node = self
        while node is not None and not isinstance(node, QWidget):
            node = node._s.owner if isinstance(node, QLayout) and node._s.owner is not None else node.parent()
        return node

    def addWidget(self, widget, *args):
        if not isinstance(widget, QWidget):
            raise TypeError(f"{type(self).__name__}.addWidget: {widget!r} is not a QWidget")
        owner = self.parentWidget()
        if owner is not None:
            widget._fake_set_parent(owner)
        self._s.items.append(widget)

    def addLayout(self, layout, *args):
        layout._fake_set_parent(self)
        self._s.items.append(layout)

    def addStretch(self, stretch=0):
        pass

    def count(self):
        return len(self._s.items)

    def setContentsMargins(self, left, top, right, bottom):
        self._s.props["contentsMargins"] = (left, top, right, bottom)

    def setSpacing(self, spacing):
        self.spacing = spacing


class QBoxLayout(QLayout):
    pass


class QVBoxLayout(QBoxLayout):
    pass


class QHBoxLayout(QBoxLayout):
    pass


class QGridLayout(QLayout):
    PROPERTIES = {"horizontalSpacing": Prop("int", 6), "verticalSpacing": Prop("int", 6)}


class QFormLayout(QLayout):
    PROPERTIES = {"fieldGrowthPolicy": Prop("QVariant", None), "labelAlignment": Prop("QVariant", None),
                  "formAlignment": Prop("QVariant", None), "rowWrapPolicy": Prop("QVariant", None),
                  "horizontalSpacing": Prop("int", 6), "verticalSpacing": Prop("int", 6)}

    def addRow(self, *args):
        for arg in args:
            if isinstance(arg, QWidget):
                self.addWidget(arg)
            elif isinstance(arg, QLayout):
                self.addLayout(arg)


# -- QWidget -------------------------------------------------------------------------------------------------
class QWidget(QObject):
    PROPERTIES = {
        "enabled": Prop("bool", True, getter="isEnabled", setter="setEnabled"),
        "visible": Prop("bool", True, getter="isVisible", setter="setVisible"),
        "toolTip": Prop("QString", ""), "statusTip": Prop("QString", ""), "whatsThis": Prop("QString", ""),
        "windowTitle": Prop("QString", ""), "styleSheet": Prop("QString", ""),
        "geometry": Prop("QVariant", None), "minimumSize": Prop("QVariant", None),
        "maximumSize": Prop("QVariant", None), "sizePolicy": Prop("QVariant", None),
        "focusPolicy": Prop("QVariant", None), "font": Prop("QVariant", None),
    }
    SIGNALS = ("customContextMenuRequested(QPoint)", "windowTitleChanged(QString)",
               "windowIconChanged(QIcon)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.own_enabled = True
        self._s.hidden = parent is None     # a top-level widget is hidden until shown
        self._s.layout = None

    def isWidgetType(self):
        return True

    def parentWidget(self):
        parent = self._s.parent
        while parent is not None and not isinstance(parent, QWidget):
            parent = parent.parent()
        return parent

    # enabled: a widget is enabled only when all its ancestors are
    def isEnabled(self):
        parent = self.parentWidget()
        return self._s.own_enabled and (parent is None or parent.isEnabled())

    def setEnabled(self, enabled):
        self._s.own_enabled = convert("bool", enabled, type(self).__name__, "enabled")

    def setDisabled(self, disabled):
        self.setEnabled(not disabled)

    # visible: not hidden, no hidden ancestor, not inside a collapsed ctkCollapsibleButton
    def isVisible(self):
        if self._s.hidden:
            return False
        parent = self.parentWidget()
        if parent is None:
            return True
        if isinstance(parent, ctkCollapsibleButton) and parent.collapsed:
            return False
        return parent.isVisible()

    def isHidden(self):
        return self._s.hidden

    def setVisible(self, visible):
        self._s.hidden = not convert("bool", visible, type(self).__name__, "visible")

    def show(self):
        self.setVisible(True)

    def hide(self):
        self.setVisible(False)

    def close(self):
        self.hide()
        return True

    def setHidden(self, hidden):
        self.setVisible(not hidden)

    def setToolTip(self, text):
        self.toolTip = text

    def setWindowTitle(self, text):
        self.windowTitle = text

    def setStyleSheet(self, text):
        self.styleSheet = text

    def layout(self):
        return self._s.layout

    def setLayout(self, layout):
        if not isinstance(layout, QLayout):
            raise TypeError(f"setLayout: {layout!r} is not a QLayout")
        self._s.layout = layout
        layout._s.owner = self
        layout._fake_set_parent(self)

    def update(self):
        pass

    def repaint(self):
        pass


class QFrame(QWidget):
    PROPERTIES = {"frameShape": Prop("QVariant", None), "frameShadow": Prop("QVariant", None),
                  "lineWidth": Prop("int", 1), "midLineWidth": Prop("int", 0)}


# -- labels -----------------------------------------------------------------------------------------------------
class QLabel(QFrame):
    PROPERTIES = {"text": Prop("QString", "", setter="setText"), "wordWrap": Prop("bool", False),
                  "textFormat": Prop("QVariant", None), "alignment": Prop("QVariant", None),
                  "margin": Prop("int", 0), "indent": Prop("int", -1), "openExternalLinks": Prop("bool", False),
                  "textInteractionFlags": Prop("QVariant", None), "scaledContents": Prop("bool", False),
                  "pixmap": Prop("QVariant", None)}
    SIGNALS = ("linkActivated(QString)", "linkHovered(QString)")

    def __init__(self, text="", parent=None):
        if isinstance(text, QWidget) and parent is None:
            text, parent = "", text
        text = "" if text is None else text
        super().__init__(parent)
        self.text = text

    @slot("setText(QString)")
    def setText(self, text):
        self._s.props["text"] = convert("QString", text, "QLabel", "text")

    def clear(self):
        self.setText("")

    def setWordWrap(self, on):
        self.wordWrap = on


# -- buttons ------------------------------------------------------------------------------------------------------
class QAbstractButton(QWidget):
    PROPERTIES = {"text": Prop("QString", "", setter="setText"), "icon": Prop("QVariant", None),
                  "iconSize": Prop("QVariant", None), "shortcut": Prop("QVariant", None),
                  "checkable": Prop("bool", False, setter="setCheckable"),
                  "checked": Prop("bool", False, setter="setChecked"),
                  "autoRepeat": Prop("bool", False), "autoExclusive": Prop("bool", False),
                  "down": Prop("bool", False)}
    SIGNALS = ("clicked(bool)", "clicked()", "pressed()", "released()", "toggled(bool)")
    CLONES = {"clicked(bool)": ("clicked()",)}

    def setText(self, text):
        self._s.props["text"] = convert("QString", text, type(self).__name__, "text")

    def setIcon(self, icon):
        self._s.props["icon"] = icon

    def setCheckable(self, checkable):
        self._s.props["checkable"] = checkable
        if not checkable and self._s.props["checked"]:
            self._s.props["checked"] = False

    def isCheckable(self):
        return self.checkable

    def isChecked(self):
        return self.checked

    @slot("setChecked(bool)")
    def setChecked(self, checked):
        checked = convert("bool", checked, type(self).__name__, "checked")
        if not self._s.props["checkable"] or checked == self._s.props["checked"]:
            return   # Qt: a button that is not checkable cannot be checked; no change, no signal
        self._s.props["checked"] = checked
        self._fake_check_state_set()
        self._fake_emit("toggled(bool)", checked)

    def _fake_check_state_set(self):
        pass

    @slot("toggle()")
    def toggle(self):
        self.setChecked(not self.checked)

    @slot("click()")
    def click(self):
        """QAbstractButton::click(): does nothing when disabled; else pressed, the toggle (nextCheckState:
        stateChanged and toggled), released, clicked."""
        if not self.isEnabled():
            return
        self._fake_emit("pressed()")
        if self.checkable:
            self.setChecked(not self.checked)
        self._fake_emit("released()")
        self._fake_emit("clicked(bool)", self.checked)

    @slot("animateClick()")
    def animateClick(self, msec=100):
        self.click()


class QPushButton(QAbstractButton):
    PROPERTIES = {"autoDefault": Prop("bool", False), "default": Prop("bool", False), "flat": Prop("bool", False)}

    def __init__(self, text="", parent=None):
        if isinstance(text, QWidget) and parent is None:
            text, parent = "", text
        text = "" if text is None else text
        super().__init__(parent)
        self.text = text


class QToolButton(QAbstractButton):
    PROPERTIES = {"autoRaise": Prop("bool", False), "toolButtonStyle": Prop("QVariant", None),
                  "popupMode": Prop("QVariant", None), "arrowType": Prop("QVariant", None)}
    SIGNALS = ("triggered(QAction*)",)


class QCheckBox(QAbstractButton):
    PROPERTIES = {"tristate": Prop("bool", False)}
    SIGNALS = ("stateChanged(int)",)

    def __init__(self, text="", parent=None):
        if isinstance(text, QWidget) and parent is None:
            text, parent = "", text
        text = "" if text is None else text
        super().__init__(parent)
        self._s.props["checkable"] = True
        self.text = text

    def _fake_check_state_set(self):
        # QCheckBox::checkStateSet(): stateChanged is emitted before QAbstractButton emits toggled.
        self._fake_emit("stateChanged(int)", CHECKED if self._s.props["checked"] else UNCHECKED)

    def checkState(self):
        return CHECKED if self.checked else UNCHECKED

    def setCheckState(self, state):
        """QCheckBox::setCheckState skips checkStateSet while it calls setChecked: toggled comes first, then
        stateChanged."""
        checked = state != UNCHECKED
        if checked == self._s.props["checked"]:
            return
        self._s.props["checked"] = checked
        self._fake_emit("toggled(bool)", checked)
        self._fake_emit("stateChanged(int)", CHECKED if checked else UNCHECKED)


class ctkCollapsibleButton(QAbstractButton):
    """CTK Libs/Widgets/ctkCollapsibleButton: checkable, checked == not collapsed; collapsing hides the contents."""

    PROPERTIES = {"collapsed": Prop("bool", False, setter="setCollapsed", getter="_collapsed"),
                  "collapsedHeight": Prop("int", 14), "flat": Prop("bool", False),
                  "contentsFrameShape": Prop("QVariant", None), "contentsFrameShadow": Prop("QVariant", None),
                  "contentsLineWidth": Prop("int", 1), "contentsMidLineWidth": Prop("int", 0),
                  "buttonTextAlignment": Prop("QVariant", None), "indicatorAlignment": Prop("QVariant", None)}
    SIGNALS = ("contentsCollapsed(bool)",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.props["checkable"] = True
        self._s.props["checked"] = True

    def _collapsed(self):
        return not self._s.props["checked"]

    @slot("setCollapsed(bool)")
    def setCollapsed(self, collapsed):
        self.setChecked(not collapsed)

    def setChecked(self, checked):
        changed = convert("bool", checked, "ctkCollapsibleButton", "checked") != self._s.props["checked"]
        super().setChecked(checked)
        if changed:
            self._fake_emit("contentsCollapsed(bool)", not self._s.props["checked"])

    @slot("collapse(bool)")
    def collapse(self, c):
        self.setCollapsed(c)


# -- combo box ------------------------------------------------------------------------------------------------------
class QComboBox(QWidget):
    PROPERTIES = {
        "count": Prop("int", 0, getter="_count", readonly=True),
        "currentIndex": Prop("int", -1, getter="_currentIndex", setter="setCurrentIndex"),
        "currentText": Prop("QString", "", getter="_currentText", setter="setCurrentText"),
        "currentData": Prop("QVariant", None, getter="_currentData", readonly=True),
        "editable": Prop("bool", False), "maxVisibleItems": Prop("int", 10), "maxCount": Prop("int", 2147483647),
        "insertPolicy": Prop("QVariant", None), "sizeAdjustPolicy": Prop("QVariant", None),
        "minimumContentsLength": Prop("int", 0), "iconSize": Prop("QVariant", None),
        "duplicatesEnabled": Prop("bool", False), "frame": Prop("bool", True), "modelColumn": Prop("int", 0),
        "placeholderText": Prop("QString", ""),
    }
    SIGNALS = ("activated(int)", "activated(QString)", "currentIndexChanged(int)", "currentIndexChanged(QString)",
               "currentTextChanged(QString)", "editTextChanged(QString)", "highlighted(int)", "highlighted(QString)",
               "textActivated(QString)", "textHighlighted(QString)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.items = []      # [text, {role: value}]
        self._s.current = -1

    def _count(self):
        return len(self._s.items)

    def _currentIndex(self):
        return self._s.current

    def _currentText(self):
        return self._s.items[self._s.current][0] if self._s.current >= 0 else ""

    def _currentData(self):
        return self.itemData(self._s.current, USER_ROLE)

    def _set_current(self, index, force=False):
        if index == self._s.current and not force:
            return
        self._s.current = index
        self._fake_emit_current_index_changed()

    def _fake_emit_current_index_changed(self):
        """QComboBoxPrivate::_q_emitCurrentIndexChanged (Qt 5.15): currentIndexChanged(int), (QString) and
        currentTextChanged, the last one whatever the text was before (also to an item with the same text)."""
        text = self._currentText()
        self._fake_emit("currentIndexChanged(int)", self._s.current)
        self._fake_emit("currentIndexChanged(QString)", text)
        self._fake_emit("currentTextChanged(QString)", text)

    @slot("setCurrentIndex(int)")
    def setCurrentIndex(self, index):
        index = convert("int", index, "QComboBox", "currentIndex")
        self._set_current(index if 0 <= index < len(self._s.items) else -1)

    @slot("setCurrentText(QString)")
    def setCurrentText(self, text):
        index = self.findText(convert("QString", text, "QComboBox", "currentText"))
        if index >= 0:
            self.setCurrentIndex(index)

    def addItem(self, text, userData=None):
        self.insertItem(len(self._s.items), text, userData)

    def addItems(self, texts):
        for text in texts:
            self.addItem(text)

    def insertItem(self, index, text, userData=None):
        """_q_rowsInserted: the first item of an empty combo box becomes current; an item inserted before the
        current one moves it down, and the new row number is announced (currentIndexChanged...)."""
        text = convert("QString", text, "QComboBox", "addItem(text)")
        index = max(0, min(index, len(self._s.items)))
        was_empty = not self._s.items
        self._s.items.insert(index, [text, {} if userData is None else {USER_ROLE: userData}])
        if was_empty and self._s.current == -1 and not self.placeholderText:
            self._set_current(0)
        elif 0 <= index <= self._s.current:
            self._set_current(self._s.current + 1)

    def removeItem(self, index):
        """_q_rowsRemoved: removing an item before the current one announces the new row number; removing the
        current one makes the item now at its place (or the last one) current."""
        if not 0 <= index < len(self._s.items):
            return
        del self._s.items[index]
        if index < self._s.current:
            self._set_current(self._s.current - 1)
        elif index == self._s.current:
            self._set_current(min(index, len(self._s.items) - 1) if self._s.items else -1, force=True)

    @slot("clear()")
    def clear(self):
        had_current = self._s.current != -1
        self._s.items = []
        if had_current:
            self._set_current(-1, force=True)

    def itemText(self, index):
        return self._s.items[index][0] if 0 <= index < len(self._s.items) else ""

    def itemData(self, index, role=USER_ROLE):
        if not 0 <= index < len(self._s.items):
            return None
        if role == DISPLAY_ROLE:
            return self._s.items[index][0]
        return self._s.items[index][1].get(role)

    def setItemData(self, index, value, role=USER_ROLE):
        """A changed value of the current item (any role) emits currentTextChanged (_q_dataChanged); the same
        value again changes nothing (QStandardItem::setData)."""
        if not 0 <= index < len(self._s.items):
            return
        if role in (DISPLAY_ROLE, EDIT_ROLE):
            self.setItemText(index, value)
            return
        values = self._s.items[index][1]
        if role in values and type(values[role]) is type(value) and values[role] == value:
            return
        values[role] = value
        self._fake_data_changed(index)

    def setItemText(self, index, text):
        if 0 <= index < len(self._s.items):
            text = convert("QString", text, "QComboBox", "itemText")
            if text != self._s.items[index][0]:
                self._s.items[index][0] = text
                self._fake_data_changed(index)

    def _fake_data_changed(self, index):
        if index == self._s.current:
            self._fake_emit("currentTextChanged(QString)", self._currentText())

    def findData(self, data, role=USER_ROLE, flags=None):
        for index, (_, values) in enumerate(self._s.items):
            if role in values and values[role] == data and type(values[role]) is type(data):
                return index
        return -1

    def findText(self, text, flags=None):
        return next((i for i, (t, _) in enumerate(self._s.items) if t == text), -1)


# -- text -------------------------------------------------------------------------------------------------------------
class QPlainTextEdit(QFrame):
    PROPERTIES = {"plainText": Prop("QString", "", getter="toPlainText", setter="setPlainText"),
                  "readOnly": Prop("bool", False), "placeholderText": Prop("QString", ""),
                  "lineWrapMode": Prop("QVariant", None), "tabChangesFocus": Prop("bool", False),
                  "documentTitle": Prop("QString", ""), "undoRedoEnabled": Prop("bool", True),
                  "overwriteMode": Prop("bool", False), "backgroundVisible": Prop("bool", False),
                  "centerOnScroll": Prop("bool", False), "maximumBlockCount": Prop("int", 0),
                  "textInteractionFlags": Prop("QVariant", None), "cursorWidth": Prop("int", 1)}
    SIGNALS = ("textChanged()", "undoAvailable(bool)", "redoAvailable(bool)", "copyAvailable(bool)",
               "selectionChanged()", "cursorPositionChanged()", "updateRequest(QRect,int)",
               "blockCountChanged(int)", "modificationChanged(bool)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.text = ""

    def toPlainText(self):
        return self._s.text

    @slot("setPlainText(QString)")
    def setPlainText(self, text):
        """Replaces the document: textChanged() is emitted even when the text is the same."""
        self._s.text = convert("QString", text, "QPlainTextEdit", "plainText")
        self._fake_emit("textChanged()")

    @slot("appendPlainText(QString)")
    def appendPlainText(self, text):
        self._s.text = f"{self._s.text}\n{text}" if self._s.text else text
        self._fake_emit("textChanged()")

    @slot("clear()")
    def clear(self):
        self.setPlainText("")

    def insertPlainText(self, text):
        self._s.text += convert("QString", text, "QPlainTextEdit", "insertPlainText")
        self._fake_emit("textChanged()")


class QLineEdit(QWidget):
    """Qt 5.15 QLineEdit: textChanged(QString) on every change of the text, programmatic ones included (not
    when setText gives the same text); textEdited(QString) only for the user's edits; editingFinished()
    when the user presses Return or leaves the field (the User fake does that after typing)."""

    PROPERTIES = {"text": Prop("QString", "", setter="setText"), "placeholderText": Prop("QString", ""),
                  "readOnly": Prop("bool", False), "maxLength": Prop("int", 32767),
                  "echoMode": Prop("QVariant", None), "alignment": Prop("QVariant", None),
                  "frame": Prop("bool", True), "clearButtonEnabled": Prop("bool", False),
                  "inputMask": Prop("QString", ""), "modified": Prop("bool", False),
                  "acceptableInput": Prop("bool", True, getter="hasAcceptableInput", readonly=True)}
    SIGNALS = ("textChanged(QString)", "textEdited(QString)", "editingFinished()", "returnPressed()",
               "cursorPositionChanged(int,int)", "selectionChanged()", "inputRejected()")

    def __init__(self, parent=None):
        if isinstance(parent, str):   # QLineEdit(const QString& contents, QWidget* parent = nullptr)
            raise NotImplementedError("the fake QLineEdit is made by the .ui loader: QLineEdit(parent)")
        super().__init__(parent)

    @slot("setText(QString)")
    def setText(self, text):
        # QWidgetLineControl::internalSetText truncates to maxLength before it compares with the old text.
        text = convert("QString", text, "QLineEdit", "text")[: self._s.props["maxLength"]]
        if text == self._s.props["text"]:
            return
        self._s.props["text"] = text
        self._fake_emit("textChanged(QString)", text)

    @slot("clear()")
    def clear(self):
        self.setText("")

    def hasAcceptableInput(self):
        return True


# -- progress bar -------------------------------------------------------------------------------------------------------
class QProgressBar(QWidget):
    PROPERTIES = {"minimum": Prop("int", 0, setter="setMinimum"), "maximum": Prop("int", 100, setter="setMaximum"),
                  "value": Prop("int", -1, setter="setValue"), "textVisible": Prop("bool", True),
                  "alignment": Prop("QVariant", None), "format": Prop("QString", "%p%"),
                  "invertedAppearance": Prop("bool", False), "textDirection": Prop("QVariant", None),
                  "orientation": Prop("QVariant", None), "text": Prop("QString", "", readonly=True)}
    SIGNALS = ("valueChanged(int)",)

    @slot("setValue(int)")
    def setValue(self, value):
        """Qt 5.15 QProgressBar::setValue: a value outside [minimum, maximum] is ignored (unless both are 0)."""
        value = convert("int", value, "QProgressBar", "value")
        p = self._s.props
        if value == p["value"] or ((value > p["maximum"] or value < p["minimum"])
                                   and (p["maximum"] != 0 or p["minimum"] != 0)):
            return
        p["value"] = value
        self._fake_emit("valueChanged(int)", value)

    @slot("setRange(int,int)")
    def setRange(self, minimum, maximum):
        p = self._s.props
        if minimum != p["minimum"] or maximum != p["maximum"]:
            p["minimum"], p["maximum"] = minimum, max(minimum, maximum)
            if p["value"] < p["minimum"] - 1 or p["value"] > p["maximum"]:
                self.reset()

    def setMinimum(self, minimum):
        self.setRange(minimum, max(self._s.props["maximum"], minimum))

    def setMaximum(self, maximum):
        self.setRange(min(self._s.props["minimum"], maximum), maximum)

    @slot("reset()")
    def reset(self):
        self._s.props["value"] = self._s.props["minimum"] - 1


# -- item views -----------------------------------------------------------------------------------------------------------
class QAbstractItemView(QFrame):
    PROPERTIES = {"editTriggers": Prop("QVariant", None), "selectionBehavior": Prop("QVariant", None),
                  "selectionMode": Prop("QVariant", None), "alternatingRowColors": Prop("bool", False),
                  "showDropIndicator": Prop("bool", True), "dragEnabled": Prop("bool", False),
                  "textElideMode": Prop("QVariant", None), "iconSize": Prop("QVariant", None),
                  "verticalScrollMode": Prop("QVariant", None), "horizontalScrollMode": Prop("QVariant", None),
                  "autoScroll": Prop("bool", True), "tabKeyNavigation": Prop("bool", False),
                  "dragDropMode": Prop("QVariant", None), "defaultDropAction": Prop("QVariant", None),
                  "dragDropOverwriteMode": Prop("bool", False)}
    SIGNALS = ("pressed(QModelIndex)", "clicked(QModelIndex)", "doubleClicked(QModelIndex)",
               "activated(QModelIndex)", "entered(QModelIndex)", "viewportEntered()", "iconSizeChanged(QSize)")


class QTableView(QAbstractItemView):
    PROPERTIES = {"showGrid": Prop("bool", True), "gridStyle": Prop("QVariant", None),
                  "sortingEnabled": Prop("bool", False), "wordWrap": Prop("bool", True),
                  "cornerButtonEnabled": Prop("bool", True)}


class QTableWidgetItem:
    """Not a QObject: text() is a method; the item belongs to at most one table cell."""

    __slots__ = ("_text", "_data", "_table", "_flags")
    # Qt 5.15 QTableWidgetItem: selectable, editable, drag and drop enabled, user checkable, enabled.
    DEFAULT_FLAGS = 1 | 2 | 4 | 8 | 16 | 32

    def __init__(self, text=""):
        if not isinstance(text, str):
            raise TypeError(f"QTableWidgetItem(text): cannot convert {type(text).__name__} to QString")
        self._text, self._data, self._table, self._flags = text, {}, None, self.DEFAULT_FLAGS

    def text(self):
        return self._text

    def setText(self, text):
        self._text = convert("QString", text, "QTableWidgetItem", "text")

    def data(self, role):
        return self._text if role == DISPLAY_ROLE else self._data.get(role)

    def setData(self, role, value):
        if role == DISPLAY_ROLE:
            self._text = str(value)
        else:
            self._data[role] = value

    def toolTip(self):
        return self._data.get(TOOLTIP_ROLE, "")

    def setToolTip(self, text):
        self._data[TOOLTIP_ROLE] = text

    def tableWidget(self):
        return self._table

    def flags(self):
        return self._flags

    def setFlags(self, flags):
        self._flags = flags

    def __repr__(self):
        return f"<fake QTableWidgetItem {self._text!r}>"


class QTableWidget(QTableView):
    """Qt 5.15 QTableWidget with its QItemSelectionModel: a selection of cells and a current cell.

    - selectRow(r): current cell (r, 0) first, then the row is the selection (ClearAndSelect).
    - setCurrentCell(r, c): the cell (its row under SelectRows) is the selection, then it is current.
    - removing the rows of the current cell: currentCellChanged to the row above (or the row below, announced
      in the old numbering, or none), then itemSelectionChanged if selected cells went with the rows
      (QItemSelectionModelPrivate::_q_rowsAboutToBeRemoved); inserted rows move both without a signal.
    - clearContents()/clear(): the selection, then the current cell, are cleared (model reset).
    """

    PROPERTIES = {"rowCount": Prop("int", 0, getter="_rowCount", setter="setRowCount"),
                  "columnCount": Prop("int", 0, getter="_columnCount", setter="setColumnCount")}
    SIGNALS = ("itemPressed(QTableWidgetItem*)", "itemClicked(QTableWidgetItem*)",
               "itemDoubleClicked(QTableWidgetItem*)", "itemActivated(QTableWidgetItem*)",
               "itemEntered(QTableWidgetItem*)", "itemChanged(QTableWidgetItem*)",
               "currentItemChanged(QTableWidgetItem*,QTableWidgetItem*)", "itemSelectionChanged()",
               "cellPressed(int,int)", "cellClicked(int,int)", "cellDoubleClicked(int,int)", "cellActivated(int,int)",
               "cellEntered(int,int)", "cellChanged(int,int)", "currentCellChanged(int,int,int,int)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.cells = []        # rows of column lists
        self._s.columns = 0
        self._s.headers = []
        self._s.current = (-1, -1)
        self._s.selected = set()  # selected (row, column) cells

    def _rowCount(self):
        return len(self._s.cells)

    def _columnCount(self):
        return self._s.columns

    def _fake_selects_rows(self):
        behavior = self._s.props["selectionBehavior"]   # the .ui gives the enum's name, Python code its value
        return behavior == 1 or (isinstance(behavior, str) and behavior.endswith("SelectRows"))

    def _fake_selected_rows(self):
        """QItemSelectionModel::selectedRows(): the rows whose every cell is selected."""
        return {r for r in range(len(self._s.cells))
                if self._s.columns and all((r, c) in self._s.selected for c in range(self._s.columns))}

    # -- rows and columns --------------------------------------------------------------------------------
    def setRowCount(self, rows):
        rows = convert("int", rows, "QTableWidget", "rowCount")
        if rows < len(self._s.cells):
            self._fake_remove(0, rows, len(self._s.cells) - rows)
        while len(self._s.cells) < rows:
            self._s.cells.append([None] * self._s.columns)

    def setColumnCount(self, columns):
        columns = convert("int", columns, "QTableWidget", "columnCount")
        if columns < self._s.columns:
            self._fake_remove(1, columns, self._s.columns - columns)
        for row in self._s.cells:
            row.extend([None] * (columns - len(row)))
        self._s.columns = columns

    def insertRow(self, row):
        if 0 <= row <= len(self._s.cells):
            self._s.cells.insert(row, [None] * self._s.columns)
            self._fake_shift(0, row, 1)

    def removeRow(self, row):
        if 0 <= row < len(self._s.cells):
            self._fake_remove(0, row, 1)

    def _fake_shift(self, axis, first, by):
        """Rows (axis 0) or columns (1) from `first` on move by `by`: persistent indexes follow, no signal."""
        def moved(cell):
            cell = list(cell)
            if cell[axis] >= first:
                cell[axis] += by
            return tuple(cell)
        if self._s.current != (-1, -1):
            self._s.current = moved(self._s.current)
        self._s.selected = {moved(c) for c in self._s.selected}

    def _fake_remove(self, axis, start, count):
        end, size = start + count - 1, (len(self._s.cells), self._s.columns)[axis]
        current = self._s.current
        if current != (-1, -1) and start <= current[axis] <= end:
            announced = start - 1 if start > 0 else end + 1 if end < size - 1 else -1
            new = list(current)
            new[axis] = announced
            new = tuple(new) if announced >= 0 else (-1, -1)
            self._s.current = (new if start > 0 or announced < 0 else
                               tuple(start if i == axis else v for i, v in enumerate(current)))
            self._fake_emit("currentCellChanged(int,int,int,int)", *new, *current)
        gone = {c for c in self._s.selected if start <= c[axis] <= end}
        self._s.selected -= gone
        for row in (self._s.cells[start:end + 1] if axis == 0 else [r[start:end + 1] for r in self._s.cells]):
            for item in row:
                if item is not None:
                    item._table = None
        if axis == 0:
            del self._s.cells[start:end + 1]
        else:
            for row in self._s.cells:
                del row[start:end + 1]
            del self._s.headers[start:end + 1]
        if self._s.current != (-1, -1) and self._s.current[axis] > end:
            self._s.current = tuple(v - count if i == axis else v for i, v in enumerate(self._s.current))
        self._s.selected = {tuple(v - count if i == axis and v > end else v for i, v in enumerate(c))
                            for c in self._s.selected}
        if gone:
            self._fake_emit("itemSelectionChanged()")

    # -- items ---------------------------------------------------------------------------------------------
    def setItem(self, row, column, item):
        if not isinstance(item, QTableWidgetItem):
            raise TypeError(f"QTableWidget.setItem: {item!r} is not a QTableWidgetItem")
        if not (0 <= row < len(self._s.cells) and 0 <= column < self._s.columns):
            return   # Qt: an item outside the table is not inserted
        if item._table is not None:
            return   # Qt warns "cannot insert an item that is already owned by another QTableWidget"
        old = self._s.cells[row][column]
        if old is not None:
            old._table = None
        item._table = self
        self._s.cells[row][column] = item

    def item(self, row, column):
        if 0 <= row < len(self._s.cells) and 0 <= column < self._s.columns:
            return self._s.cells[row][column]
        return None

    def takeItem(self, row, column):
        item = self.item(row, column)
        if item is not None:
            item._table = None
            self._s.cells[row][column] = None
        return item

    def setHorizontalHeaderLabels(self, labels):
        labels = convert("QStringList", labels, "QTableWidget", "setHorizontalHeaderLabels")
        self._s.headers = labels[:self._s.columns]   # Qt: labels beyond columnCount are dropped

    def horizontalHeaderItem(self, column):
        if 0 <= column < len(self._s.headers):
            return QTableWidgetItem(self._s.headers[column])
        return None

    # -- current cell and selection --------------------------------------------------------------------------
    def _set_current(self, row, column):
        previous = self._s.current
        if previous != (row, column):
            self._s.current = (row, column)
            self._fake_emit("currentCellChanged(int,int,int,int)", row, column, *previous)

    def _fake_select(self, cells):
        if cells != self._s.selected:
            self._s.selected = cells
            self._fake_emit("itemSelectionChanged()")

    @slot("selectRow(int)")
    def selectRow(self, row):
        if not 0 <= row < len(self._s.cells):
            return
        self._set_current(row, 0)   # the column at the left edge of the header
        self._fake_select({(row, c) for c in range(self._s.columns)})

    def currentRow(self):
        return self._s.current[0]

    def currentColumn(self):
        return self._s.current[1]

    def setCurrentCell(self, row, column):
        if not (0 <= row < len(self._s.cells) and 0 <= column < self._s.columns):
            self._fake_reset_selection()   # no such cell: an invalid index clears selection and current cell
            return
        self._fake_select({(row, c) for c in range(self._s.columns)} if self._fake_selects_rows() else
                          {(row, column)})
        self._set_current(row, column)

    def _fake_press_cell(self, row, column):
        """QAbstractItemView::mousePressEvent: the cell becomes current (NoUpdate), then the selection follows."""
        self._set_current(row, column)
        self._fake_select({(row, c) for c in range(self._s.columns)} if self._fake_selects_rows() else
                          {(row, column)})

    def _fake_reset_selection(self):
        self._fake_select(set())
        self._set_current(-1, -1)

    @slot("clearContents()")
    def clearContents(self):
        self._fake_reset_selection()
        for row in self._s.cells:
            for c, item in enumerate(row):
                if item is not None:
                    item._table = None
                row[c] = None

    @slot("clear()")
    def clear(self):
        self.clearContents()
        self._s.headers = []


# -- CTK ---------------------------------------------------------------------------------------------------------------------
class ctkSliderWidget(QWidget):
    """CTK ctkSliderWidget: a ctkDoubleSlider + ctkDoubleSpinBox.  value() is the slider's value, which is
    clamped to [minimum, maximum] but never rounded to `decimals` (only the spin box's display is), nor are
    minimum and maximum (ctkDoubleSpinBox keeps its InputRange).  valueChanged(double) only when the value
    changes; setDecimals re-emits valueChanged(value) and decimalsChanged(decimals) every time, twice when
    the number changes (the spin box's decimalsChanged calls setDecimals again).  Sources: ctkSliderWidget.cpp
    (ctor connections, value, setValue, setSpinBoxValue, setDecimals), ctkDoubleSpinBox.cpp (setValueAlways,
    setRange, setDecimals, d->setValue), ctkDoubleSlider.cpp (setValue)."""

    PROPERTIES = {"decimals": Prop("int", 2, setter="setDecimals"),
                  "singleStep": Prop("double", 1.0), "pageStep": Prop("double", 10.0),
                  "minimum": Prop("double", 0.0, setter="setMinimum"),
                  "maximum": Prop("double", 99.99, setter="setMaximum"),
                  "value": Prop("double", 0.0, setter="setValue"),
                  "prefix": Prop("QString", ""), "suffix": Prop("QString", ""),
                  "tickInterval": Prop("double", 0.0), "tickPosition": Prop("QVariant", None),
                  "synchronizeSiblings": Prop("QVariant", None), "spinBoxAlignment": Prop("QVariant", None),
                  "tracking": Prop("bool", True), "spinBoxVisible": Prop("bool", True),
                  "popupSlider": Prop("bool", False), "invertedAppearance": Prop("bool", False),
                  "invertedControls": Prop("bool", False)}
    SIGNALS = ("valueChanged(double)", "valueIsChanging(double)", "decimalsChanged(int)")

    def _fake_apply(self, value):
        p = self._s.props
        value = min(max(float(value), p["minimum"]), p["maximum"])
        if value != p["value"]:
            p["value"] = value
            self._fake_emit("valueChanged(double)", value)

    @slot("setValue(double)")
    def setValue(self, value):
        self._fake_apply(convert("double", value, "ctkSliderWidget", "value"))

    @slot("setMinimum(double)")
    def setMinimum(self, minimum):
        p = self._s.props
        p["minimum"] = minimum
        p["maximum"] = max(p["maximum"], minimum)
        self._fake_apply(p["value"])

    @slot("setMaximum(double)")
    def setMaximum(self, maximum):
        p = self._s.props
        p["maximum"] = maximum
        p["minimum"] = min(p["minimum"], maximum)
        self._fake_apply(p["value"])

    def setRange(self, minimum, maximum):
        self.setMinimum(minimum)
        self.setMaximum(maximum)

    @slot("setDecimals(int)")
    def setDecimals(self, decimals):
        decimals = convert("int", decimals, "ctkSliderWidget", "decimals")
        if decimals != self._s.props["decimals"]:
            self._s.props["decimals"] = decimals
            self._fake_emit_decimals_set()   # from the spin box's decimalsChanged -> setDecimals
        self._fake_emit_decimals_set()

    def _fake_emit_decimals_set(self):
        self._fake_emit("valueChanged(double)", self._s.props["value"])
        self._fake_emit("decimalsChanged(int)", self._s.props["decimals"])

    def setSingleStep(self, step):
        self.singleStep = step

    def setPageStep(self, step):
        self.pageStep = step


def _qdir_absolute(path: str) -> str:
    return os.path.normpath(os.path.abspath(path)).replace(os.sep, "/")


def _qdir_same(a: str, b: str) -> bool:
    """QDir::operator==: canonical paths when both exist, else cleaned absolute paths."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.realpath(a) == os.path.realpath(b)
    return _qdir_absolute(a) == _qdir_absolute(b)


class ctkDirectoryButton(QWidget):
    """CTK ctkDirectoryButton: setDirectory emits directorySelected ALWAYS and directoryChanged only
    when the folder differs (ctkDirectoryButton.cpp setDirectory); browse() opens a folder dialog."""

    PROPERTIES = {"directory": Prop("QString", ".", setter="setDirectory"), "caption": Prop("QString", ""),
                  "text": Prop("QString", ""), "icon": Prop("QVariant", None), "acceptMode": Prop("QVariant", None),
                  "options": Prop("QVariant", None), "elideMode": Prop("QVariant", None)}
    SIGNALS = ("directoryChanged(QString)", "directorySelected(QString)")

    @slot("setDirectory(QString)")
    def setDirectory(self, path):
        path = convert("QString", path, "ctkDirectoryButton", "directory")
        absolute = _qdir_absolute(path)
        if _qdir_same(self._s.props["directory"], path):
            self._fake_emit("directorySelected(QString)", absolute)
            return
        self._s.props["directory"] = absolute
        self._fake_emit("directorySelected(QString)", absolute)
        self._fake_emit("directoryChanged(QString)", absolute)

    @slot("browse()")
    def browse(self):
        """The folder dialog (ctkFileDialog, exec): the test session answers it; '' = cancelled."""
        caption = self.caption or self.toolTip
        folder = runtime.session().answer_folder_dialog("ctkFileDialog", caption, self._s.props["directory"])
        if not folder:
            return ""
        self.setDirectory(folder)
        return folder

    def setCaption(self, caption):
        self.caption = caption


class ctkPathLineEdit(QWidget):
    """CTK ctkPathLineEdit: `currentPath` is its inner line edit's text.  That line edit has a
    QRegularExpressionValidator made from nameFilters; without nameFilters the pattern is `.+`, so an empty
    path is not acceptable (Intermediate).  Each textChanged of the line edit (setCurrentPath, the user's
    typing; the same text again changes nothing) runs updateHasValidInput: currentPathChanged(path) when the
    input is acceptable, validInputChanged(bool) when the validity changes (it starts false).  So clearing
    the field emits validInputChanged(false) and never currentPathChanged("").  blockSignals on the
    ctkPathLineEdit does not block its line edit: the validity is still tracked.  Sources (CTK at Slicer
    5.10's dd4caeae and 5.12's 5056664a): ctkPathLineEdit.cpp ctkPathLineEditPrivate ctor (HasValidInput
    false), createPathLineEditWidget (validator, textChanged connections), updateFilter, setCurrentPath,
    updateHasValidInput; ctkUtils.cpp nameFiltersToRegExpPattern (".+").  Not faked: nameFilters (setting
    some raises), browse() (a file dialog), history, completer."""

    PROPERTIES = {"currentPath": Prop("QString", "", getter="_currentPath", setter="setCurrentPath"),
                  "label": Prop("QString", ""), "filters": Prop("QVariant", None), "options": Prop("QVariant", None),
                  "settingKey": Prop("QString", ""), "showBrowseButton": Prop("bool", True),
                  "showHistoryButton": Prop("bool", True), "sizeAdjustPolicy": Prop("QVariant", None),
                  "minimumContentsLength": Prop("int", 0),
                  "nameFilters": Prop("QStringList", [], setter="setNameFilters")}
    SIGNALS = ("currentPathChanged(QString)", "validInputChanged(bool)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.text = ""
        self._s.has_valid_input = False

    def _currentPath(self):
        return self._s.text

    @slot("setCurrentPath(QString)")
    def setCurrentPath(self, path):
        self._fake_line_edit_set_text(convert("QString", path, "ctkPathLineEdit", "currentPath"))

    def setNameFilters(self, filters):
        if convert("QStringList", filters, "ctkPathLineEdit", "nameFilters"):
            raise NotImplementedError("the fake ctkPathLineEdit validates only without nameFilters (pattern '.+'); "
                                      "model ctk::nameFiltersToRegularExpression before using them")
        self._s.props["nameFilters"] = []

    def _fake_line_edit_set_text(self, text):
        """The inner QLineEdit's text changes (programmatically or by the user's keystrokes)."""
        if text == self._s.text:
            return   # QLineEdit: no textChanged for the same text
        self._s.text = text
        self._fake_update_has_valid_input()

    def _fake_update_has_valid_input(self):
        was_valid = self._s.has_valid_input
        self._s.has_valid_input = bool(self._s.text)   # `.+`: acceptable iff not empty
        if self._s.has_valid_input:
            self._fake_emit("currentPathChanged(QString)", self._s.text)
        if self._s.has_valid_input != was_valid:
            self._fake_emit("validInputChanged(bool)", self._s.has_valid_input)


# -- MRML widgets ---------------------------------------------------------------------------------------------------------------
def _slicer_version():
    """The Slicer version the test session plays ("5.10" or "5.12")."""
    return runtime.current.version if runtime.current is not None else None


def _check_scene(value, owner):
    if value is not None and not isinstance(value, slicer.vtkMRMLScene):
        raise TypeError(f"{owner}.setMRMLScene: {value!r} is not a vtkMRMLScene")


def _check_node(value, owner, cls=None):
    cls = cls or slicer.vtkMRMLNode
    if value is not None and not isinstance(value, cls):
        raise TypeError(f"{owner}: {value!r} is not a {cls.__name__}")


class qMRMLWidget(QWidget):
    """Libs/MRML/Widgets/qMRMLWidget: setMRMLScene emits mrmlSceneChanged(vtkMRMLScene*) when the scene changes."""

    SIGNALS = ("mrmlSceneChanged(vtkMRMLScene*)",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.scene = None

    def mrmlScene(self):
        return self._s.scene

    @slot("setMRMLScene(vtkMRMLScene*)")
    def setMRMLScene(self, scene):
        _check_scene(scene, type(self).__name__)
        if scene is self._s.scene:
            return
        self._s.scene = scene
        self._fake_emit("mrmlSceneChanged(vtkMRMLScene*)", scene)


class qMRMLTableView(QTableView):
    PROPERTIES = {"transposed": Prop("bool", False), "firstRowLocked": Prop("bool", False),
                  "firstColumnLocked": Prop("bool", False)}

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.scene = None
        self._s.table = None

    def mrmlScene(self):
        return self._s.scene

    @slot("setMRMLScene(vtkMRMLScene*)")
    def setMRMLScene(self, scene):
        _check_scene(scene, "qMRMLTableView")
        self._s.scene = scene

    @slot("setMRMLTableNode(vtkMRMLNode*)")
    def setMRMLTableNode(self, node):
        """Overloads (vtkMRMLTableNode*) and (vtkMRMLNode*): another node class becomes no table (SafeDownCast)."""
        _check_node(node, "qMRMLTableView.setMRMLTableNode")
        self._s.table = node if node is not None and node.IsA("vtkMRMLTableNode") else None

    def mrmlTableNode(self):
        return self._s.table


class qMRMLNodeComboBox(QWidget):
    """Libs/MRML/Widgets/qMRMLNodeComboBox (Slicer 5.10-5.12).

    Items: [None item if noneEnabled] + scene nodes of `nodeTypes` (exact class unless showChildNodeTypes;
    HideFromEditors nodes only with showHidden) + action items (add/remove/edit/rename).  Modelled:
    disabled until a scene is set; setCurrentNode of a node that is not an item (other class, other
    scene) leaves no current node; currentNodeChanged(vtkMRMLNode*), (bool) and currentNodeIDChanged when
    the current node (or its name) changes; the first node added to an empty combo box without none or
    action items becomes current (QComboBox rowsInserted); removing the current node selects a neighbour;
    while the scene closes/imports the list is rebuilt at EndClose/EndImport (qMRMLSceneModel).
    """

    PROPERTIES = {
        "currentNodeID": Prop("QString", "", getter="_currentNodeID", setter="setCurrentNodeID"),
        "nodeTypes": Prop("QStringList", [], setter="setNodeTypes"),
        "showHidden": Prop("bool", False, setter="_setFilterProp_showHidden"),
        "showChildNodeTypes": Prop("bool", True, setter="_setFilterProp_showChildNodeTypes"),
        "hideChildNodeTypes": Prop("QStringList", [], setter="_setFilterProp_hideChildNodeTypes"),
        "baseName": Prop("QString", ""), "noneEnabled": Prop("bool", False, setter="setNoneEnabled"),
        "addEnabled": Prop("bool", True), "removeEnabled": Prop("bool", True), "editEnabled": Prop("bool", False),
        "renameEnabled": Prop("bool", False), "interactionNodeSingletonTag": Prop("QString", "Singleton"),
        "selectNodeUponCreation": Prop("bool", True), "noneDisplay": Prop("QString", "None"),
        "sizeAdjustPolicy": Prop("QVariant", None),
    }
    SIGNALS = ("currentNodeChanged(vtkMRMLNode*)", "currentNodeIDChanged(QString)", "nodeActivated(vtkMRMLNode*)",
               "currentNodeChanged(bool)", "nodeAdded(vtkMRMLNode*)", "nodeAddedByUser(vtkMRMLNode*)",
               "nodeAddedByUserAction(vtkMRMLNode*)", "nodeAboutToBeRemoved(vtkMRMLNode*)",
               "currentNodeRenamed(QString)", "nodeAboutToBeEdited(vtkMRMLNode*)")

    def _fake_signals(self):
        """nodeAddedByUserAction is new in 5.12 (qMRMLNodeComboBox.h diff v5.10.0..v5.12.0)."""
        if _slicer_version() == "5.10":
            return tuple(s for s in super()._fake_signals() if s != "nodeAddedByUserAction(vtkMRMLNode*)")
        return super()._fake_signals()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.scene = None
        self._s.current = None
        self._s.current_name = None
        self._s.requested = None
        self._s.observers = []
        self._s.node_observer = None
        self._s.pending_after_removal = "none"
        self._s.own_enabled = False   # qMRMLNodeComboBoxPrivate::init: setEnabled(mrmlScene() != nullptr)

    # -- items -------------------------------------------------------------------------------------------
    def _accepts(self, node):
        if node is None or self._s.scene is None or node.GetScene() is not self._s.scene:
            return False
        types = [t for t in self._s.props["nodeTypes"] if t]
        if types:
            if node.GetClassName() not in types:
                if not self._s.props["showChildNodeTypes"] or not any(node.IsA(t) for t in types):
                    return False
                if any(node.IsA(h) for h in self._s.props["hideChildNodeTypes"]):
                    return False
        if node.GetHideFromEditors() and not self._s.props["showHidden"]:
            return False
        return True

    def _nodes(self):
        scene = self._s.scene
        if scene is None:
            return []
        nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        return [n for n in nodes if self._accepts(n)]

    def _has_action_items(self):
        p = self._s.props
        return p["addEnabled"] or p["removeEnabled"] or p["editEnabled"] or p["renameEnabled"]

    def _auto_selects(self):
        """QComboBox makes the first inserted row current only when the list was empty (no None/actions)."""
        return not self._s.props["noneEnabled"] and not self._has_action_items()

    def nodeCount(self):
        return len(self._nodes())

    def nodeFromIndex(self, index):
        nodes = self._nodes()
        return nodes[index] if 0 <= index < len(nodes) else None

    # -- current node ------------------------------------------------------------------------------------
    def currentNode(self):
        node = self._s.current
        return node if self._accepts(node) else None

    def _currentNodeID(self):
        node = self.currentNode()
        return node.GetID() if node is not None else ""

    def _set_current(self, node):
        if node is self._s.current:
            return
        self._s.current = node
        self._observe_current_name(node)
        self._fake_emit("currentNodeChanged(vtkMRMLNode*)", node)
        self._fake_emit("currentNodeChanged(bool)", node is not None)
        self._fake_emit("currentNodeIDChanged(QString)", node.GetID() if node is not None else "")

    def _observe_current_name(self, node):
        if self._s.node_observer is not None:
            old, tag = self._s.node_observer
            old.RemoveObserver(tag)
            self._s.node_observer = None
        self._s.current_name = node.GetName() if node is not None else None
        if node is not None:
            tag = runtime.add_vtk_observer(node, vtk.vtkCommand.ModifiedEvent, self._on_current_modified)
            self._s.node_observer = (node, tag)

    def _on_current_modified(self, caller, event):
        name = caller.GetName()
        if caller is self._s.current and name != self._s.current_name:
            self._s.current_name = name
            # The item text changed: the inner QComboBox emits currentTextChanged (its _q_dataChanged), not
            # currentIndexChanged.  5.12 connects currentTextChanged to emitCurrentNodeChanged, 5.10 connected
            # currentIndexChanged(QString) (qMRMLNodeComboBox.cxx setComboBox).
            if _slicer_version() == "5.10":
                return
            self._fake_emit("currentNodeChanged(vtkMRMLNode*)", caller)
            self._fake_emit("currentNodeChanged(bool)", True)
            self._fake_emit("currentNodeIDChanged(QString)", caller.GetID())

    @slot("setCurrentNode(vtkMRMLNode*)")
    def setCurrentNode(self, node):
        if isinstance(node, str):   # deprecated overload setCurrentNode(const QString& id)
            self.setCurrentNodeID(node)
            return
        _check_node(node, "qMRMLNodeComboBox.setCurrentNode")
        if self._s.scene is None:
            self._s.requested = node
            return
        self._set_current(node if self._accepts(node) else None)

    @slot("setCurrentNodeID(QString)")
    def setCurrentNodeID(self, node_id):
        node_id = convert("QString", node_id, "qMRMLNodeComboBox", "currentNodeID")
        if self._s.scene is None:
            self._s.requested = node_id
            return
        node = self._s.scene.GetNodeByID(node_id) if node_id else None
        self._set_current(node if self._accepts(node) else None)

    def setCurrentNodeIndex(self, index):
        self._set_current(self.nodeFromIndex(index))

    # -- filters --------------------------------------------------------------------------------------------
    def setNodeTypes(self, types):
        self._s.props["nodeTypes"] = [t for t in convert("QStringList", types, "qMRMLNodeComboBox", "nodeTypes")
                                      if t]
        self._fake_refresh()

    def _setFilterProp(self, name, value):
        self._s.props[name] = value
        self._fake_refresh()

    def _setFilterProp_showHidden(self, value):
        self._setFilterProp("showHidden", value)

    def _setFilterProp_showChildNodeTypes(self, value):
        self._setFilterProp("showChildNodeTypes", value)

    def _setFilterProp_hideChildNodeTypes(self, value):
        self._setFilterProp("hideChildNodeTypes", value)

    def setNoneEnabled(self, enabled):
        self._s.props["noneEnabled"] = enabled
        self._fake_refresh()

    def _fake_refresh(self):
        """The list changed as a whole (filter or model reset): a current node that is no item any more
        goes; an empty current with auto-selection takes the first node."""
        if self._s.scene is None:
            return
        if self._s.current is not None and not self._accepts(self._s.current):
            self._set_current(None)
        if self._s.current is None and self._auto_selects():
            nodes = self._nodes()
            if nodes:
                self._set_current(nodes[0])

    # -- scene ------------------------------------------------------------------------------------------------
    def mrmlScene(self):
        return self._s.scene

    @slot("setMRMLScene(vtkMRMLScene*)")
    def setMRMLScene(self, scene):
        _check_scene(scene, "qMRMLNodeComboBox")
        if scene is self._s.scene:
            return
        old_current = self._currentNodeID()
        had_nodes = self.nodeCount() > 0
        for obj, tag in self._s.observers:
            obj.RemoveObserver(tag)
        self._s.observers = []
        self._s.scene = scene
        if scene is not None:
            self._observe_scene(scene)
        requested, self._s.requested = self._s.requested, None
        if had_nodes:
            self.setCurrentNodeID(old_current)
        elif isinstance(requested, str):
            self.setCurrentNodeID(requested)
        else:
            self._set_current(requested if self._accepts(requested) else None)
        self.setEnabled(scene is not None)

    def _observe_scene(self, scene):
        S = slicer.vtkMRMLScene

        @vtk.calldata_type(vtk.VTK_OBJECT)
        def added(caller, event, node=None):
            if caller.IsImporting() or not self._accepts(node):
                return
            self._fake_emit("nodeAdded(vtkMRMLNode*)", node)
            if self._s.current is None and self._auto_selects() and self._nodes() == [node]:
                self._set_current(node)

        @vtk.calldata_type(vtk.VTK_OBJECT)
        def about_to_be_removed(caller, event, node=None):
            if caller.IsClosing() or node is None or not self._accepts(node):
                return
            self._fake_emit("nodeAboutToBeRemoved(vtkMRMLNode*)", node)
            if node is not self._s.current:
                return
            nodes = self._nodes()
            old_row = nodes.index(node)
            rest = [n for n in nodes if n is not node]
            none_item = [None] if self._s.props["noneEnabled"] else []
            items = none_item + rest + (["action"] if self._has_action_items() else [])
            if not items:
                self._set_current(None)
                return
            pick = items[min(len(items) - 1, old_row + len(none_item))]
            if pick == "action":
                pick = rest[-1] if rest else None
            self._s.pending_after_removal = pick

        @vtk.calldata_type(vtk.VTK_OBJECT)
        def removed(caller, event, node=None):
            if caller.IsClosing():
                return
            pick = getattr(self._s, "pending_after_removal", "none")
            if pick != "none":
                self._s.pending_after_removal = "none"
                self._set_current(pick)

        def rebuilt(caller, event):
            self._fake_refresh()

        for event, callback, priority in ((S.NodeAddedEvent, added, 10.0),
                                          (S.NodeAboutToBeRemovedEvent, about_to_be_removed, -10.0),
                                          (S.NodeRemovedEvent, removed, 10.0),
                                          (S.EndCloseEvent, rebuilt, 0.0), (S.EndImportEvent, rebuilt, 0.0)):
            self._s.observers.append((scene, runtime.add_vtk_observer(scene, event, callback, priority)))


# -- the module panel (qSlicerScriptedLoadableModuleWidget) and the module (qSlicerScriptedLoadableModule) ------
class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """The C++ panel that hosts a scripted module widget: it has a QVBoxLayout and isEntered."""

    PROPERTIES = {"isEntered": Prop("bool", False, getter="_isEntered", readonly=True)}

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.entered = False
        QVBoxLayout(self)

    def _isEntered(self):
        return self._s.entered


class QIcon:
    __slots__ = ("_path",)

    def __init__(self, path=""):
        self._path = str(path) if path else ""

    def isNull(self):
        return not self._path


class qSlicerScriptedLoadableModule(QObject):
    """What ScriptedLoadableModule.__init__(parent) gets: the C++ module object."""

    PROPERTIES = {"title": Prop("QString", ""), "categories": Prop("QStringList", []),
                  "dependencies": Prop("QStringList", []), "contributors": Prop("QStringList", []),
                  "helpText": Prop("QString", ""), "acknowledgementText": Prop("QString", ""),
                  "icon": Prop("QVariant", None), "hidden": Prop("bool", False),
                  "index": Prop("int", -1), "associatedNodeTypes": Prop("QStringList", []),
                  "path": Prop("QString", "", getter="_path", readonly=True),
                  "isInstalled": Prop("bool", False, readonly=True)}

    def __init__(self, path):
        super().__init__(None)
        self._s.path = str(path)
        self._s.logic = None
        self._s.widget = None

    def _path(self):
        return self._s.path

    def logic(self):
        return self._s.logic

    def widgetRepresentation(self):
        return self._s.widget

    def createNewWidgetRepresentation(self):
        return self._s.widget


WIDGET_CLASSES = {cls.__name__: cls for cls in (
    QWidget, QFrame, QLabel, QPushButton, QToolButton, QCheckBox, QComboBox, QPlainTextEdit, QLineEdit, QProgressBar,
    QTableWidget, QTableView, ctkCollapsibleButton, ctkSliderWidget, ctkDirectoryButton, ctkPathLineEdit, qMRMLWidget,
    qMRMLNodeComboBox, qMRMLTableView)}
LAYOUT_CLASSES = {cls.__name__: cls for cls in (QVBoxLayout, QHBoxLayout, QGridLayout, QFormLayout)}
