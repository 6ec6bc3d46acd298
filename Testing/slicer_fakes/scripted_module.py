"""slicer.ScriptedLoadableModule and slicer.i18n, faked after Base/Python/slicer/ScriptedLoadableModule.py
and Base/Python/slicer/i18n.py (identical behaviour at v5.10.0 and v5.12.0 for what is modelled here).

ScriptedLoadableModuleWidget(parent=None): WITHOUT a parent it makes its own qMRMLWidget parent (with
a QVBoxLayout and the scene), calls setup() ITSELF and shows it; with a parent it only takes the
parent's layout.  Slicer creates the widget with its qSlicerScriptedLoadableModuleWidget as parent and
then calls setup() (Base/QTGUI/qSlicerScriptedLoadableModuleWidget.cxx), which Session.show_module does.
"""

from __future__ import annotations

import importlib
import os
import unittest

from .modules import strict_module


def _tr(text):
    import re

    import slicer
    if not isinstance(text, str):
        raise TypeError(f"tr() takes a str, not {type(text).__name__}")
    translated = slicer.app.translate("DVTStaging", text)
    pattern = r"(?<!\{)\{([^\{\}]+)\}(?!\})"
    if set(re.findall(pattern, text)) != set(re.findall(pattern, translated)):
        return text
    return translated


def _translate(context, text):
    import slicer
    return slicer.app.translate(context, text)


def make_i18n_module():
    return strict_module("slicer.i18n", "slicer.i18n (fake): tr(text), translate(context, text)",
                         tr=_tr, translate=_translate)


class ScriptedLoadableModule:
    def __init__(self, parent):
        import qt
        import slicer
        super().__init__()
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = ["Andras Lasso (PerkLab, Queen's University), Steve Pieper (Isomics)"]
        parent.helpText = "This module was created from a template and the help section has not yet been updated."
        parent.acknowledgementText = "This work is supported by NA-MIC, NAC, BIRN, NCIGT, and the Slicer Community."
        module_dir = os.path.dirname(self.parent.path)
        for extension in (".svg", ".png"):
            icon = os.path.join(module_dir, "Resources/Icons", self.moduleName + extension)
            if os.path.isfile(icon):
                parent.icon = qt.QIcon(icon)
                break
        try:
            slicer.selfTests
        except AttributeError:
            slicer.selfTests = {}
        slicer.selfTests[self.moduleName] = self.runTest

    def resourcePath(self, filename):
        return os.path.join(os.path.dirname(self.parent.path), "Resources", filename)

    def runTest(self, msec=100, **kwargs):
        module = importlib.import_module(self.__module__)
        class_name = self.moduleName + "Test"
        try:
            test_class = getattr(module, class_name)
        except AttributeError:
            raise AssertionError(f"Test case class not found: {self.__module__}.{class_name} ")
        test = test_class()
        test.messageDelay = msec
        test.runTest(**kwargs)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        import qt
        import slicer
        super().__init__()
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Widget"):
            self.moduleName = self.moduleName[:-6]
        self.developerMode = slicer.util.settingsValue("Developer/DeveloperMode", False,
                                                       converter=slicer.util.toBool)
        if not parent:
            self.parent = slicer.qMRMLWidget()
            self.parent.setLayout(qt.QVBoxLayout())
            self.parent.setMRMLScene(slicer.mrmlScene)
        else:
            self.parent = parent
        self.layout = self.parent.layout()
        if not parent:
            self.setup()
            self.parent.show()
        slicer.app.moduleManager().connect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

    def resourcePath(self, filename):
        import slicer
        return os.path.join(os.path.dirname(slicer.util.modulePath(self.moduleName)), "Resources", filename)

    def cleanup(self):
        pass

    def _onModuleAboutToBeUnloaded(self, moduleName):
        import slicer
        if moduleName == self.moduleName:
            self.cleanup()
            slicer.app.moduleManager().disconnect("moduleAboutToBeUnloaded(QString)",
                                                  self._onModuleAboutToBeUnloaded)

    def setupDeveloperSection(self):
        if not self.developerMode:
            return
        raise NotImplementedError("the fake has no developer section (Reload & Test): run with developer mode off")

    def setup(self):
        self.setupDeveloperSection()


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        super().__init__()
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Logic"):
            self.moduleName = self.moduleName[:-5]
        self.isSingletonParameterNode = True

    def getParameterNode(self):
        import slicer
        scene = slicer.mrmlScene
        if self.isSingletonParameterNode:
            node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node:
                if node.GetAttribute("ModuleName") != self.moduleName:   # removed by a scene close
                    node.SetAttribute("ModuleName", self.moduleName)
                return node
        else:
            for node in self.getAllParameterNodes():
                return node
        return scene.AddNode(self.createParameterNode())

    def getAllParameterNodes(self):
        import slicer
        scene = slicer.mrmlScene
        nodes = [scene.GetNthNodeByClass(i, "vtkMRMLScriptedModuleNode")
                 for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode"))]
        return [n for n in nodes if n.GetAttribute("ModuleName") == self.moduleName]

    def createParameterNode(self):
        import slicer
        scene = slicer.mrmlScene
        if scene is None:
            return None
        node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
        node.UnRegister(None)
        if self.isSingletonParameterNode:
            node.SetSingletonTag(self.moduleName)
        node.SetAttribute("ModuleName", self.moduleName)
        node.SetName(scene.GenerateUniqueName(self.moduleName))
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def __init__(self, *args, **kwargs):
        self.moduleTestNames = []
        super().__init__(*args, **kwargs)
        self.enableScreenshots = False
        self.screenshotScaleFactor = 1.0
        if not self.moduleTestNames:
            self.moduleTestNames = [m for m in dir(self) if "test" in m and callable(getattr(self, m))]

    def delayDisplay(self, message, requestedDelay=None, msec=None):
        import slicer
        if hasattr(self, "messageDelay"):
            msec = self.messageDelay
        if msec is None:
            msec = requestedDelay
        if msec is None:
            msec = 100
        slicer.util.delayDisplay(message, msec)

    def runTest(self):
        import logging
        if not self.moduleTestNames:
            logging.warning("No test is defined in " + self.__class__.__name__)
            return
        self.setUpClass()
        for name in self.moduleTestNames:
            self.setUp()
            getattr(self, name)()
            self.tearDown()
        self.tearDownClass()


def make_scripted_loadable_module():
    return strict_module(
        "slicer.ScriptedLoadableModule", "slicer.ScriptedLoadableModule (fake)",
        ScriptedLoadableModule=ScriptedLoadableModule, ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic=ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest=ScriptedLoadableModuleTest,
        __all__=["ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"])
