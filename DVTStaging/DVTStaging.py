"""DVTStaging: 3D Slicer module for DVT staging on black-blood MR thrombus imaging.

A thin layer over the Slicer-free core in DVTStagingLib: the Widget binds the
panel to a parameter node, the Logic converts MRML nodes to core objects and
back.  Research use only, not for clinical use.
"""

import logging
from typing import Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from slicer import vtkMRMLScalarVolumeNode


class DVTStaging(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DVT Staging")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Vascular")]
        self.parent.dependencies = []
        self.parent.contributors = ["DVTStaging developers"]
        self.parent.helpText = _(
            "Stages deep vein thrombosis (acute, sub-acute, chronic) in black-blood MR thrombus imaging "
            "with the VDPF global-local fusion network. <b>Research use only, not for clinical use.</b>"
        )
        self.parent.acknowledgementText = _(
            "VDPF: Xie et al., MICCAI 2024. The bundled model is trained on a synthetic phantom."
        )


@parameterNodeWrapper
class DVTStagingParameterNode:
    """Panel state, saved with the scene.

    inputVolume - the BTI study to stage.
    """

    inputVolume: vtkMRMLScalarVolumeNode


class DVTStagingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DVTStaging.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DVTStagingLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateStatus)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[DVTStagingParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateStatus)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateStatus)
            self._updateStatus()

    def _updateStatus(self, caller=None, event=None) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        self.ui.statusLabel.text = _("Ready: {name}").format(name=volume.GetName()) if volume else _("Select a BTI volume.")


class DVTStagingLogic(ScriptedLoadableModuleLogic):
    """Works without the GUI: MRML nodes in, MRML nodes out, the core in between."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return DVTStagingParameterNode(super().getParameterNode())

    @staticmethod
    def coreVolume(volumeNode):
        """The study as a core Volume (exact geometry), for checks and staging."""
        from DVTStagingLib.mrml_adapter import volume_from_node

        return volume_from_node(volumeNode)


class DVTStagingTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (registered with slicer_add_python_unittest)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_coreVolumeGeometry()

    def test_coreVolumeGeometry(self):
        import numpy as np

        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "test")
        node.SetSpacing(0.8, 0.9, 2.5)
        node.SetOrigin(10.0, -20.0, 30.0)
        slicer.util.updateVolumeFromArray(node, np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
        volume = DVTStagingLogic.coreVolume(node)
        self.assertEqual(volume.shape_ijk, (6, 5, 4))
        self.assertTrue(np.allclose(volume.spacing, [0.8, 0.9, 2.5]))
        logging.info("DVTStaging self-test passed")
        self.delayDisplay("Test passed")

