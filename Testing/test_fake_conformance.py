"""The fakes of plain Qt classes behave like real Qt 5.15 widgets (PyQt5, offscreen).

Each scenario drives a fake (as the panel sees it through PythonQt) and the real widget through the same
steps - set a value, the same value again, clear, insert before the current item, disable and click, range
changes - and the signals emitted (order and arguments) and the state after every step must be equal.  A
fake rule that real Qt contradicts fails here, before a panel test can rely on it.  CTK and MRML widgets
have no PyQt5 class: their rules stay cited to source lines in Testing/slicer_api_facts.md (the Qt part of
ctkPathLineEdit's validation is checked at the end).
"""

from __future__ import annotations

import importlib

import pytest
import qt_backends
import real_qt
from qt_backends import Call, Events, FakeBackend, Item, New, RealBackend, Ref, Scenario, Set
from real_qt import QtCore, QtGui, QtTest, QtWidgets
from slicer_fakes.fixtures import *  # noqa: F401,F403  (slicer_session)

USER_ROLE, DISPLAY_ROLE = 256, 0
BUTTON_SIGNALS = ["pressed()", "released()", "toggled(bool)", "clicked(bool)"]
BUTTON_PROBES = ["text", "checkable", "checked", "enabled"]
COMBO_SIGNALS = ["currentIndexChanged(int)", "currentIndexChanged(QString)", "currentTextChanged(QString)",
                 "activated(int)"]
COMBO_PROBES = ["count", "currentIndex", "currentText", "currentData", ("itemText", 0), ("itemData", 0)]


def _button_steps(name):
    return [Set(name, "text", "Stage"), Call(name, "click"), Call(name, "setChecked", (True,)),
            Set(name, "checkable", True), Call(name, "click"), Set(name, "checked", True),
            Call(name, "click"), Call(name, "setEnabled", (False,)), Call(name, "click"),
            Call(name, "setEnabled", (True,)), Call(name, "toggle"), Set(name, "checkable", False),
            Call(name, "click")]


SCENARIOS = [
    Scenario(
        "QPushButton: click, checkable, same value, disabled click",
        {"button": New("QPushButton")}, _button_steps("button"),
        {"button": BUTTON_SIGNALS}, {"button": BUTTON_PROBES}),
    Scenario(
        "QToolButton: click, checkable, same value, disabled click",
        {"button": New("QToolButton")}, _button_steps("button"),
        {"button": BUTTON_SIGNALS}, {"button": BUTTON_PROBES}),
    Scenario(
        "QCheckBox: set, same value, click, blocked signals, disabled click",
        {"box": New("QCheckBox")},
        [Set("box", "checked", True), Set("box", "checked", True), Call("box", "click"),
         Call("box", "blockSignals", (True,)), Set("box", "checked", True), Call("box", "blockSignals", (False,)),
         Call("box", "setCheckState", (0,)), Call("box", "setEnabled", (False,)), Call("box", "click"),
         Call("box", "setEnabled", (True,)), Call("box", "click")],
        {"box": ["stateChanged(int)"] + BUTTON_SIGNALS}, {"box": ["checked", ("checkState",)]}),
    Scenario(
        "QComboBox: first item, set index, same index, out of range, clear",
        {"combo": New("QComboBox")},
        [Call("combo", "addItem", ("a", "A")), Call("combo", "addItem", ("b", "B")), Set("combo", "currentIndex", 1),
         Set("combo", "currentIndex", 1), Set("combo", "currentIndex", 7), Call("combo", "setCurrentIndex", (0,)),
         Call("combo", "setCurrentText", ("b",)), Call("combo", "setCurrentText", ("missing",)),
         Call("combo", "setEnabled", (False,)), Set("combo", "currentIndex", 0), Call("combo", "clear"),
         Call("combo", "clear")],
        {"combo": COMBO_SIGNALS}, {"combo": COMBO_PROBES + [("findData", "B"), ("findText", "b")]}),
    Scenario(
        "QComboBox: insert and remove before the current item, remove the current item",
        {"combo": New("QComboBox")},
        [Call("combo", "addItem", ("a", "A")), Call("combo", "addItem", ("b", "B")), Set("combo", "currentIndex", 1),
         Call("combo", "insertItem", (0, "z", "Z")), Call("combo", "insertItem", (3, "after")),
         Call("combo", "removeItem", (0,)), Call("combo", "removeItem", (1,)), Call("combo", "removeItem", (1,)),
         Call("combo", "removeItem", (0,)), Call("combo", "removeItem", (0,))],
        {"combo": COMBO_SIGNALS}, {"combo": COMBO_PROBES}),
    Scenario(
        "QComboBox: same text at another index, text and data changes of the current item",
        {"combo": New("QComboBox")},
        [Call("combo", "addItem", ("same", 1)), Call("combo", "addItem", ("same", 2)),
         Set("combo", "currentIndex", 1), Call("combo", "setItemText", (1, "same")),
         Call("combo", "setItemText", (1, "renamed")), Call("combo", "setItemText", (0, "other")),
         Call("combo", "setItemData", (1, 3, USER_ROLE)), Call("combo", "setItemData", (1, 3, USER_ROLE)),
         Call("combo", "setItemData", (1, "shown", DISPLAY_ROLE)), Set("combo", "currentIndex", -1),
         Call("combo", "insertItem", (0, "first"))],
        {"combo": COMBO_SIGNALS}, {"combo": COMBO_PROBES + [("itemText", 1), ("itemData", 1)]}),
    Scenario(
        "QLineEdit: set, same text, clear, maximum length, read-only and disabled",
        {"edit": New("QLineEdit")},
        [Set("edit", "text", "http://a"), Set("edit", "text", "http://a"), Call("edit", "clear"),
         Call("edit", "clear"), Set("edit", "maxLength", 3), Call("edit", "setText", ("abcdef",)),
         Call("edit", "setText", ("abcdef",)), Set("edit", "readOnly", True), Call("edit", "setText", ("xy",)),
         Call("edit", "setEnabled", (False,)), Set("edit", "text", "")],
        {"edit": ["textChanged(QString)", "textEdited(QString)", "editingFinished()"]},
        {"edit": ["text", "maxLength", "readOnly", "acceptableInput", "enabled"]}),
    Scenario(
        "QPlainTextEdit: set, same text, append, clear, clear again",
        {"notes": New("QPlainTextEdit")},
        [Call("notes", "setPlainText", ("note",)), Call("notes", "setPlainText", ("note",)),
         Call("notes", "appendPlainText", ("more",)), Call("notes", "clear"), Call("notes", "clear"),
         Set("notes", "plainText", "x"), Set("notes", "readOnly", True), Call("notes", "setPlainText", ("y",))],
        {"notes": ["textChanged()"]}, {"notes": ["plainText", "readOnly", ("toPlainText",)]}),
    Scenario(
        "QLabel: text, same text, clear, word wrap",
        {"label": New("QLabel")},
        [Set("label", "text", "Select a BTI volume."), Call("label", "setText", ("Select a BTI volume.",)),
         Call("label", "clear"), Set("label", "wordWrap", True)],
        {}, {"label": ["text", "wordWrap"]}),
    Scenario(
        "QProgressBar: out of range, range changes, busy range, reset",
        {"bar": New("QProgressBar")},
        [Set("bar", "value", 150), Set("bar", "value", 50), Set("bar", "value", 50), Call("bar", "setRange", (0, 10)),
         Set("bar", "value", 10), Set("bar", "maximum", 5), Set("bar", "minimum", 3), Set("bar", "value", 4),
         Call("bar", "setRange", (0, 0)), Set("bar", "value", 77), Call("bar", "reset"), Call("bar", "hide")],
        {"bar": ["valueChanged(int)"]}, {"bar": ["value", "minimum", "maximum"]}),
    Scenario(
        "QWidget: enabled and visible follow the ancestors",
        {"panel": New("QWidget"), "section": New("QWidget", "panel"), "button": New("QPushButton", "section")},
        [Call("panel", "show"), Call("section", "setEnabled", (False,)), Call("button", "setEnabled", (True,)),
         Call("section", "setEnabled", (True,)), Call("button", "hide"), Call("section", "hide"),
         Call("button", "show"), Call("section", "setVisible", (True,)), Call("panel", "hide"),
         Set("button", "toolTip", "Stage every ROI"), Set("section", "enabled", False)],
        {}, {"panel": ["enabled", "visible", ("isHidden",)], "section": ["enabled", "visible", ("isHidden",)],
             "button": ["enabled", "visible", ("isHidden",), "toolTip"]}),
    Scenario(
        "QTableWidget: rows, items, insert before the current row, selection, clearing",
        {"table": New("QTableWidget"), "spare": New("QTableWidget")},
        [Call("table", "setRowCount", (0,)), Call("table", "setColumnCount", (2,)),
         Call("table", "setHorizontalHeaderLabels", (["Study", "Status", "extra"],)),
         Call("table", "insertRow", (0,)), Call("table", "insertRow", (1,)),
         Call("table", "setItem", (0, 0, Item("first"))), Call("table", "setItem", (1, 0, Item("second"))),
         Call("table", "setItem", (5, 0, Item("outside"))), Call("table", "selectRow", (1,)),
         Call("table", "selectRow", (1,)), Call("table", "insertRow", (0,)), Call("table", "removeRow", (0,)),
         Call("table", "setItem", (1, 1, Item("staged"))), Call("table", "setCurrentCell", (0, 1)),
         Call("table", "selectRow", (1,)), Call("table", "insertRow", (2,)), Call("table", "selectRow", (2,)),
         Call("table", "removeRow", (2,)), Call("table", "selectRow", (0,)), Call("table", "removeRow", (0,)),
         Call("table", "setRowCount", (3,)), Call("table", "selectRow", (2,)), Call("table", "setRowCount", (1,)),
         Call("table", "selectRow", (0,)), Call("table", "clearContents"), Call("table", "selectRow", (0,)),
         Call("table", "setRowCount", (0,)), Call("table", "setRowCount", (0,))],
        {"table": ["currentCellChanged(int,int,int,int)", "itemSelectionChanged()", "cellClicked(int,int)"]},
        {"table": ["rowCount", "columnCount", ("currentRow",), ("currentColumn",), qt_backends.SELECTED_ROWS,
                   ("item", 0, 0), ("item", 1, 0), ("item", 1, 1), ("item", 5, 0), ("horizontalHeaderItem", 1),
                   ("horizontalHeaderItem", 2)]}),
    Scenario(
        "QTableWidget: the worklist's refill with whole-row selection, current cell, fewer columns",
        {"table": New("QTableWidget")},
        [Set("table", "selectionBehavior", 1), Call("table", "setColumnCount", (2,)),
         Call("table", "insertRow", (0,)), Call("table", "insertRow", (1,)), Call("table", "insertRow", (2,)),
         Call("table", "setItem", (1, 1, Item("new"))), Call("table", "selectRow", (1,)),
         Call("table", "setItem", (1, 1, Item("staged"))), Call("table", "setCurrentCell", (2, 1)),
         Call("table", "setCurrentCell", (2, 1)), Call("table", "setColumnCount", (1,)),
         Call("table", "setCurrentCell", (7, 0)), Call("table", "setRowCount", (0,)), Call("table", "setColumnCount", (2,)),
         Call("table", "insertRow", (0,)), Call("table", "selectRow", (0,)), Call("table", "clear")],
        {"table": ["currentCellChanged(int,int,int,int)", "itemSelectionChanged()"]},
        {"table": ["rowCount", "columnCount", ("currentRow",), ("currentColumn",), qt_backends.SELECTED_ROWS,
                   ("item", 1, 1)]}),
    Scenario(
        "QTableWidgetItem: text, data, tool tip, flags, owner",
        {"item": New("QTableWidgetItem", args=("study-1",)), "table": New("QTableWidget")},
        [Call("item", "setText", ("study-2",)), Call("item", "setData", (USER_ROLE, "case-7")),
         Call("item", "setToolTip", ("done",)), Call("table", "setRowCount", (1,)),
         Call("table", "setColumnCount", (1,)), Call("table", "setItem", (0, 0, Ref("item")))],
        {}, {"item": [("text",), ("data", USER_ROLE), ("data", DISPLAY_ROLE), ("toolTip",), ("flags",),
                      ("tableWidget",)]}),
    Scenario(
        "QTimer: due timers fire from the event loop, single shot stops, stop",
        {"timer": New("QTimer")},
        [Call("timer", "setInterval", (0,)), Call("timer", "start"), Events(), Events(),
         Call("timer", "setSingleShot", (True,)), Call("timer", "start"), Events(), Events(),
         Call("timer", "start", (60000,)), Events(), Call("timer", "stop"), Events()],
        {"timer": ["timeout()"]}, {"timer": ["interval", "active", "singleShot"]}),
    Scenario(
        "QProgressDialog: shown by the event loop, auto reset at the maximum, cancel()",
        {"dialog": New("QProgressDialog")},
        [Set("dialog", "minimumDuration", 0), Set("dialog", "maximum", 10), Set("dialog", "value", 0),
         Set("dialog", "value", 0), Events(), Set("dialog", "value", 4), Set("dialog", "labelText", "Staging"),
         Set("dialog", "value", 10), Set("dialog", "value", 3), Call("dialog", "cancel")],
        {"dialog": ["canceled()"]},
        {"dialog": ["value", "minimum", "maximum", "wasCanceled", "visible", "labelText", "autoReset"]}),
    Scenario(
        "QSettings: value, default, contains, remove with sub-keys",
        {"settings": New("QSettings")},
        [Call("settings", "setValue", ("DVTStaging/ServerURL", "http://a")),
         Call("settings", "setValue", ("DVTStaging/Compute/On", "server")),
         Call("settings", "setValue", ("Other", "kept")), Call("settings", "remove", ("DVTStaging",)),
         Call("settings", "setValue", ("DVTStaging/ServerURL", ""))],
        {}, {"settings": [("value", "DVTStaging/ServerURL"), ("value", "DVTStaging/ServerURL", "default"),
                          ("value", "DVTStaging/Compute/On"), ("value", "missing"), ("value", "missing", "d"),
                          ("contains", "DVTStaging/Compute/On"), ("contains", "Other")]}),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fake_behaves_like_real_qt(scenario, slicer_session, tmp_path):
    real = qt_backends.run(scenario, RealBackend(tmp_path / "settings.ini"))
    fake = qt_backends.run(scenario, FakeBackend(slicer_session))
    for (step, real_signals, real_state), (_, fake_signals, fake_state) in zip(real, fake):
        assert fake_signals == real_signals, f"after {step}: signals\n fake: {fake_signals}\n real: {real_signals}"
        assert fake_state == real_state, f"after {step}: state\n fake: {fake_state}\n real: {real_state}"


def test_every_faked_plain_qt_widget_class_has_a_scenario():
    """A new fake widget class needs its conformance scenario (CTK/MRML classes: slicer_api_facts.md)."""
    from slicer_fakes.widgets import WIDGET_CLASSES
    plain_qt = {name for name in WIDGET_CLASSES if name.startswith("Q")}
    covered = {spec.cls for s in SCENARIOS for spec in s.objects.values()}
    abstract_or_bare = {"QFrame", "QTableView"}   # no behaviour of their own in the fakes beyond QWidget's
    assert plain_qt - abstract_or_bare <= covered, sorted(plain_qt - abstract_or_bare - covered)


def test_path_line_edit_rule_rests_on_real_qt_validation(slicer_session):
    """ctkPathLineEdit (CTK, no PyQt5 class) edits its path in an editable QComboBox's line edit with a
    QRegularExpressionValidator; without nameFilters the pattern is `.+` (ctkUtils.cpp) and each textChanged
    runs updateHasValidInput (currentPathChanged when acceptable, validInputChanged on a change of validity;
    slicer_api_facts.md).  The Qt half is real here: which texts are acceptable, that clearing is allowed and
    still emits textChanged, that the same text emits nothing.  The fake must emit what that wiring makes of it."""
    real_qt.application()
    combo = QtWidgets.QComboBox()
    combo.setEditable(True)
    combo.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
    line_edit = combo.lineEdit()
    validator = QtGui.QRegularExpressionValidator(QtCore.QRegularExpression(".+"), combo)
    line_edit.setValidator(validator)
    assert validator.validate("", 0)[0] == QtGui.QValidator.Intermediate    # not acceptable, not rejected

    expected, valid = [], [False]                        # ctkPathLineEditPrivate: HasValidInput(false)

    def update_has_valid_input(text):
        acceptable = line_edit.hasAcceptableInput()
        if acceptable:
            expected.append(("path", text))
        if acceptable != valid[0]:
            valid[0] = acceptable
            expected.append(("valid", acceptable))
    line_edit.textChanged.connect(update_has_valid_input)

    fake = importlib.import_module("ctk").ctkPathLineEdit()
    fake.show()
    seen = []
    fake.connect("currentPathChanged(QString)", lambda p: seen.append(("path", p)))
    fake.connect("validInputChanged(bool)", lambda v: seen.append(("valid", v)))
    for path in ["/t/token", "/t/token", "", "", "/t/other"]:
        line_edit.setText(path)                           # ctkPathLineEdit::setCurrentPath
        fake.currentPath = path
    QtTest.QTest.keyClick(line_edit, QtCore.Qt.Key_A, QtCore.Qt.ControlModifier)   # the user: select all, delete
    QtTest.QTest.keyClick(line_edit, QtCore.Qt.Key_Backspace)
    slicer_session.user.type_text(fake, "")
    assert line_edit.text() == "" and fake.currentPath == ""
    assert seen == expected == [("path", "/t/token"), ("valid", True), ("valid", False), ("path", "/t/other"),
                                ("valid", True), ("valid", False)]


def test_user_double_click_on_a_cell_is_what_a_real_mouse_does(slicer_session):
    """The User fake's double-click (the worklist opens a study on cellDoubleClicked) against QTest mouse events
    on a real, shown QTableWidget set up like the .ui's worklist (whole rows, no editing)."""
    signals = [f"{kind}{name}" for name in ("Pressed", "Clicked", "DoubleClicked", "Activated")
               for kind in ("item", "cell")] + ["currentCellChanged", "itemSelectionChanged"]

    def fill(table, item):
        table.setColumnCount(2)
        table.setRowCount(3)
        for row in range(3):
            table.setItem(row, 0, item(f"case-{row}"))
        table.selectRow(0)                                # the panel selects the open study

    def record(table, log):
        for name in signals:
            getattr(table, name).connect(lambda *args, _n=name: log.append(
                (_n, [a.text() if hasattr(a, "text") else a for a in args])))

    app = real_qt.application()
    real = QtWidgets.QTableWidget()
    real.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
    real.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
    fill(real, QtWidgets.QTableWidgetItem)
    real.resize(300, 200)
    real.show()
    app.processEvents()
    real_log, fake_log = [], []
    record(real, real_log)
    viewport, left, none = real.viewport(), QtCore.Qt.LeftButton, QtCore.Qt.NoModifier
    for row, column in ((1, 0), (2, 1)):                  # a cell with an item, an empty cell
        at = real.visualRect(real.model().index(row, column)).center()
        QtTest.QTest.mouseClick(viewport, left, none, at)
        QtTest.QTest.mouseDClick(viewport, left, none, at)
        QtTest.QTest.mouseRelease(viewport, left, none, at)

    qt = importlib.import_module("qt")
    fake = qt.QTableWidget()
    fake.selectionBehavior = "QAbstractItemView::SelectRows"   # as loadUI sets it from the .ui
    fill(fake, qt.QTableWidgetItem)
    fake.show()
    record(fake, fake_log)
    for row, column in ((1, 0), (2, 1)):
        slicer_session.user.double_click_cell(fake, row, column)
    assert fake_log == real_log and ("cellDoubleClicked", [2, 1]) in real_log
    assert (fake.currentRow(), fake.currentColumn()) == (real.currentRow(), real.currentColumn()) == (2, 1)
