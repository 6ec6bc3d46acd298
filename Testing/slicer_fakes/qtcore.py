"""QTimer, QProgressDialog, QFileDialog, QMessageBox and the Qt namespace, plus the strict `qt` and `ctk` modules.

Timers and dialogs report to the test session (slicer_fakes.runtime): the session's event loop
(`Session.processEvents`, `Session.run_event_loop`) fires due timers and shows progress dialogs whose
minimum duration has passed, the way Qt's event loop does.
"""

from __future__ import annotations

import time

from . import runtime, widgets
from .modules import strict_module
from .qobject import Prop, QObject, _PropDescriptor, convert, slot

Qt = strict_module(
    "qt.Qt", "The Qt namespace (only the enum values the panel and the fakes use).",
    ArrowCursor=0, WaitCursor=3, BusyCursor=16, Unchecked=0, PartiallyChecked=1, Checked=2,
    DisplayRole=0, ToolTipRole=3, UserRole=256, MatchExactly=0, MatchCaseSensitive=16,
    Horizontal=1, Vertical=2, ElideMiddle=2, ToolButtonTextUnderIcon=3)


class _SingleShotDescriptor(_PropDescriptor):
    """QTimer.singleShot: the static singleShot(msec, callable) on the class, the bool property on an instance."""

    def __get__(self, obj, cls=None):
        if obj is None:
            return QTimer._static_single_shot
        return obj._s.props["singleShot"]


class QTimer(QObject):
    PROPERTIES = {"interval": Prop("int", 0, setter="setInterval"),
                  "active": Prop("bool", False, getter="isActive", readonly=True),
                  "timerType": Prop("QVariant", None),
                  "remainingTime": Prop("int", -1, getter="_remainingTime", readonly=True)}
    SIGNALS = ("timeout()",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._s.props["singleShot"] = False
        self._s.active = False
        self._s.due = None
        runtime.session().register_timer(self)

    def setInterval(self, msec):
        self._s.props["interval"] = convert("int", msec, "QTimer", "interval")

    def setSingleShot(self, single):
        self._s.props["singleShot"] = bool(single)

    def isSingleShot(self):
        return self._s.props["singleShot"]

    @slot("start()")
    def start(self, msec=None):
        if msec is not None:
            self.setInterval(msec)
        self._s.active = True
        self._s.due = time.monotonic() + self._s.props["interval"] / 1000.0

    @slot("stop()")
    def stop(self):
        self._s.active = False
        self._s.due = None

    def isActive(self):
        return self._s.active

    def _remainingTime(self):
        if not self._s.active:
            return -1
        return max(0, int((self._s.due - time.monotonic()) * 1000))

    def _fake_fire_if_due(self, now) -> bool:
        if not self._s.active or now < self._s.due:
            return False
        if self._s.props["singleShot"]:
            self._s.active = False
        else:
            self._s.due = now + self._s.props["interval"] / 1000.0
        self._fake_emit("timeout()")
        return True

    @staticmethod
    def _static_single_shot(msec, callback):
        timer = QTimer()
        timer._s.props["singleShot"] = True
        timer.connect("timeout()", callback)
        timer.start(msec)


QTimer.singleShot = _SingleShotDescriptor("singleShot", Prop("bool", False))
QTimer._all_props = dict(QTimer._all_props, singleShot=Prop("bool", False))


class QDialog(widgets.QWidget):
    PROPERTIES = {"modal": Prop("bool", False), "sizeGripEnabled": Prop("bool", False),
                  "windowModality": Prop("QVariant", None)}
    SIGNALS = ("finished(int)", "accepted()", "rejected()")


class QProgressDialog(QDialog):
    """Qt 5.15 QProgressDialog as slicer.util.createProgressDialog returns it: shown by the event loop once
    `minimumDuration` has passed (createProgressDialog sets 0), `wasCanceled` is a read-only property."""

    PROPERTIES = {"wasCanceled": Prop("bool", False, getter="_wasCanceled", readonly=True),
                  "minimum": Prop("int", 0, setter="setMinimum"), "maximum": Prop("int", 100, setter="setMaximum"),
                  "value": Prop("int", 0, setter="setValue", getter="_value"),
                  "autoReset": Prop("bool", True), "autoClose": Prop("bool", True),
                  "minimumDuration": Prop("int", 4000, setter="setMinimumDuration"),
                  "labelText": Prop("QString", "", setter="setLabelText")}
    SIGNALS = ("canceled()",)

    def __init__(self, parent=None):
        super().__init__(None)
        if parent is not None:
            self._fake_set_parent(parent)
        self._s.hidden = True
        self._s.bar = widgets.QProgressBar()
        self._s.canceled = False
        self._s.shown_once = False
        self._s.set_value_called = False
        self._s.started = time.monotonic()          # QProgressDialogPrivate::init: starttime.start()
        self._s.force_show_at = self._s.started + 4.0   # and the forceShow timer (minimumDuration 4000)
        self._s.label_history = []
        self._s.visible_during_events = 0
        # QProgressDialogPrivate::init connects canceled() to cancel() first: the Cancel button emits canceled().
        self._fake_connect("canceled()", self.cancel)
        runtime.session().register_dialog(self)

    def _fake_is_toplevel_visible(self):
        return not self._s.hidden

    def isVisible(self):
        return not self._s.hidden

    def _wasCanceled(self):
        return self._s.canceled

    def _value(self):
        return self._s.bar.value

    def setMinimum(self, minimum):
        self._s.bar.setMinimum(minimum)
        self._s.props["minimum"] = self._s.bar.minimum

    def setMaximum(self, maximum):
        self._s.bar.setMaximum(maximum)
        self._s.props["maximum"] = self._s.bar.maximum
        self._s.props["minimum"] = self._s.bar.minimum

    def setRange(self, minimum, maximum):
        self._s.bar.setRange(minimum, maximum)
        self._s.props["minimum"], self._s.props["maximum"] = self._s.bar.minimum, self._s.bar.maximum

    @slot("setLabelText(QString)")
    def setLabelText(self, text):
        self._s.props["labelText"] = convert("QString", text, "QProgressDialog", "labelText")
        self._s.label_history.append(text)

    def setMinimumDuration(self, msec):
        self._s.props["minimumDuration"] = msec
        if self._s.bar.value == self._s.bar.minimum:
            self._s.force_show_at = time.monotonic() + msec / 1000.0

    @slot("setValue(int)")
    def setValue(self, progress):
        progress = convert("int", progress, "QProgressDialog", "value")
        if self._s.set_value_called and progress == self._s.bar.value:
            return
        self._s.bar.setValue(progress)
        if not self._s.shown_once:
            if (not self._s.set_value_called and progress == 0) or progress == self._s.bar.minimum:
                self._s.started = time.monotonic()
                self._s.force_show_at = self._s.started + self._s.props["minimumDuration"] / 1000.0
                self._s.set_value_called = True
                return
            self._s.set_value_called = True
            # Shown once minimumDuration has passed since the start (reset() does not restart that clock).
            if time.monotonic() - self._s.started >= self._s.props["minimumDuration"] / 1000.0:
                self._fake_force_show()
        if progress == self._s.bar.maximum and self._s.props["autoReset"]:
            self.reset()

    def _fake_force_show(self):
        if self._s.shown_once or self._s.canceled:
            return
        self.show()
        self._s.shown_once = True

    def _fake_process_events(self, now):
        if self._s.force_show_at is not None and now >= self._s.force_show_at:
            self._s.force_show_at = None
            self._fake_force_show()
        if not self._s.hidden:
            self._s.visible_during_events += 1

    @slot("reset()")
    def reset(self):
        if self._s.props["autoClose"]:
            self.hide()
        self._s.bar.reset()
        self._s.canceled = False
        self._s.shown_once = False
        self._s.set_value_called = False
        self._s.force_show_at = None

    @slot("cancel()")
    def cancel(self):
        """QProgressDialog::cancel(): reset and flag wasCanceled; canceled() comes only from the button."""
        self._s.force_show_at = None
        self.reset()
        self._s.canceled = True

    def _fake_press_cancel_button(self):
        self._fake_emit("canceled()")

    def setCancelButton(self, button):
        pass

    def setCancelButtonText(self, text):
        pass


class QFileDialog(QObject):
    """Only the static getExistingDirectory is faked; the session answers it (a folder, or '' = Cancel)."""

    ShowDirsOnly, DontResolveSymlinks, DontUseNativeDialog = 0x1, 0x2, 0x10
    AcceptOpen, AcceptSave = 0, 1

    def __init__(self, *args):
        raise NotImplementedError("the fake QFileDialog provides only the static getExistingDirectory")

    @staticmethod
    def getExistingDirectory(parent=None, caption="", dir="", options=0x1):
        if parent is not None and not isinstance(parent, widgets.QWidget):
            raise TypeError(f"QFileDialog.getExistingDirectory: parent {parent!r} is not a QWidget")
        for name, value in (("caption", caption), ("dir", dir)):
            if not isinstance(value, str):
                raise TypeError(f"QFileDialog.getExistingDirectory: {name} must be a str, not {type(value).__name__}")
        return runtime.session().answer_folder_dialog("QFileDialog.getExistingDirectory", caption, dir)


class QMessageBox:
    NoButton, Ok, Cancel, Yes, No, Retry, Close = 0x0, 0x400, 0x400000, 0x4000, 0x10000, 0x80000, 0x200000
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4

    def __init__(self, *args):
        raise NotImplementedError("the fake QMessageBox has only its enum values; use slicer.util.*Display")


class QSettings(QObject):
    """QSettings as Slicer's Python sees it (`qt.QSettings()` and `slicer.app.userSettings()` both reach the
    user's Slicer.ini): `value(key, defaultValue=None)` (None for a missing key without default),
    `setValue(key, value)`, `contains(key)`, `remove(key)`, `allKeys()`, `sync()`.  Values are kept in the
    session (`Session.settings`); an INI file gives strings back after a restart, so the fake returns a str
    as a str and stores nothing else but str, bool and numbers (Qt 5.15 QSettings, IniFormat)."""

    def __init__(self, *args):
        super().__init__(None)

    @staticmethod
    def _store():
        return runtime.session().settings

    def value(self, key, defaultValue=None):
        convert("QString", key, "QSettings", "value(key)")
        return self._store().get(key, defaultValue)

    def setValue(self, key, value):
        convert("QString", key, "QSettings", "setValue(key)")
        if not isinstance(value, (str, bool, int, float)):
            raise TypeError(f"QSettings.setValue: the fake stores str, bool and numbers, not {type(value).__name__}")
        self._store()[key] = value

    def contains(self, key):
        return key in self._store()

    def remove(self, key):
        for name in [k for k in self._store() if k == key or k.startswith(key + "/")]:
            del self._store()[name]

    def allKeys(self):
        return list(self._store())

    def sync(self):
        pass


def make_qt_module():
    return strict_module(
        "qt", "Strict fake of PythonQt's `qt` module: only the classes the DVTStaging panel (and the faked "
              "Slicer code under it) use.",
        Qt=Qt, QObject=QObject, QWidget=widgets.QWidget, QFrame=widgets.QFrame, QLabel=widgets.QLabel,
        QAbstractButton=widgets.QAbstractButton, QPushButton=widgets.QPushButton, QToolButton=widgets.QToolButton,
        QCheckBox=widgets.QCheckBox, QComboBox=widgets.QComboBox, QPlainTextEdit=widgets.QPlainTextEdit,
        QLineEdit=widgets.QLineEdit, QSettings=QSettings,
        QProgressBar=widgets.QProgressBar, QAbstractItemView=widgets.QAbstractItemView,
        QTableView=widgets.QTableView, QTableWidget=widgets.QTableWidget, QTableWidgetItem=widgets.QTableWidgetItem,
        QLayout=widgets.QLayout, QVBoxLayout=widgets.QVBoxLayout, QHBoxLayout=widgets.QHBoxLayout,
        QGridLayout=widgets.QGridLayout, QFormLayout=widgets.QFormLayout, QIcon=widgets.QIcon,
        QTimer=QTimer, QDialog=QDialog, QProgressDialog=QProgressDialog, QFileDialog=QFileDialog,
        QMessageBox=QMessageBox)


def make_ctk_module():
    return strict_module(
        "ctk", "Strict fake of PythonQt's `ctk` module: the CTK widget classes of DVTStaging.ui.",
        ctkCollapsibleButton=widgets.ctkCollapsibleButton, ctkSliderWidget=widgets.ctkSliderWidget,
        ctkDirectoryButton=widgets.ctkDirectoryButton, ctkPathLineEdit=widgets.ctkPathLineEdit)
