"""DVTStaging: 3D Slicer module for DVT staging on black-blood MR thrombus imaging.

A thin layer over the Slicer-free core in DVTStagingLib: the Widget binds the panel to a parameter node
and is the only writer of it; the Logic is a facade over DVTStagingLib.slicer (study and ROI nodes, result
nodes, background jobs, worklist scene, dependencies) and works without the GUI.  Supported: Slicer 5.10
and later (Python 3.12).  Research use only, not for clinical use.
"""

import logging
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer.i18n import tr as _, translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from slicer import vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode

from DVTStagingLib.core.stages import INDETERMINATE, STAGES
from DVTStagingLib.io.roi import roi_names_unique
from DVTStagingLib.models.devices import DEVICES
from DVTStagingLib.slicer import compute, job_results, result_nodes, segmentation_nodes, study_nodes, worklist_scene
from DVTStagingLib.slicer.dependencies import DependencyInstaller
from DVTStagingLib.slicer.jobs import CANCELLED, CANCELLED_BY_CLOSE
from DVTStagingLib.slicer.nodes import roi_from_node, volume_from_node
from DVTStagingPanel.annotation_section import AnnotationSection
from DVTStagingPanel.compute_section import ComputeSection
from DVTStagingPanel.model_section import ModelSection
from DVTStagingPanel.sample_data import registerSampleData
from DVTStagingPanel.worklist_section import WorklistSection

class DVTStaging(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DVT Staging")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Vascular")]
        self.parent.dependencies = []
        self.parent.contributors = ["DVTStaging developers"]
        self.parent.helpText = _(
            "Stages deep vein thrombosis (acute, sub-acute, chronic) in black-blood MR thrombus imaging "
            "with the VDPF global-local fusion network. Needs Slicer 5.10 or later. "
            "<b>Research use only, not for clinical use.</b>")
        self.parent.acknowledgementText = _(
            "VDPF: Xie et al., MICCAI 2024. The bundled model is trained on a synthetic phantom.")
        slicer.app.connect("startupCompleted()", registerSampleData)


@parameterNodeWrapper
class DVTStagingParameterNode:
    """Panel state, saved with the scene.

    inputVolume - the BTI study to stage.  currentROI - the ROI shown in the results and annotation sections.
    modelId, detectorId - catalogue ids of the staging model and the detector ("" = the default; the combo
    boxes follow them, an id the catalogue lacks is shown as missing).  device - auto, cuda (GPU) or cpu.
    showAttention, attentionOpacity, attentionMap - the overlay in the slice views.  resultsTable - one row per
    ROI of the last staging run.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    currentROI: vtkMRMLMarkupsROINode
    modelId: str = ""
    detectorId: str = ""
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    showAttention: bool = True
    attentionOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
    attentionMap: Annotated[str, Choice(result_nodes.ATTENTION_MAPS)] = "evidence"
    resultsTable: vtkMRMLTableNode


class DVTStagingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingGUI = False
        self._overlayShown = None    # the overlay settings last applied to the slice views
        self._statusVolumeID = ""    # the study the status line was last written for

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DVTStaging.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DVTStagingLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.placeROIButton.connect("clicked(bool)", self.onPlaceROI)
        self.ui.autoDetectButton.connect("clicked(bool)", self.onAutoDetect)
        self.ui.deleteROIButton.connect("clicked(bool)", self.onDeleteROI)
        self.ui.stageButton.connect("clicked(bool)", self.onStageOrCancel)
        self.modelSection = ModelSection(self)
        self.annotationSection = AnnotationSection(self)
        self.computeSection = ComputeSection(self)
        self.worklistSection = WorklistSection(self)
        self.ui.progressBar.hide()
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(100)
        self._pollTimer.connect("timeout()", self.onPollTimer)
        self.modelSection.refresh()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._pollTimer.stop()
        self.worklistSection.cleanup()
        self.logic.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)   # enter() connects the GUI again

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)   # the Logic cancels a running job itself, the poll timer stops with it

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = study_nodes.first_study_volume(slicer.mrmlScene)

    def setParameterNode(self, inputParameterNode: Optional[DVTStagingParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        if self._parameterNode is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            p, running = self._parameterNode, self.logic.isRunning()
            volume = p.inputVolume
            self.ui.stageButton.enabled = bool(volume) or running
            self.ui.autoDetectButton.enabled = bool(volume) and not running
            self.ui.placeROIButton.enabled = bool(volume)
            self.ui.deleteROIButton.enabled = bool(p.currentROI)
            volumeID = volume.GetID() if volume else None
            if not running and volumeID != self._statusVolumeID:   # keep the last run's message until then
                self._statusVolumeID = volumeID
                self.ui.statusLabel.text = (_("Ready: {name}").format(name=volume.GetName()) if volume
                                            else _("Select a BTI volume."))
            self.ui.resultsTableView.setMRMLTableNode(p.resultsTable)
            self.modelSection.show(p)
            self.annotationSection.show(volume, p.currentROI)
            self._applyOverlay(volume, p)
        finally:
            self._updatingGUI = False

    def _applyOverlay(self, volume, p) -> None:
        """Only when the overlay settings (or the map) change: a foreground the user chose stays otherwise."""
        attention = self.logic.attentionNode(volume, p.attentionMap) if volume else None
        wanted = (attention.GetID() if attention else None, p.showAttention, p.attentionOpacity)
        if attention is not None and wanted != self._overlayShown:
            self.logic.showAttention(volume, p.attentionMap, p.showAttention, p.attentionOpacity)
        self._overlayShown = wanted

    def ensure(self, feature: str) -> bool:
        """What `feature` needs is installed (the user is asked first); errors are shown, not raised."""
        try:
            return self.logic.ensureDependencies(feature)
        except Exception as exc:
            slicer.util.errorDisplay(_("Could not install the Python packages DVT Staging needs: {error}").format(
                error=exc))
            return False

    def onPlaceROI(self) -> None:
        roi = self.logic.addROI(self._parameterNode.inputVolume, interactive=True)
        self._parameterNode.currentROI = roi
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()   # two clicks in a slice view draw it
        selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsROINode")
        selectionNode.SetActivePlaceNodeID(roi.GetID())
        slicer.app.applicationLogic().GetInteractionNode().SetCurrentInteractionMode(
            slicer.vtkMRMLInteractionNode.Place)

    def onDeleteROI(self) -> None:
        roi = self._parameterNode.currentROI
        if roi and slicer.util.confirmOkCancelDisplay(_("Delete ROI {name}?").format(name=roi.GetName())):
            self._parameterNode.currentROI = None
            self.logic.removeROI(self._parameterNode.inputVolume, roi)

    def onAutoDetect(self) -> None:
        if not self.ensure("stage"):
            return
        with slicer.util.tryWithErrorDisplay(_("Auto-detect failed to start."), waitCursor=True):
            p = self._parameterNode
            self.logic.startDetection(p.inputVolume, device=p.device, detector=p.detectorId or None,
                                      onProgress=self.onProgress, onFinished=self.onDetectionFinished)
            self._setRunning(True, _("Detecting thrombi..."))

    def onDetectionFinished(self, roiNodes, error) -> None:
        self._setRunning(False, error or _("{n} thrombus ROI(s) found.").format(n=len(roiNodes)) + (
            _(" The thrombus segmentation is ready for Segment Editor.") if roiNodes else ""))
        if error and error not in (CANCELLED, CANCELLED_BY_CLOSE):
            slicer.util.errorDisplay(_("Auto-detect failed: {error}").format(error=error))
        if roiNodes and self._parameterNode:
            self._parameterNode.currentROI = roiNodes[0]

    def onStageOrCancel(self) -> None:
        if self.logic.isRunning():
            self.logic.cancel()
            return
        p = self._parameterNode
        rois = self.logic.roiNodes(p.inputVolume)
        if not rois and not slicer.util.confirmOkCancelDisplay(
                _("No thrombus ROI is placed. Detect thrombi automatically and stage them?")):
            return
        if not self.ensure("stage"):
            return
        with slicer.util.tryWithErrorDisplay(_("Staging failed to start."), waitCursor=True):
            self.logic.startStaging(p.inputVolume, rois, autoDetect=not rois, model=p.modelId or None,
                                    device=p.device, onProgress=self.onProgress, onFinished=self.onStagingFinished,
                                    onAnswer=self.onStagingAnswer, detector=p.detectorId or None)
            self._setRunning(True, _("Staging..."))

    def onProgress(self, event) -> None:
        self.ui.progressBar.maximum = 1000
        self.ui.progressBar.value = int(event.fraction * 1000)
        self.ui.statusLabel.text = f"{event.task}: {event.done}/{event.total}"

    def onPollTimer(self) -> None:
        if not self.logic.poll():
            self._pollTimer.stop()

    def onStagingAnswer(self, results) -> None:   # the stage is known; the run (and Cancel) goes on with the maps
        self._showResults(results, _(" Drawing the evidence and attention maps..."))

    def onStagingFinished(self, results, error) -> None:
        self._setRunning(False, error)
        if error:
            if error not in (CANCELLED, CANCELLED_BY_CLOSE):
                slicer.util.errorDisplay(_("Staging failed: {error}").format(error=error))
            return
        self._showResults(results)

    def _showResults(self, results, still="") -> None:
        p = self._parameterNode or self.logic.getParameterNode()   # the run may end after the user left
        shown = p.resultsTable is results.tableNode                  # the answer came first: keep the user's view
        p.inputVolume, p.resultsTable = results.volumeNode, results.tableNode
        if results.roiNodes and p.currentROI not in results.roiNodes:
            p.currentROI = results.roiNodes[0]
        r = results.result
        self.ui.statusLabel.text = _("Study stage: {stage}{why} (model {model}, {device})").format(stage=r.stage,
            why=f": {r.reason}" if r.reason else "", model=r.model.get("id", "?"), device=r.device) + still
        if not shown:
            slicer.modules.plots.logic().ShowChartInLayout(results.chartNode)
        self.updateGUIFromParameterNode()   # the overlays, when they came with the same table

    def _setRunning(self, running: bool, message: str = "") -> None:
        self.ui.stageButton.text = _("Cancel") if running else _("Stage")
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        if message:
            self.ui.statusLabel.text = message
        if running:
            self._pollTimer.start()
        for widget in (self.ui.inputVolumeSelector, self.ui.autoDetectButton, self.ui.modelComboBox,
                       self.ui.detectorComboBox, self.ui.deviceComboBox):   # results belong to the study run on
            widget.enabled = not running


class DVTStagingLogic(ScriptedLoadableModuleLogic, VTKObservationMixin):
    """A facade over DVTStagingLib.slicer: MRML nodes in, MRML nodes out, the model in a background process.
    Works without the GUI; returns what it made and never touches the parameter node's fields."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        VTKObservationMixin.__init__(self)
        self.jobs = compute.job_runner()   # the warm local worker, or the staging server chosen in the settings
        self.installer = DependencyInstaller()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self._onSceneStartClose)

    def getParameterNode(self):
        return DVTStagingParameterNode(super().getParameterNode())

    def cleanup(self) -> None:
        """Cancel a running job and remove the job folders of this Logic."""
        self.cancel()
        self.jobs.cleanup()
        self.removeObservers()

    def ensureDependencies(self, feature: str = "stage", askUser: bool = True) -> bool:
        """Install (after asking) what `feature` (sample, worklist, export, stage) needs; False if declined."""
        return self.installer.ensure(feature, askUser)

    # Study, ROI and label nodes: DVTStagingLib.slicer.study_nodes and result_nodes.
    roiNodes = staticmethod(study_nodes.roi_nodes)
    addROI = staticmethod(study_nodes.add_roi)
    removeROI = staticmethod(study_nodes.remove_roi)
    roiResult = staticmethod(study_nodes.roi_result)
    setTrueStage = staticmethod(study_nodes.set_true_stage)
    trueStage = staticmethod(study_nodes.true_stage)
    setReviewed = staticmethod(study_nodes.set_reviewed)
    reviewed = staticmethod(study_nodes.reviewed)
    setNotes = staticmethod(study_nodes.set_notes)
    notes = staticmethod(study_nodes.notes)
    caseAnnotation = staticmethod(study_nodes.case_annotation)
    attentionNode = staticmethod(result_nodes.attention_node)
    showAttention = staticmethod(result_nodes.show_attention)
    thrombusSegmentation = staticmethod(segmentation_nodes.thrombus_segmentation)   # volume -> segmentation node
    thrombusMask = staticmethod(segmentation_nodes.thrombus_mask)   # volume -> bool [k, j, i] on its grid, or None
    coreVolume = staticmethod(volume_from_node)

    def isRunning(self) -> bool:
        return self.jobs.running

    def startStaging(self, volumeNode, roiNodes=None, autoDetect: bool = False, model: Optional[str] = None,
                     device: str = "auto", onProgress=None, onFinished=None, detector: Optional[str] = None,
                     onAnswer=None):
        """Run `dvt-staging stage` on the study in the background; `onAnswer(StagingResultNodes)` once the
        stage is known (no overlays yet), then `onFinished(StagingResultNodes or None, error or None)`, both
        from `poll()`.  Results are matched to the ROIs by their order.  `model` and `detector`: catalogue ids
        (None: the defaults)."""
        if volumeNode is None:
            raise ValueError(_("Select a BTI volume to stage."))
        roiNodes = [] if autoDetect else list(roiNodes if roiNodes is not None else self.roiNodes(volumeNode))
        if not roiNodes and not autoDetect:
            raise ValueError(_("Place a thrombus ROI (or use Auto-detect) before staging."))
        undrawn = study_nodes.undrawn_rois(roiNodes)
        if undrawn:
            raise ValueError(_("ROI {names} is not drawn yet: finish placing it or delete it.").format(
                names=", ".join(undrawn)))
        rois = roi_names_unique([roi_from_node(n) for n in roiNodes])
        return self.jobs.start("stage", volume_from_node(volumeNode), rois or None, volumeNode.GetID(),
                               [n.GetID() for n in roiNodes], model, device, onProgress, onFinished,
                               on_answer=onAnswer, detector=detector)

    def startDetection(self, volumeNode, device: str = "auto", onProgress=None, onFinished=None,
                       detector: Optional[str] = None):
        """Run `dvt-staging detect` in the background; `onFinished(roiNodes or None, error)` from `poll()`.  The
        detected thrombus becomes the study's thrombus segmentation (`thrombusSegmentation`) unless it has one."""
        return self.jobs.start("detect", volume_from_node(volumeNode), None, volumeNode.GetID(), [], None, device,
                               onProgress, onFinished, detector=detector)

    def poll(self) -> bool:
        """Forward progress, a staging run's answer once it is there and, once the run ended, its results;
        True while it still runs."""
        job = self.jobs.poll()
        if job is not None:
            self._finish(job)
        elif (answered := self.jobs.answered()) is not None:
            job_results.hand_over_answer(answered, slicer.mrmlScene)
        return self.jobs.running

    def cancel(self) -> None:
        """Stop the running job (its whole process tree, within a second); its callback gets 'Cancelled.'"""
        job = self.jobs.cancel()
        if job is not None:
            self._finish(job)

    def _onSceneStartClose(self, caller=None, event=None) -> None:
        job = self.jobs.cancel(closed_scene=True)
        if job is not None:
            self._finish(job)

    def _finish(self, job) -> None:
        volume = slicer.mrmlScene.GetNodeByID(job.volume_node_id)
        nodes, error = None, job.error() or (None if volume is not None else CANCELLED_BY_CLOSE)
        if error is None:
            try:
                nodes = job_results.finished_nodes(job, volume)
            except Exception as exc:   # a bad output folder is reported, not raised into the Qt timer
                logging.exception("DVTStaging: loading the results failed")
                error = _("Cannot load the results: {error}").format(error=exc)
        if job.on_finished:
            job.on_finished(nodes, error)

    def stage(self, volumeNode, roiNodes=None, autoDetect: bool = False, model: Optional[str] = None,
              device: str = "auto", onProgress=None, timeout: Optional[float] = None, detector: Optional[str] = None):
        """The synchronous path (scripts, tests): run, wait, load; raises on failure."""
        outcome = {}
        self.startStaging(volumeNode, roiNodes, autoDetect, model, device, onProgress,
                          onFinished=lambda nodes, error: outcome.update(nodes=nodes, error=error), detector=detector)
        self._finish(self.jobs.wait(timeout))
        if outcome["error"]:
            raise RuntimeError(outcome["error"])
        return outcome["nodes"]

    loadResults = staticmethod(job_results.load_results)   # (output folder, volume node, ROI nodes or None)

    openStudy = staticmethod(worklist_scene.open_study)   # (worklist, entry) -> volume node
    saveStudy = staticmethod(worklist_scene.save_study)   # (volume node, worklist, entry) -> case folder

    def worklistFromDICOMDatabase(self):
        return worklist_scene.worklist_from_dicom_database(slicer.dicomDatabase)

    def exportStudies(self, volumeNodes, outFolder, keepIdentifiers=False, overwrite=False):
        return worklist_scene.export_studies(volumeNodes, outFolder, bool(keepIdentifiers), overwrite)

    def loadSampleStudy(self):
        return worklist_scene.load_sample_study(slicer.app.cachePath)


class DVTStagingTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (registered with slicer_add_python_unittest)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_sampleStudyAndAnnotation, self.test_stagePhantom):
            self.setUp()
            test()

    def test_sampleStudyAndAnnotation(self):
        logic = DVTStagingLogic()
        if any(logic.installer.missing("sample")):   # a self-test never installs packages
            self.skipTest("the packages the sample study needs are not installed")
        volumeNode = logic.loadSampleStudy()
        self.assertEqual(logic.coreVolume(volumeNode).shape_ijk, volumeNode.GetImageData().GetDimensions())
        rois = logic.roiNodes(volumeNode)
        self.assertEqual(len(rois), 1)
        logic.setTrueStage(rois[0], "acute")
        logic.setReviewed(volumeNode, True)
        self.assertEqual(logic.caseAnnotation(volumeNode).status, "reviewed")
        self.delayDisplay("Sample study loads with its ROI; labels are kept on the nodes")

    def test_stagePhantom(self):
        logic = DVTStagingLogic()
        if any(logic.installer.missing("stage")):
            self.skipTest("the packages staging needs are not installed")
        volumeNode = logic.loadSampleStudy()
        results = logic.stage(volumeNode, device="cpu", timeout=600)
        self.assertEqual(results.tableNode.GetNumberOfRows(), len(logic.roiNodes(volumeNode)))
        self.assertIn(results.result.stage, (*STAGES, INDETERMINATE))
        attention = results.attentionNodes["evidence"]
        self.assertEqual(attention.GetImageData().GetDimensions(), volumeNode.GetImageData().GetDimensions())
        logic.cleanup()
        self.delayDisplay("Staging of the phantom study passed")
