"""The Qt-dependent functions of slicer.util, faked with the real signatures and behaviour (Slicer 5.10/5.12
Base/Python/slicer/util.py).  slicer-core's own slicer.util stays for everything MRML-only
(setSliceViewerLayers, VTKObservationMixin, NodeModify, modulePath, arrays...): these replace only
the functions that need Qt, and are installed into that same module.

Dialogs are answered by the test session (Session.answers for questions, Session.folder_answers for
folder dialogs) and recorded (Session.questions, Session.messages); an unexpected question raises.
"""

from __future__ import annotations

import logging
import traceback
from contextlib import contextmanager

from . import runtime, uiloader


def loadUI(path):
    """Load UI file ``path`` and return the corresponding widget (RuntimeError if the file is missing)."""
    return uiloader.load_ui(path)


def childWidgetVariables(widget):
    return uiloader.child_widget_variables(widget)


def mainWindow():
    """The main window (qSlicerMainWindow), or None when Slicer runs without one."""
    return runtime.session().main_window


def _app():
    import slicer
    return slicer.app


def _check_text(text, function):
    if not isinstance(text, str):
        raise TypeError(f"slicer.util.{function}: text must be a str (QString), not {type(text).__name__}")


def _message(level: int, kind: str, text, windowTitle, parent, kwargs, mainWindowNeeded: bool,
             testingReturnValue=None):
    """slicer.util._messageDisplay: log; in testing mode return the testing value; without a main window
    (when one is needed) show nothing; else show the box (here: recorded or answered by the session)."""
    logging.log(level, text)
    app = _app()
    if not windowTitle:
        windowTitle = f"{app.applicationName} {logging.getLevelName(level).lower()}"
    if app.testingEnabled():
        return testingReturnValue
    if mainWindowNeeded and mainWindow() is None:
        return None
    _check_text(text, kind)
    return runtime.session().show_message_box(kind, text, windowTitle, parent, kwargs)


def infoDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
    _message(logging.INFO, "infoDisplay", text, windowTitle, parent, kwargs, mainWindowNeeded=True)


def warningDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
    _message(logging.WARNING, "warningDisplay", text, windowTitle, parent, kwargs, mainWindowNeeded=True)


def errorDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
    _message(logging.ERROR, "errorDisplay", text, windowTitle, parent, kwargs, mainWindowNeeded=True)


def confirmOkCancelDisplay(text, windowTitle=None, parent=None, **kwargs):
    """True when confirmed with OK; in testing mode the popup is skipped and True is returned."""
    if not windowTitle:
        windowTitle = _app().applicationName + " confirmation"
    return bool(_message(logging.INFO, "confirmOkCancelDisplay", text, windowTitle, parent, kwargs,
                         mainWindowNeeded=False, testingReturnValue=True))


def confirmYesNoDisplay(text, windowTitle=None, parent=None, **kwargs):
    if not windowTitle:
        windowTitle = _app().applicationName + " confirmation"
    return bool(_message(logging.INFO, "confirmYesNoDisplay", text, windowTitle, parent, kwargs,
                         mainWindowNeeded=False, testingReturnValue=True))


def delayDisplay(message, autoCloseMsec=1000, parent=None, **kwargs):
    """Below 400 ms only processEvents(); otherwise an auto-closing popup (recorded) and the wait."""
    logging.info(message)
    if 0 <= autoCloseMsec < 400:
        _app().processEvents()
        return
    runtime.session().record_popup(message, autoCloseMsec)
    _app().processEvents()


def showStatusMessage(message, duration=0):
    if mainWindow() is None:
        return False
    runtime.session().status_messages.append(message)
    return True


def settingsValue(key, default, converter=lambda v: v, settings=None):
    values = runtime.session().settings if settings is None else settings
    return converter(values[key]) if key in values else default


def restart():
    runtime.session().restart_requests += 1


@contextmanager
def tryWithErrorDisplay(message=None, show=True, waitCursor=False):
    """Slicer's behaviour: the error is shown (unless testing mode or show=False) and then RE-RAISED."""
    import qt

    app = _app()
    try:
        if waitCursor:
            app.setOverrideCursor(qt.Qt.WaitCursor)
        yield
        if waitCursor:
            app.restoreOverrideCursor()
    except Exception as exc:
        if waitCursor:
            app.restoreOverrideCursor()
        if show and not app.testingEnabled():
            text = f"{message}\n\n{exc}" if message is not None else str(exc)
            errorDisplay(text, detailedText=traceback.format_exc())
        raise


def createProgressDialog(parent=None, value=0, maximum=100, labelText="", windowTitle="Processing...", **kwargs):
    """A modal QProgressDialog (minimumDuration 0); unknown keyword arguments are ignored, like Slicer's."""
    import qt

    dialog = qt.QProgressDialog(parent if parent else mainWindow())
    dialog.minimumDuration = 0
    dialog.maximum = maximum
    dialog.value = value
    dialog.windowTitle = windowTitle
    dialog.labelText = labelText
    for key, argument in kwargs.items():
        if hasattr(dialog, key):
            setattr(dialog, key, argument)
    return dialog


FAKED = ("loadUI", "childWidgetVariables", "mainWindow", "infoDisplay", "warningDisplay", "errorDisplay",
         "confirmOkCancelDisplay", "confirmYesNoDisplay", "delayDisplay", "showStatusMessage", "settingsValue",
         "restart", "tryWithErrorDisplay", "createProgressDialog")
