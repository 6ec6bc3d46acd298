"""A test session: the fake Slicer application around a HeadlessSlicer (real MRML), and what a test
needs to act as the user and to see what the user would see.

- `answers`: scripted answers (True = OK/Yes, False = Cancel/No) to the questions the module asks,
  in order; an unexpected question raises UnexpectedDialog.  `questions` records them.
- `folder_answers`: what the user picks in folder dialogs ('' = Cancel); `folder_dialogs` records them.
- `messages`: error/warning/info boxes shown (kind, text, title).
- `console_errors`: exceptions printed to the Python console: raised in a Qt slot (PythonQt prints
  them, the emitter carries on) or in a VTK observer (VTK prints them through sys.excepthook).
- `process_events()` / `run_event_loop(until, timeout)`: Qt's event loop: fires due timers and shows
  progress dialogs whose minimum duration has passed; `during_events` callbacks act as the user while
  the module keeps the GUI alive (e.g. pressing Cancel in a progress dialog).
- `use_slicer_version("5.10" | "5.12")`: the SampleData flavour, slicer.packaging present or not.
- Module life cycle as Slicer runs it: `load_module()` (module object, startupCompleted connection),
  `startup_completed()`, `show_module()` (widget with its panel as parent, setup(), enter()),
  `exit_module()`, `unload_module()`.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field

import slicer

from . import qobject, runtime
from .app import make_modules_namespace, qSlicerApplication, qSlicerLayoutManager, qSlicerMainWindow
from .widgets import qSlicerScriptedLoadableModule, qSlicerScriptedLoadableModuleWidget

VERSIONS = ("5.10", "5.12")


class UnexpectedDialog(AssertionError):
    """The module opened a dialog the test did not script an answer for."""


@dataclass
class Message:
    kind: str
    text: str
    windowTitle: str
    kwargs: dict = field(default_factory=dict)


class Session:
    def __init__(self, headless, version: str = "5.12", testing: bool = False, main_window: bool = True):
        from . import install
        install()
        if runtime.current is not None:
            runtime.current.close()
        self.headless = headless
        self.version = None
        self.app = qSlicerApplication(headless, version, testing)
        self.main_window = qSlicerMainWindow() if main_window else None
        self.layout_manager = qSlicerLayoutManager(headless.slice_logics) if main_window else None
        self.answers: deque = deque()
        self.questions: list[Message] = []
        self.messages: list[Message] = []
        self.folder_answers: deque = deque()
        self.folder_dialogs: list[tuple] = []
        self.progress_dialogs: list = []
        self.pip_dialogs: list[dict] = []
        self.timers: list = []
        self.console_errors: list[str] = []
        self.status_messages: list[str] = []
        self.popups: list[str] = []
        self.settings: dict = {}
        self.restart_requests = 0
        self.process_events_calls = 0
        self.during_events: list = []
        self.vtk_observers: list = []
        self._in_events = False
        self.module = None
        self.widget = None
        self.panel = None
        self._listener = lambda exc, text: (self.console_errors.append(text), sys.stderr.write(text))
        qobject._console_listeners.append(self._listener)
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        runtime.current = self
        slicer.app = self.app
        slicer.modules = make_modules_namespace(headless.logics)
        self.use_slicer_version(version)

    # -- environment ---------------------------------------------------------------------------------------
    def _excepthook(self, exc_type, exc, tb):
        """VTK prints an exception raised in an observer through sys.excepthook: record it, print it."""
        self.console_errors.append("".join(__import__("traceback").format_exception(exc_type, exc, tb)))
        self._previous_excepthook(exc_type, exc, tb)

    def use_slicer_version(self, version: str) -> None:
        from . import packaging as fake_packaging
        from . import sample_data
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}")
        self.version = version
        sys.modules["SampleData"] = sample_data.make_module(version)
        if version == "5.10":
            sys.modules.pop("slicer.packaging", None)
            if "packaging" in vars(slicer):
                delattr(slicer, "packaging")
        else:
            module = fake_packaging.make_module()
            sys.modules["slicer.packaging"] = module
            slicer.packaging = module
        major, minor = version.split(".")
        self.app._s.props.update(majorVersion=int(major), minorVersion=int(minor))

    def set_dicom_database(self, database) -> None:
        from .dicom import make_dicomlib
        slicer.dicomDatabase = database
        package, utils = make_dicomlib()
        sys.modules["DICOMLib"], sys.modules["DICOMLib.DICOMUtils"] = package, utils

    def close(self) -> None:
        if runtime.current is not self:
            return
        for timer in self.timers:
            timer.stop()
        for obj, tag in self.vtk_observers:
            obj.RemoveObserver(tag)
        self.vtk_observers = []
        if self._listener in qobject._console_listeners:
            qobject._console_listeners.remove(self._listener)
        sys.excepthook = self._previous_excepthook
        for name in ("SampleData", "slicer.packaging", "DICOMLib", "DICOMLib.DICOMUtils"):
            sys.modules.pop(name, None)
        for name in ("packaging", "dicomDatabase", "selfTests"):
            if name in vars(slicer):
                delattr(slicer, name)
        runtime.current = None

    # -- dialogs ----------------------------------------------------------------------------------------------
    def show_message_box(self, kind, text, windowTitle, parent, kwargs):
        message = Message(kind, text, windowTitle, dict(kwargs))
        if kind.startswith("confirm"):
            self.questions.append(message)
            if not self.answers:
                raise UnexpectedDialog(f"the module asked ({kind}) '{text}' and the test scripted no answer")
            answer = self.answers.popleft()
            return answer(message) if callable(answer) else answer
        self.messages.append(message)
        return True

    def answer_folder_dialog(self, kind, caption, directory):
        self.folder_dialogs.append((kind, caption, directory))
        if not self.folder_answers:
            raise UnexpectedDialog(f"the module opened a folder dialog '{caption}' and the test scripted no answer")
        return str(self.folder_answers.popleft())

    def record_popup(self, message, msec):
        self.popups.append(message)

    def record_pip_dialog(self, requester):
        dialog = {"requester": requester, "closed": False, "events_while_open": 0}
        self.pip_dialogs.append(dialog)
        return dialog

    def errors_shown(self) -> list[str]:
        return [m.text for m in self.messages if m.kind == "errorDisplay"]

    # -- event loop ----------------------------------------------------------------------------------------------
    def register_timer(self, timer):
        self.timers.append(timer)

    def register_dialog(self, dialog):
        self.progress_dialogs.append(dialog)

    def process_events(self):
        """QCoreApplication::processEvents: due timers fire, due progress dialogs show, the user may act."""
        self.process_events_calls += 1
        for pip in self.pip_dialogs:
            if not pip["closed"]:
                pip["events_while_open"] += 1
        if self._in_events:
            return
        self._in_events = True
        try:
            now = time.monotonic()
            for dialog in list(self.progress_dialogs):
                dialog._fake_process_events(now)
            for callback in list(self.during_events):
                callback()
            for timer in list(self.timers):
                timer._fake_fire_if_due(now)
        finally:
            self._in_events = False

    def run_event_loop(self, until, timeout: float = 30.0, step: float = 0.02):
        """Process events until `until()` is true; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the event loop ran {timeout:g} s without reaching the expected state")
            self.process_events()
            time.sleep(step)

    # -- the module as Slicer loads and shows it ---------------------------------------------------------------
    def load_module(self):
        from . import MODULE_FILE, import_module_file
        dvt = import_module_file()
        parent = qSlicerScriptedLoadableModule(MODULE_FILE)
        parent.setObjectName("DVTStaging")
        self.module = dvt.DVTStaging(parent)
        slicer.modules.dvtstaging = parent
        self.app.moduleManager()._s.modules["DVTStaging"] = parent
        return self.module

    def startup_completed(self):
        self.app._fake_emit("startupCompleted()")

    def show_module(self):
        """qSlicerScriptedLoadableModuleWidget::setPythonSource + setup(), then the module is entered."""
        if self.module is None:
            self.load_module()
        dvt = sys.modules["DVTStaging"]
        self.panel = qSlicerScriptedLoadableModuleWidget(self.main_window)
        self.panel.setMRMLScene(slicer.mrmlScene)
        self.widget = dvt.DVTStagingWidget(self.panel)
        slicer.modules.DVTStagingWidget = self.widget
        self.app.moduleManager()._s.modules["DVTStaging"]._s.widget = self.panel
        self.widget.setup()
        self.enter_module()
        return self.widget

    def enter_module(self):
        self.panel.show()
        self.panel._s.entered = True
        if hasattr(self.widget, "enter"):
            self.widget.enter()

    def exit_module(self):
        self.panel._s.entered = False
        if hasattr(self.widget, "exit"):
            self.widget.exit()
        self.panel.hide()

    def unload_module(self):
        self.app.moduleManager()._fake_emit("moduleAboutToBeUnloaded(QString)", "DVTStaging")

    @property
    def user(self):
        from .user import User
        return User(self)

