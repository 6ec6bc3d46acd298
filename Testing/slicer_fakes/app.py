"""slicer.app (qSlicerApplication), its module manager and layout manager, and slicer.modules, faked.

Only the real names the module code and the faked Slicer Python use; any other attribute raises.
Sources: Base/QTCore/qSlicerCoreApplication.h, Base/QTGUI/qSlicerApplication.h,
Base/QTCore/qSlicerBaseQTCorePythonQtDecorators.h (testingEnabled, processEvents), v5.10.0-v5.12.0.
"""

from __future__ import annotations

import vtk

from . import runtime, widgets
from .modules import StrictModule
from .qobject import Prop, QObject, convert


class qSlicerCommandOptions(QObject):
    PROPERTIES = {"testingEnabled": Prop("bool", False, readonly=True),
                  "noMainWindow": Prop("bool", False, readonly=True),
                  "disablePython": Prop("bool", False, readonly=True),
                  "pythonScript": Prop("QString", "", readonly=True),
                  "extraPythonScript": Prop("QString", "", readonly=True)}


class qSlicerModuleManager(QObject):
    SIGNALS = ("moduleLoaded(QString)", "moduleAboutToBeUnloaded(QString)", "moduleUnloaded(QString)")

    def __init__(self):
        super().__init__(None)
        self._s.modules = {}

    def module(self, name):
        return self._s.modules.get(name)

    def modulesNames(self):
        return list(self._s.modules)


class qMRMLSliceWidget(widgets.QWidget):
    def __init__(self, slice_logic):
        super().__init__(None)
        self._s.logic = slice_logic

    def sliceLogic(self):
        return self._s.logic

    def mrmlSliceNode(self):
        return self._s.logic.GetSliceNode()

    def mrmlSliceCompositeNode(self):
        return self._s.logic.GetSliceCompositeNode()


class qSlicerLayoutManager(QObject):
    """The layout manager of the main window: its slice views are real vtkMRMLSliceLogic objects."""

    PROPERTIES = {"layout": Prop("int", 2)}
    SIGNALS = ("layoutChanged(int)",)

    def __init__(self, slice_logics: dict):
        super().__init__(None)
        self._s.slice_logics = slice_logics

    def mrmlSliceLogics(self):
        collection = vtk.vtkCollection()
        for logic in self._s.slice_logics.values():
            collection.AddItem(logic)
        return collection

    def sliceViewNames(self):
        return list(self._s.slice_logics)

    def sliceWidget(self, name):
        logic = self._s.slice_logics.get(name)
        return qMRMLSliceWidget(logic) if logic is not None else None


class qSlicerMainWindow(widgets.QWidget):
    def __init__(self):
        super().__init__(None)
        self.setObjectName("qSlicerMainWindow")
        self._s.hidden = False


class qSlicerApplication(QObject):
    PROPERTIES = {"cachePath": Prop("QString", ""), "temporaryPath": Prop("QString", ""),
                  "slicerHome": Prop("QString", "", readonly=True),
                  "applicationName": Prop("QString", "Slicer"),
                  "applicationVersion": Prop("QString", ""),
                  "majorVersion": Prop("int", 5, readonly=True), "minorVersion": Prop("int", 12, readonly=True),
                  "isInstalled": Prop("bool", True, readonly=True), "releaseType": Prop("QString", "Stable", readonly=True)}
    SIGNALS = ("startupCompleted()", "mrmlSceneChanged(vtkMRMLScene*)", "urlReceived(QString)", "aboutToQuit()",
               "lastWindowClosed()")

    def __init__(self, headless, version: str, testing: bool = False):
        super().__init__(None)
        major, minor = (int(v) for v in version.split(".")[:2])
        self._s.props.update(majorVersion=major, minorVersion=minor, applicationVersion=f"{major}.{minor}.0",
                             slicerHome=headless.home)
        self._s.headless = headless
        self._s.testing = testing
        self._s.options = qSlicerCommandOptions()
        self._s.options._s.props["testingEnabled"] = testing
        self._s.module_manager = qSlicerModuleManager()
        self._s.cursor_stack = []

    def applicationLogic(self):
        return self._s.headless.app_logic

    def mrmlScene(self):
        return self._s.headless.scene

    def moduleManager(self):
        return self._s.module_manager

    def commandOptions(self):
        return self._s.options

    def userSettings(self):
        from .qtcore import QSettings

        return QSettings()

    def testingEnabled(self):
        return self._s.testing

    def processEvents(self, flags=None):
        runtime.session().process_events()

    def layoutManager(self):
        return runtime.session().layout_manager

    def mainWindow(self):
        return runtime.session().main_window

    def topLevelWidgets(self):
        window = runtime.session().main_window
        return [window] if window is not None else []

    def setOverrideCursor(self, cursor):
        self._s.cursor_stack.append(cursor)

    def restoreOverrideCursor(self):
        if self._s.cursor_stack:
            self._s.cursor_stack.pop()

    def overrideCursor(self):
        return self._s.cursor_stack[-1] if self._s.cursor_stack else None

    def translate(self, context, text):
        convert("QString", text, "qSlicerApplication", "translate(text)")
        return text


class qSlicerCoreModule(QObject):
    """A loadable module as slicer.modules.<name> shows it: logic() and its name."""

    PROPERTIES = {"title": Prop("QString", ""), "path": Prop("QString", "", readonly=True)}

    def __init__(self, name, logic):
        super().__init__(None)
        self.setObjectName(name)
        self._s.logic = logic

    def logic(self):
        return self._s.logic


def make_modules_namespace(logics: dict) -> StrictModule:
    """slicer.modules: a module; reading a name that no module (or scripted module) registered raises."""
    modules = StrictModule("slicer.modules", "Slicer's loaded modules (fake)")
    for name, logic in logics.items():
        setattr(modules, name.lower(), qSlicerCoreModule(name, logic))
    return modules
