"""DVTStaging: 3D Slicer module for DVT staging on black-blood MR thrombus imaging.

A thin layer over the Slicer-free core in DVTStagingLib: the Widget binds the
panel to a parameter node, the Logic converts MRML nodes to core objects and
back and runs the `dvt-staging` CLI in a background process.  Research use
only, not for clinical use.
"""

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from slicer import vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode

ATTENTION_MAPS = ["local-to-global", "global-to-local"]
DEVICE_CHOICES = ["auto", "cuda", "cpu"]
# Heat colour tables, best first: the first two come with Slicer's colour files, PET-Heat is built in.
HEAT_COLOR_NODE_NAMES = ("Inferno", "ColdToHotRainbow", "PET-Heat")
STAGE_COLORS = {"acute": (0.85, 0.15, 0.15), "subacute": (0.95, 0.6, 0.1), "chronic": (0.2, 0.4, 0.85)}
SERIES_LINE_STYLES = ("Solid", "Dash", "Dot", "DashDot")
# Node reference roles on the input volume: results are found again (re-run, saved scene) through them.
ROLE_ROI = "DVTStaging.roi"
ROLE_TABLE = "DVTStaging.resultsTable"
ROLE_CHART = "DVTStaging.sliceChart"
ROLE_ATTENTION = "DVTStaging.attention."   # + map name
ATTENTION_VISIBLE_FROM = 0.05


def _core():
    """The core modules, imported on use: Slicer starts fast and the module loads without them."""
    from DVTStagingLib import annotation, background, stage_run, worklist

    return annotation, background, stage_run, worklist


#
# DVTStaging
#
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
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """A generated phantom study in the Sample Data module (made on first use, no download)."""
    import SampleData
    from DVTStagingLib.sample_study import SAMPLE_NAME, sample_image_uri

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataCategory("DVTStaging", title=_("DVT Staging"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="DVTStaging",
        sampleName=SAMPLE_NAME,
        sampleDescription=_("Synthetic black-blood MR thigh study with an acute thrombus (phantom)."),
        thumbnailFileName=os.path.join(iconsPath, "DVTStaging.png"),
        uris=sample_image_uri(slicer.app.cachePath),
        fileNames=f"{SAMPLE_NAME}.nrrd",
        nodeNames=SAMPLE_NAME,
        customDownloader=lambda source: DVTStagingLogic().loadSampleStudy(),
    )


#
# Parameters
#
@parameterNodeWrapper
class DVTStagingParameterNode:
    """Panel state, saved with the scene.

    inputVolume - the BTI study to stage.
    currentROI - the thrombus ROI shown in the results and annotation sections.
    modelId - catalogue id of the staging model ("" = the default model).
    device - where the model runs: auto, cuda (GPU) or cpu.
    showAttention, attentionOpacity, attentionMap - the cross-attention overlay in the slice views.
    resultsTable - one row per ROI of the last staging run.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    currentROI: vtkMRMLMarkupsROINode
    modelId: str = ""
    device: Annotated[str, Choice(DEVICE_CHOICES)] = "auto"
    showAttention: bool = True
    attentionOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
    attentionMap: Annotated[str, Choice(ATTENTION_MAPS)] = "local-to-global"
    resultsTable: vtkMRMLTableNode


#
# Widget
#
class DVTStagingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.worklist = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingGUI = False
        self._pollTimer = None
        self._statusVolumeID = ""   # the study the status line was last written for

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
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.populateModels)
        self.ui.trueStageComboBox.connect("currentIndexChanged(int)", self.onTrueStageChanged)
        self.ui.reviewedCheckBox.connect("toggled(bool)", self.onReviewedChanged)
        self.ui.notesTextEdit.connect("textChanged()", self.onNotesChanged)
        self.ui.worklistFolderButton.connect("directoryChanged(QString)", self.onWorklistFolder)
        self.ui.worklistFromDICOMButton.connect("clicked(bool)", self.onWorklistFromDICOM)
        self.ui.worklistTableWidget.connect("cellDoubleClicked(int,int)", self.onWorklistRowOpen)
        self.ui.previousStudyButton.connect("clicked(bool)", lambda checked=False: self.onStep(-1))
        self.ui.nextStudyButton.connect("clicked(bool)", lambda checked=False: self.onStep(+1))
        self.ui.exportButton.connect("clicked(bool)", self.onExport)

        self.ui.trueStageComboBox.clear()
        self.ui.trueStageComboBox.addItem(_("(not labeled)"), "")
        for stage in ("acute", "subacute", "chronic"):
            self.ui.trueStageComboBox.addItem(stage, stage)
        self.ui.progressBar.hide()

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(100)
        self._pollTimer.connect("timeout()", self.onPollTimer)

        self.populateModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._pollTimer:
            self._pollTimer.stop()
        if self.logic:
            self.logic.cancel()
            self.logic.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        # The Logic cancels a run on scene close itself; the panel only lets go of the nodes.
        self.setParameterNode(None)
        self._setRunning(False)

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self.updateGUIFromParameterNode()

    # -- GUI from state --------------------------------------------------------------------
    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        if self._parameterNode is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            p = self._parameterNode
            volume = p.inputVolume
            running = self.logic.isRunning()
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
            self._updateROIResult(p.currentROI)
            self._updateAnnotationWidgets(volume, p.currentROI)
            if volume and self.logic.attentionNode(volume, p.attentionMap):
                self.logic.showAttention(volume, p.attentionMap, p.showAttention, p.attentionOpacity)
        finally:
            self._updatingGUI = False

    def _updateROIResult(self, roiNode) -> None:
        result = self.logic.roiResult(roiNode) if roiNode else None
        if not result:
            self.ui.roiResultLabel.text = _("No result for this ROI yet.")
            self.ui.ratioLabel.text = "-"
            return
        probs = ", ".join(f"{c} {result['probabilities'][c]:.0%}" for c in ("acute", "subacute", "chronic"))
        self.ui.roiResultLabel.text = f"<b>{result['stage']}</b> ({probs})"
        ratio = result["thrombus_muscle_ratio"]
        self.ui.ratioLabel.text = (_("{ratio:.2f} (published T1: acute 2.8±1.2, chronic 1.4±0.6)").format(ratio=ratio)
                                   if ratio is not None else _("not measurable (no muscle next to the ROI)"))

    def _updateAnnotationWidgets(self, volume, roiNode) -> None:
        for w in (self.ui.trueStageComboBox, self.ui.reviewedCheckBox, self.ui.notesTextEdit):
            w.blockSignals(True)
        try:
            self.ui.trueStageComboBox.enabled = bool(roiNode)
            index = self.ui.trueStageComboBox.findData(self.logic.trueStage(roiNode) if roiNode else "")
            self.ui.trueStageComboBox.currentIndex = max(index, 0)
            self.ui.reviewedCheckBox.enabled = bool(volume)
            self.ui.reviewedCheckBox.checked = self.logic.reviewed(volume) if volume else False
            self.ui.notesTextEdit.enabled = bool(volume)
            notes = self.logic.notes(volume) if volume else ""
            if self.ui.notesTextEdit.toPlainText() != notes:
                self.ui.notesTextEdit.setPlainText(notes)
        finally:
            for w in (self.ui.trueStageComboBox, self.ui.reviewedCheckBox, self.ui.notesTextEdit):
                w.blockSignals(False)

    def populateModels(self) -> None:
        from DVTStagingLib.catalog import list_models

        self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.clear()
        self.ui.modelComboBox.addItem(_("default (bundled)"), "")
        try:
            for entry in list_models("staging"):
                self.ui.modelComboBox.addItem(f"{entry.id} ({entry.source})", entry.id)
        except Exception as exc:  # a broken catalogue folder must not break the panel
            logging.warning(f"DVTStaging: cannot list models: {exc}")
        wanted = self._parameterNode.modelId if self._parameterNode else ""
        self.ui.modelComboBox.currentIndex = max(self.ui.modelComboBox.findData(wanted), 0)
        self.ui.modelComboBox.blockSignals(False)

    def onModelChanged(self, index) -> None:
        if self._parameterNode:
            self._parameterNode.modelId = self.ui.modelComboBox.itemData(index) or ""

    # -- ROIs ----------------------------------------------------------------------------------
    def onPlaceROI(self) -> None:
        volume = self._parameterNode.inputVolume
        roi = self.logic.addROI(volume, interactive=True)
        self._parameterNode.currentROI = roi
        # Let the user draw it: the ROI is placed by two clicks in a slice view.
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
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
        if not self._ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Auto-detect failed to start."), waitCursor=True):
            self.logic.startDetection(self._parameterNode.inputVolume, device=self._parameterNode.device,
                                      onProgress=self.onProgress, onFinished=self.onDetectionFinished)
            self._setRunning(True, _("Detecting thrombi..."))

    def onDetectionFinished(self, roiNodes, error) -> None:
        self._setRunning(False)
        if error:
            self.ui.statusLabel.text = error
            return
        self.ui.statusLabel.text = _("{n} thrombus ROI(s) found.").format(n=len(roiNodes))
        if roiNodes and self._parameterNode:
            self._parameterNode.currentROI = roiNodes[0]

    # -- staging ----------------------------------------------------------------------------
    def onStageOrCancel(self) -> None:
        if self.logic.isRunning():
            self.logic.cancel()
            return
        p = self._parameterNode
        rois = self.logic.roiNodes(p.inputVolume)
        autoDetect = not rois
        if autoDetect and not slicer.util.confirmOkCancelDisplay(
                _("No thrombus ROI is placed. Detect thrombi automatically and stage them?")):
            return
        if not self._ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Staging failed to start."), waitCursor=True):
            self.logic.startStaging(p.inputVolume, rois, autoDetect=autoDetect, model=p.modelId or None,
                                    device=p.device, onProgress=self.onProgress, onFinished=self.onStagingFinished)
            self._setRunning(True, _("Staging..."))

    def onProgress(self, event) -> None:
        self.ui.progressBar.maximum = 1000
        self.ui.progressBar.value = int(event.fraction * 1000)
        self.ui.statusLabel.text = f"{event.task}: {event.done}/{event.total}"

    def onPollTimer(self) -> None:
        if not self.logic.poll():
            self._pollTimer.stop()

    def onStagingFinished(self, results, error) -> None:
        self._setRunning(False)
        if error:
            self.ui.statusLabel.text = error
            if not error.startswith(_("Cancelled")):
                slicer.util.errorDisplay(_("Staging failed: {error}").format(error=error))
            return
        p = self._parameterNode
        if p is None:
            return
        p.resultsTable = results.tableNode
        if results.roiNodes:
            p.currentROI = results.roiNodes[0]
        self.ui.statusLabel.text = _("Study stage: {stage} (model {model}, {device})").format(
            stage=results.result.stage, model=results.result.model.get("id", "?"), device=results.result.device)
        slicer.modules.plots.logic().ShowChartInLayout(results.chartNode)
        self.updateGUIFromParameterNode()

    def _setRunning(self, running: bool, message: str = "") -> None:
        self.ui.stageButton.text = _("Cancel") if running else _("Stage")
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        if message:
            self.ui.statusLabel.text = message
        if running:
            self._pollTimer.start()
        self.ui.autoDetectButton.enabled = not running
        self.ui.modelComboBox.enabled = not running
        self.ui.deviceComboBox.enabled = not running

    def _ensureDependencies(self) -> bool:
        try:
            return self.logic.ensureDependencies(askUser=True)
        except Exception as exc:
            slicer.util.errorDisplay(_("Could not install the Python packages DVT Staging needs: {error}").format(
                error=exc))
            return False

    # -- annotation --------------------------------------------------------------------------
    def onTrueStageChanged(self, index) -> None:
        roi = self._parameterNode.currentROI if self._parameterNode else None
        if roi and not self._updatingGUI:
            self.logic.setTrueStage(roi, self.ui.trueStageComboBox.itemData(index) or "")
            self._refreshWorklistRow()

    def onReviewedChanged(self, checked) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if volume and not self._updatingGUI:
            self.logic.setReviewed(volume, checked)
            self._refreshWorklistRow()

    def onNotesChanged(self) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if volume and not self._updatingGUI:
            self.logic.setNotes(volume, self.ui.notesTextEdit.toPlainText())

    # -- worklist -------------------------------------------------------------------------------
    def onExport(self, checked=False) -> None:
        """The current study into a dataset folder (de-identified unless asked otherwise)."""
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if volume is None:
            slicer.util.errorDisplay(_("Select a study to export."))
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Dataset folder"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            dataset = self.logic.exportStudies([volume], folder,
                                               keepIdentifiers=bool(self.ui.keepIdentifiersCheckBox.checked))
            self.ui.statusLabel.text = _("Exported to {folder} ({n} cases in the dataset).").format(
                folder=folder, n=len(dataset.cases))

    def onWorklistFolder(self, folder) -> None:
        from DVTStagingLib.worklist import Worklist

        with slicer.util.tryWithErrorDisplay(_("Cannot open the worklist folder."), waitCursor=True):
            self.worklist = Worklist.from_folder(folder)
            self._fillWorklist()

    def onWorklistFromDICOM(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot read the DICOM database."), waitCursor=True):
            self.worklist = self.logic.worklistFromDICOMDatabase()
            self._fillWorklist()

    def _fillWorklist(self) -> None:
        table = self.ui.worklistTableWidget
        table.setRowCount(0)
        table.setColumnCount(2)
        table.setHorizontalHeaderLabels([_("Study"), _("Status")])
        for row, (entry, status) in enumerate(self.worklist.statuses()):
            table.insertRow(row)
            table.setItem(row, 0, qt.QTableWidgetItem(entry.name))
            table.setItem(row, 1, qt.QTableWidgetItem(status))
        counts = self.worklist.counts()
        self.ui.worklistCountsLabel.text = ", ".join(f"{k}: {v}" for k, v in counts.items())
        table.selectRow(self.worklist.index)

    def _refreshWorklistRow(self) -> None:
        if self.worklist and self.worklist.current and self._parameterNode and self._parameterNode.inputVolume:
            status = self.logic.caseAnnotation(self._parameterNode.inputVolume).status
            self.ui.worklistTableWidget.setItem(self.worklist.index, 1, qt.QTableWidgetItem(status))

    def _saveCurrentStudy(self) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if self.worklist and self.worklist.current and volume:
            self.logic.saveStudy(volume, self.worklist, self.worklist.current)

    def _openStudy(self, entry) -> None:
        slicer.mrmlScene.Clear(False)   # runs scene-close handling: a running job is cancelled
        volume = self.logic.openStudy(self.worklist, entry)
        self.initializeParameterNode()
        self._parameterNode.inputVolume = volume
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        self._fillWorklist()

    def onStep(self, step: int) -> None:
        if not self.worklist:
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot move to the next study."), waitCursor=True):
            self._saveCurrentStudy()
            entry = self.worklist.next() if step > 0 else self.worklist.previous()
            if entry is None:
                self.ui.statusLabel.text = _("End of the worklist.") if step > 0 else _("Start of the worklist.")
                return
            self._openStudy(entry)

    def onWorklistRowOpen(self, row, column) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot open the study."), waitCursor=True):
            self._saveCurrentStudy()
            self.worklist.index = row
            self._openStudy(self.worklist.current)


#
# Logic
#
class StagingResultNodes:
    """What one staging run put into the scene."""

    def __init__(self, result, roiNodes, tableNode, chartNode, sliceTableNodes, attentionNodes, folderItemID):
        self.result = result                  # core StageResult (read from result.json)
        self.roiNodes = roiNodes              # one markups ROI per staged thrombus
        self.tableNode = tableNode            # one row per ROI
        self.chartNode = chartNode            # per-slice probabilities
        self.sliceTableNodes = sliceTableNodes
        self.attentionNodes = attentionNodes  # map name -> scalar volume node
        self.folderItemID = folderItemID      # subject hierarchy folder holding all of them


class _BackgroundJob:
    def __init__(self, kind, process, folder, outFolder, volumeNodeID, roiNodeIDs, onProgress, onFinished):
        self.kind = kind                  # "stage" or "detect"
        self.process = process            # core BackgroundProcess
        self.folder = folder              # job folder (inputs + outputs), removed with the Logic
        self.outFolder = outFolder
        self.volumeNodeID = volumeNodeID  # IDs, not nodes: the scene may be closed meanwhile
        self.roiNodeIDs = roiNodeIDs      # result ROI name -> node ID
        self.onProgress = onProgress
        self.onFinished = onFinished
        self.closedScene = False


class DVTStagingLogic(ScriptedLoadableModuleLogic, VTKObservationMixin):
    """Works without the GUI: MRML nodes in, MRML nodes out, the core (and its CLI) in between."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        VTKObservationMixin.__init__(self)
        self.job = None
        self.commandPrefix = None          # how to start the CLI; None: PythonSlicer -m DVTStagingLib
        self.jobParentFolder = None        # where job folders go; None: the system temp folder
        self._jobFolders = []
        self._resultFolders = {}            # volume node ID -> output folder of its last successful run
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self._onSceneStartClose)

    def getParameterNode(self):
        return DVTStagingParameterNode(super().getParameterNode())

    def cleanup(self) -> None:
        """Remove the job folders (inputs, outputs) of the runs of this Logic."""
        self.cancel()
        for folder in self._jobFolders:
            shutil.rmtree(folder, ignore_errors=True)
        self._jobFolders = []
        self.removeObservers()

    @staticmethod
    def coreVolume(volumeNode):
        """The study as a core Volume (exact geometry), for checks and staging."""
        from DVTStagingLib.mrml_adapter import volume_from_node

        return volume_from_node(volumeNode)

    # -- dependencies ------------------------------------------------------------------------
    @staticmethod
    def requirementsFile() -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")

    def ensureDependencies(self, askUser: bool = True) -> bool:
        """torch from the PyTorch extension, the rest from requirements.txt; asks before installing."""
        from DVTStagingLib.requirements_check import missing_requirements, read_requirements, torch_available

        if not torch_available():
            try:
                import PyTorchUtils
            except ImportError:
                raise RuntimeError(_("DVT Staging needs the PyTorch extension: install it with the Extensions "
                                     "Manager and restart Slicer.")) from None
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askUser,
                                                              torchVersionRequirement=">=2.1") is None:
                return False
        missing = missing_requirements(read_requirements(self.requirementsFile()))
        if not missing:
            return True
        if askUser and not slicer.util.confirmOkCancelDisplay(
                _("DVT Staging needs these Python packages, which will be downloaded and installed now:\n{packages}")
                .format(packages="\n".join(missing))):
            return False
        try:
            from slicer.packaging import pip_ensure
        except ImportError:   # Slicer before pip_ensure
            pip_ensure = None
        if pip_ensure is not None:
            pip_ensure(missing, prompt_install=False, requester="DVTStaging")   # the user was just asked
        else:
            slicer.util.pip_install(" ".join(f'"{r}"' for r in missing))
        return not missing_requirements(read_requirements(self.requirementsFile()))

    # -- ROIs -------------------------------------------------------------------------------------
    def roiNodes(self, volumeNode) -> list:
        """The thrombus ROIs of a study: those referenced by the volume, else every ROI in the scene."""
        if volumeNode is None:
            return []
        n = volumeNode.GetNumberOfNodeReferences(ROLE_ROI)
        nodes = [volumeNode.GetNthNodeReference(ROLE_ROI, i) for i in range(n)]
        nodes = [node for node in nodes if node is not None]
        if nodes:
            return nodes
        scene = volumeNode.GetScene()
        return [scene.GetNthNodeByClass(i, "vtkMRMLMarkupsROINode")
                for i in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode"))]

    def addROI(self, volumeNode, name: str = "", center=None, size=None, interactive: bool = False):
        """A new thrombus ROI of the study: centred in the volume unless told otherwise, or (interactive)
        left undefined for the user to draw in a slice view."""
        scene = volumeNode.GetScene()
        name = name or scene.GenerateUniqueName("thrombus")
        roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
        roi.CreateDefaultDisplayNodes()
        volumeNode.AddNodeReferenceID(ROLE_ROI, roi.GetID())
        self._placeInStudy(volumeNode, [roi])
        if interactive:
            return roi
        if center is None:
            bounds = [0.0] * 6
            volumeNode.GetRASBounds(bounds)
            center = [(bounds[2 * a] + bounds[2 * a + 1]) / 2 for a in range(3)]
        roi.SetCenter(*center)
        roi.SetSize(*(size or (20.0, 20.0, 40.0)))
        return roi

    def removeROI(self, volumeNode, roiNode) -> None:
        if volumeNode is not None:
            for i in reversed(range(volumeNode.GetNumberOfNodeReferences(ROLE_ROI))):
                if volumeNode.GetNthNodeReferenceID(ROLE_ROI, i) == roiNode.GetID():
                    volumeNode.RemoveNthNodeReferenceID(ROLE_ROI, i)
        roiNode.GetScene().RemoveNode(roiNode)

    def _roiNodesFromFile(self, volumeNode, path, reuse: Optional[dict] = None) -> list:
        """ROI nodes for the boxes of a .mrk.json file; nodes named in `reuse` are updated, not duplicated."""
        from DVTStagingLib.mrml_adapter import roi_to_node
        from DVTStagingLib.roi import read_rois

        scene = volumeNode.GetScene()
        nodes = []
        for roi in read_rois(path):
            existing = scene.GetNodeByID((reuse or {}).get(roi.name, ""))
            if existing is not None:
                nodes.append(existing)   # the user's own ROI: keep what they drew
                continue
            node = roi_to_node(roi, scene)
            node.CreateDefaultDisplayNodes()
            volumeNode.AddNodeReferenceID(ROLE_ROI, node.GetID())
            nodes.append(node)
        self._placeInStudy(volumeNode, nodes)
        return nodes

    # -- background runs ----------------------------------------------------------------------
    def isRunning(self) -> bool:
        return self.job is not None

    def _newJobFolder(self):
        _annotation, _background, stage_run, _worklist = _core()
        folder = stage_run.new_job_folder(self.jobParentFolder)
        self._jobFolders.append(folder)
        return folder

    def _prefix(self):
        # In Slicer, PythonSlicer (on PATH there) runs Slicer's own Python with its packages; outside, this Python.
        _annotation, _background, stage_run, _worklist = _core()
        return self.commandPrefix or stage_run.cli_prefix(shutil.which("PythonSlicer") or sys.executable)

    def startStaging(self, volumeNode, roiNodes=None, autoDetect: bool = False, model: Optional[str] = None,
                     device: str = "auto", onProgress=None, onFinished=None):
        """Write the study and ROIs to a job folder and run `dvt-staging stage` in the background.

        `onFinished(StagingResultNodes or None, error message or None)` is called from `poll()`.
        """
        from DVTStagingLib.mrml_adapter import roi_from_node
        from DVTStagingLib.roi import roi_names_unique

        _annotation, background, stage_run, _worklist = _core()
        if self.job is not None:
            raise RuntimeError(_("A staging run is in progress; cancel it first."))
        if volumeNode is None:
            raise ValueError(_("Select a BTI volume to stage."))
        roiNodes = list(roiNodes if roiNodes is not None else ([] if autoDetect else self.roiNodes(volumeNode)))
        if not roiNodes and not autoDetect:
            raise ValueError(_("Place a thrombus ROI (or use Auto-detect) before staging."))
        undrawn = [n.GetName() for n in roiNodes if min(n.GetSize()) <= 0]
        if undrawn:
            raise ValueError(_("ROI {names} is not drawn yet: finish placing it or delete it.").format(
                names=", ".join(undrawn)))
        folder = self._newJobFolder()
        rois = roi_names_unique([roi_from_node(n) for n in roiNodes])   # results are keyed by name
        image, roiPath = stage_run.write_stage_inputs(folder, self.coreVolume(volumeNode), rois)
        out = folder / stage_run.OUTPUT_FOLDER
        argv = stage_run.stage_command(image, out, roi=roiPath, auto_roi=roiPath is None, model=model,
                                       device=device, prefix=self._prefix())
        process = background.BackgroundProcess(argv, env=stage_run.cli_environment()).start()
        self.job = _BackgroundJob("stage", process, folder, out, volumeNode.GetID(),
                                  {r.name: n.GetID() for r, n in zip(rois, roiNodes)}, onProgress, onFinished)
        logging.info(f"DVTStaging: started {' '.join(argv)}")
        return self.job

    def startDetection(self, volumeNode, device: str = "auto", onProgress=None, onFinished=None):
        """Run `dvt-staging detect` in the background; `onFinished(roiNodes, error)` from `poll()`."""
        _annotation, background, stage_run, _worklist = _core()
        if self.job is not None:
            raise RuntimeError(_("A run is in progress; cancel it first."))
        folder = self._newJobFolder()
        image, _rois = stage_run.write_stage_inputs(folder, self.coreVolume(volumeNode), None)
        out = folder / stage_run.OUTPUT_FOLDER
        argv = stage_run.detect_command(image, out, device=device, prefix=self._prefix())
        process = background.BackgroundProcess(argv, env=stage_run.cli_environment()).start()
        self.job = _BackgroundJob("detect", process, folder, out, volumeNode.GetID(), {}, onProgress, onFinished)
        return self.job

    def poll(self) -> bool:
        """Forward progress and, once the run ended, load its results; True while it still runs."""
        job = self.job
        if job is None:
            return False
        job.process.poll(on_progress=job.onProgress)
        if not job.process.finished:
            return True
        self.job = None
        self._finish(job)
        return False

    def cancel(self) -> None:
        """Stop the running job (its whole process tree, within a second); its callback gets 'Cancelled'."""
        job = self.job
        if job is None:
            return
        job.process.cancel()
        self.job = None
        self._finish(job)

    def _onSceneStartClose(self, caller=None, event=None) -> None:
        if self.job is not None:
            self.job.closedScene = True
            self.cancel()

    def _finish(self, job) -> None:
        job.process.poll(on_progress=job.onProgress)
        nodes, error = None, None
        volumeNode = slicer.mrmlScene.GetNodeByID(job.volumeNodeID)
        if job.closedScene or volumeNode is None:
            error = _("Cancelled: the study was closed.")
        elif job.process.cancelled:
            error = _("Cancelled.")
        elif job.process.returncode != 0:
            error = job.process.error_message()
        else:
            try:
                if job.kind == "stage":
                    nodes = self.loadResults(job.outFolder, volumeNode, job.roiNodeIDs)
                    self._resultFolders[job.volumeNodeID] = job.outFolder
                else:
                    nodes = self._roiNodesFromFile(volumeNode, job.outFolder / "rois.mrk.json")
            except Exception as exc:   # a bad output folder is reported, not raised into the Qt timer
                logging.exception("DVTStaging: loading the results failed")
                error = _("Cannot load the results: {error}").format(error=exc)
        if job.onFinished:
            job.onFinished(nodes, error)

    def stage(self, volumeNode, roiNodes=None, autoDetect: bool = False, model: Optional[str] = None,
              device: str = "auto", onProgress=None, timeout: Optional[float] = None) -> StagingResultNodes:
        """The synchronous path (scripts, tests): run, wait, load; raises on failure."""
        outcome = {}
        job = self.startStaging(volumeNode, roiNodes, autoDetect, model, device, onProgress,
                                onFinished=lambda nodes, error: outcome.update(nodes=nodes, error=error))
        try:
            job.process.wait(timeout=timeout, on_progress=onProgress)
        except TimeoutError:
            self.cancel()
            raise
        while self.poll():
            pass
        if outcome.get("error"):
            raise RuntimeError(outcome["error"])
        return outcome["nodes"]

    # -- results into the scene ---------------------------------------------------------------
    def loadResults(self, outputFolder, volumeNode, roiNodeIDs: Optional[dict] = None) -> StagingResultNodes:
        """Nodes for a `dvt-staging stage` output folder: ROIs, attention volumes, table, per-slice chart."""
        _annotation, _background, stage_run, _worklist = _core()
        result = stage_run.read_stage_result(outputFolder)
        self.removeResults(volumeNode)
        scene = volumeNode.GetScene()
        if result.rois_path.is_file():
            roiNodes = self._roiNodesFromFile(volumeNode, result.rois_path, reuse=roiNodeIDs)
        else:
            roiNodes = [scene.GetNodeByID(i) for i in (roiNodeIDs or {}).values()]
        byName = {n.GetName(): n for n in roiNodes if n is not None}
        byName.update({name: scene.GetNodeByID(i) for name, i in (roiNodeIDs or {}).items()
                       if scene.GetNodeByID(i) is not None})
        for roiResult in result.rois:
            node = byName.get(roiResult.name)
            if node is not None:
                self._storeROIResult(node, roiResult)
        resultROIs = [byName[r.name] for r in result.rois if r.name in byName]

        attention = {}
        for which in ATTENTION_MAPS:
            path = result.attention_path(which)
            if path is not None:
                attention[which] = self._attentionVolume(volumeNode, path, which)
        table = self._resultsTable(volumeNode, result)
        chart, sliceTables = self._sliceChart(volumeNode, result)
        volumeNode.SetAttribute(_core()[0].ATTR_STUDY_STAGED, "1")
        folderItem = self._placeInStudy(volumeNode, resultROIs + [table, chart] + sliceTables + list(attention.values()))
        parameterNode = self.getParameterNode()
        if parameterNode.inputVolume is None or parameterNode.inputVolume == volumeNode:
            parameterNode.resultsTable = table
            self.showAttention(volumeNode, parameterNode.attentionMap, parameterNode.showAttention,
                               parameterNode.attentionOpacity)
        return StagingResultNodes(result, resultROIs, table, chart, sliceTables, attention, folderItem)

    def removeResults(self, volumeNode) -> None:
        """Drop the result nodes of an earlier run of this study (ROIs and labels stay)."""
        scene = volumeNode.GetScene()
        doomed = [volumeNode.GetNodeReference(ROLE_TABLE)]
        doomed += [volumeNode.GetNodeReference(ROLE_ATTENTION + m) for m in ATTENTION_MAPS]
        chart = volumeNode.GetNodeReference(ROLE_CHART)
        if chart is not None:
            for i in range(chart.GetNumberOfPlotSeriesNodes()):
                series = chart.GetNthPlotSeriesNode(i)
                doomed += [series, series.GetTableNode() if series else None]
            doomed.append(chart)
        for node in {id(n): n for n in doomed if n is not None}.values():
            if scene.IsNodePresent(node):
                scene.RemoveNode(node)

    def _storeROIResult(self, roiNode, roiResult) -> None:
        annotation = _core()[0]
        roiNode.SetAttribute(annotation.ATTR_PREDICTED_STAGE, roiResult.stage)
        roiNode.SetAttribute(annotation.ATTR_PROBABILITIES, json.dumps(roiResult.probabilities))
        ratio = roiResult.thrombus_muscle_ratio
        roiNode.SetAttribute(annotation.ATTR_RATIO, "" if ratio is None else repr(float(ratio)))

    def roiResult(self, roiNode) -> Optional[dict]:
        """The staged result stored on a ROI node (None before staging)."""
        annotation = _core()[0]
        stage = roiNode.GetAttribute(annotation.ATTR_PREDICTED_STAGE)
        if not stage:
            return None
        ratio = roiNode.GetAttribute(annotation.ATTR_RATIO)
        return {"stage": stage, "probabilities": json.loads(roiNode.GetAttribute(annotation.ATTR_PROBABILITIES) or "{}"),
                "thrombus_muscle_ratio": float(ratio) if ratio else None}

    def _attentionVolume(self, volumeNode, path, which):
        from DVTStagingLib.mrml_adapter import update_volume_node
        from DVTStagingLib.volume import read_volume

        scene = volumeNode.GetScene()
        attention = read_volume(path)
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                       scene.GenerateUniqueName(f"{volumeNode.GetName()} attention ({which})"))
        update_volume_node(node, attention)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        colorNode = self.heatColorNode(scene)
        if colorNode is not None:
            display.SetAndObserveColorNodeID(colorNode.GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)   # the map is 0-1: equal values look the same in every study
        # Below 5% the map is transparent: the study stays readable outside the attended region.
        display.SetApplyThreshold(True)
        display.SetThreshold(ATTENTION_VISIBLE_FROM, 1.0)
        volumeNode.SetNodeReferenceID(ROLE_ATTENTION + which, node.GetID())
        return node

    @staticmethod
    def heatColorNode(scene):
        for name in HEAT_COLOR_NODE_NAMES:
            node = scene.GetFirstNodeByName(name)
            if node is not None and node.IsA("vtkMRMLColorNode"):
                return node
        return None

    def attentionNode(self, volumeNode, which: str = "local-to-global"):
        return volumeNode.GetNodeReference(ROLE_ATTENTION + which) if volumeNode else None

    def showAttention(self, volumeNode, which: str = "local-to-global", visible: bool = True,
                      opacity: float = 0.4) -> None:
        """The attention map as foreground over the study in every slice view (hidden: no foreground)."""
        attention = self.attentionNode(volumeNode, which)
        scene = volumeNode.GetScene()
        for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            if not composite.GetBackgroundVolumeID():
                composite.SetBackgroundVolumeID(volumeNode.GetID())
            ours = {self.attentionNode(volumeNode, m).GetID() for m in ATTENTION_MAPS if self.attentionNode(volumeNode, m)}
            if visible and attention is not None:
                composite.SetForegroundVolumeID(attention.GetID())
                composite.SetForegroundOpacity(float(opacity))
            elif composite.GetForegroundVolumeID() in ours:
                composite.SetForegroundVolumeID(None)

    def _resultsTable(self, volumeNode, result):
        scene = volumeNode.GetScene()
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{volumeNode.GetName()} staging"))
        columns = [("name", vtk.vtkStringArray, _("ROI")), ("stage", vtk.vtkStringArray, _("Stage")),
                   ("p_acute", vtk.vtkDoubleArray, _("P(acute)")), ("p_subacute", vtk.vtkDoubleArray, _("P(sub-acute)")),
                   ("p_chronic", vtk.vtkDoubleArray, _("P(chronic)")),
                   ("thrombus_muscle_ratio", vtk.vtkDoubleArray, _("Thrombus/muscle ratio"))]
        rows = result.table_rows()
        for key, arrayType, title in columns:
            array = arrayType()
            array.SetName(key)
            for row in rows:
                array.InsertNextValue(row[key])
            table.AddColumn(array)
            table.SetColumnTitle(key, title)
        table.SetAttribute("DVTStaging.StudyStage", result.stage)
        table.SetAttribute("DVTStaging.Model", json.dumps(result.model))
        table.SetAttribute("DVTStaging.Device", result.device)
        volumeNode.SetNodeReferenceID(ROLE_TABLE, table.GetID())
        return table

    def _sliceChart(self, volumeNode, result):
        scene = volumeNode.GetScene()
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode",
                                        scene.GenerateUniqueName(f"{volumeNode.GetName()} per-slice probabilities"))
        axes = sorted({r.slice_axis for r in result.rois}) or ["k"]
        chart.SetTitle(_("Per-slice stage probabilities"))
        chart.SetXAxisTitle(_("slice index ({axes})").format(axes=", ".join(axes)))
        chart.SetYAxisTitle(_("probability"))
        chart.SetYAxisRangeAuto(False)
        chart.SetYAxisRange(0.0, 1.0)
        tables = []
        for n, roi in enumerate(result.rois):
            table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{roi.name} per-slice"))
            index = vtk.vtkDoubleArray()
            index.SetName("slice")
            for s in roi.slices:
                index.InsertNextValue(s.index)
            table.AddColumn(index)
            for stage in ("acute", "subacute", "chronic"):
                values = vtk.vtkDoubleArray()
                values.SetName(stage)
                for s in roi.slices:
                    values.InsertNextValue(s.probabilities[stage])
                table.AddColumn(values)
                series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{roi.name} {stage}")
                series.SetAndObserveTableNodeID(table.GetID())
                series.SetXColumnName("slice")
                series.SetYColumnName(stage)
                series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
                series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
                series.SetLineStyle(getattr(slicer.vtkMRMLPlotSeriesNode,
                                            f"LineStyle{SERIES_LINE_STYLES[n % len(SERIES_LINE_STYLES)]}"))
                series.SetColor(*STAGE_COLORS[stage])
                chart.AddAndObservePlotSeriesNodeID(series.GetID())
            tables.append(table)
        volumeNode.SetNodeReferenceID(ROLE_CHART, chart.GetID())
        series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
        return chart, tables + series

    # -- subject hierarchy ----------------------------------------------------------------------
    def _placeInStudy(self, volumeNode, nodes) -> int:
        """Put nodes in a 'DVT staging' folder beside the volume, under its study; returns the folder item."""
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volumeNode.GetScene())
        volumeItem = sh.GetItemByDataNode(volumeNode)
        if not volumeItem:   # outside the application nodes do not join the hierarchy by themselves
            volumeItem = sh.CreateItem(sh.GetSceneItemID(), volumeNode)
        studyItem = sh.GetItemParent(volumeItem)
        folderName = _("DVT staging: {name}").format(name=volumeNode.GetName())
        folderItem = sh.GetItemChildWithName(studyItem, folderName)
        if not folderItem:
            folderItem = sh.CreateFolderItem(studyItem, folderName)
        for node in nodes:
            if node is None:
                continue
            item = sh.GetItemByDataNode(node)
            if item:
                sh.SetItemParent(item, folderItem)
            else:
                sh.CreateItem(folderItem, node)
        return folderItem

    # -- annotation ----------------------------------------------------------------------------
    def setTrueStage(self, roiNode, stage: str) -> None:
        annotation = _core()[0]
        roiNode.SetAttribute(annotation.ATTR_TRUE_STAGE, annotation.check_stage(stage))

    def trueStage(self, roiNode) -> str:
        return roiNode.GetAttribute(_core()[0].ATTR_TRUE_STAGE) or ""

    def setReviewed(self, volumeNode, reviewed: bool) -> None:
        volumeNode.SetAttribute(_core()[0].ATTR_REVIEWED, "1" if reviewed else "0")

    def reviewed(self, volumeNode) -> bool:
        return volumeNode.GetAttribute(_core()[0].ATTR_REVIEWED) == "1"

    def setNotes(self, volumeNode, notes: str) -> None:
        volumeNode.SetAttribute(_core()[0].ATTR_NOTES, notes or "")

    def notes(self, volumeNode) -> str:
        return volumeNode.GetAttribute(_core()[0].ATTR_NOTES) or ""

    def caseAnnotation(self, volumeNode):
        """The study's labels as a core CaseAnnotation (what the worklist saves)."""
        annotation = _core()[0]
        rois = self.roiNodes(volumeNode)
        return annotation.CaseAnnotation(
            true_stages={r.GetName(): self.trueStage(r) for r in rois},
            predicted_stages={r.GetName(): r.GetAttribute(annotation.ATTR_PREDICTED_STAGE)
                              for r in rois if r.GetAttribute(annotation.ATTR_PREDICTED_STAGE)},
            reviewed=self.reviewed(volumeNode), notes=self.notes(volumeNode))

    def applyCaseAnnotation(self, volumeNode, caseAnnotation) -> None:
        for roi in self.roiNodes(volumeNode):
            if roi.GetName() in caseAnnotation.true_stages:
                self.setTrueStage(roi, caseAnnotation.true_stages[roi.GetName()])
            if roi.GetName() in caseAnnotation.predicted_stages:
                roi.SetAttribute(_core()[0].ATTR_PREDICTED_STAGE, caseAnnotation.predicted_stages[roi.GetName()])
        self.setReviewed(volumeNode, caseAnnotation.reviewed)
        self.setNotes(volumeNode, caseAnnotation.notes)

    # -- worklist ------------------------------------------------------------------------------
    def saveStudy(self, volumeNode, worklist, entry):
        """Keep the study's ROIs, labels and last result beside it (the worklist's case folder)."""
        from DVTStagingLib.mrml_adapter import roi_from_node

        rois = [roi_from_node(n) for n in self.roiNodes(volumeNode)]
        return worklist.save(entry, self.caseAnnotation(volumeNode), rois=rois,
                             result_folder=self._resultFolders.get(volumeNode.GetID()))

    def exportStudies(self, volumeNodes, outFolder, keepIdentifiers=False, overwrite=False):
        """Export the studies (ROIs, true stages, reviewed flag, last results) as a dataset; returns it."""
        from DVTStagingLib.export import ExportStudy, export_cases
        from DVTStagingLib.mrml_adapter import roi_from_node, volume_from_node

        studies = []
        for volumeNode in volumeNodes:
            roiNodes = self.roiNodes(volumeNode)
            results = {r.GetName(): self.roiResult(r) for r in roiNodes if self.roiResult(r)}
            uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
            storage = volumeNode.GetStorageNode()
            source = uids[0] if uids else (storage.GetFileName() if storage and storage.GetFileName() else
                                           f"{volumeNode.GetID()}/{volumeNode.GetName()}")
            studies.append(ExportStudy(
                volume=volume_from_node(volumeNode), rois=[roi_from_node(r) for r in roiNodes],
                labels=[{"roi": r.GetName(), "stage": self.trueStage(r) or None} for r in roiNodes],
                status="reviewed" if self.reviewed(volumeNode) else None, prediction=results or None,
                notes=self.notes(volumeNode), source_id=source))
        return export_cases(studies, outFolder, keep_identifiers=keepIdentifiers, overwrite=overwrite,
                            progress=False)

    def openStudy(self, worklist, entry):
        """Load a worklist study with the ROIs and labels saved for it; returns the volume node."""
        scene = slicer.mrmlScene
        if entry.kind == "dicom-series":
            from DICOMLib import DICOMUtils

            nodeIDs = DICOMUtils.loadSeriesByUID([entry.id])
            volumeNode = next((scene.GetNodeByID(i) for i in nodeIDs
                               if scene.GetNodeByID(i).IsA("vtkMRMLScalarVolumeNode")), None)
        elif entry.kind == "file":
            volumeNode = slicer.modules.volumes.logic().AddArchetypeVolume(str(entry.path), Path(entry.name).name)
        else:
            from DVTStagingLib.mrml_adapter import update_volume_node
            from DVTStagingLib.volume import read_volume

            volumeNode = update_volume_node(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", entry.name),
                                            read_volume(entry.path))
            volumeNode.CreateDefaultDisplayNodes()
        if volumeNode is None:
            raise RuntimeError(_("Cannot load study {name}").format(name=entry.name))
        saved = worklist.saved_rois(entry)
        if saved is not None:
            self._roiNodesFromFile(volumeNode, saved)
        self.applyCaseAnnotation(volumeNode, worklist.annotation(entry))
        self.getParameterNode().inputVolume = volumeNode
        return volumeNode

    def worklistFromDICOMDatabase(self):
        """One worklist entry per MR series of Slicer's DICOM database; labels kept in the database folder."""
        from DVTStagingLib.worklist import StudyEntry, Worklist

        db = slicer.dicomDatabase
        if db is None or not db.isOpen:
            raise RuntimeError(_("The DICOM database is not open."))
        entries = []
        for patient in db.patients():
            for study in db.studiesForPatient(patient):
                for series in db.seriesForStudy(study):
                    files = db.filesForSeries(series, 1)
                    if not files or db.fileValue(files[0], "0008,0060") not in ("MR", ""):
                        continue
                    name = " ".join(v for v in (db.fileValue(files[0], "0010,0010"), db.fileValue(files[0], "0008,0020"),
                                                db.fileValue(files[0], "0008,103E")) if v)
                    entries.append(StudyEntry(series, name or series, None, "dicom-series"))
        if not entries:
            raise RuntimeError(_("The DICOM database holds no MR series."))
        return Worklist(entries, Path(db.databaseDirectory) / "DVTStaging")

    # -- sample data -------------------------------------------------------------------------------
    def loadSampleStudy(self):
        """The phantom sample study (generated into Slicer's cache on first use) with its thrombus ROI."""
        from DVTStagingLib.sample_study import IMAGE_FILE, SAMPLE_NAME, ensure_sample_study

        folder = ensure_sample_study(slicer.app.cachePath)
        volumeNode = slicer.modules.volumes.logic().AddArchetypeVolume(str(folder / IMAGE_FILE), SAMPLE_NAME)
        for roiFile in sorted(folder.glob("thrombus-*.mrk.json")):
            self._roiNodesFromFile(volumeNode, roiFile)
        return volumeNode


#
# Test
#
class DVTStagingTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (registered with slicer_add_python_unittest)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_coreVolumeGeometry()
        self.setUp()
        self.test_sampleStudyAndAnnotation()
        self.setUp()
        self.test_stagePhantom()

    def test_coreVolumeGeometry(self):
        import numpy as np

        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "test")
        node.SetSpacing(0.8, 0.9, 2.5)
        node.SetOrigin(10.0, -20.0, 30.0)
        slicer.util.updateVolumeFromArray(node, np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
        volume = DVTStagingLogic.coreVolume(node)
        self.assertEqual(volume.shape_ijk, (6, 5, 4))
        self.assertTrue(np.allclose(volume.spacing, [0.8, 0.9, 2.5]))
        self.delayDisplay("Core volume geometry matches the node")

    def test_sampleStudyAndAnnotation(self):
        logic = DVTStagingLogic()
        volumeNode = logic.loadSampleStudy()
        rois = logic.roiNodes(volumeNode)
        self.assertEqual(len(rois), 1)
        logic.setTrueStage(rois[0], "acute")
        logic.setReviewed(volumeNode, True)
        self.assertEqual(logic.caseAnnotation(volumeNode).status, "reviewed")
        self.delayDisplay("Sample study loads with its ROI; labels are kept on the nodes")

    def test_stagePhantom(self):
        from DVTStagingLib.catalog import bundled_dir

        if not (bundled_dir() / "vdpf-small-phantom.json").is_file():
            self.delayDisplay("Skipped staging: the bundled model is not installed")
            return
        logic = DVTStagingLogic()
        volumeNode = logic.loadSampleStudy()
        results = logic.stage(volumeNode, device="cpu", timeout=600)
        self.assertEqual(results.tableNode.GetNumberOfRows(), len(logic.roiNodes(volumeNode)))
        self.assertIn(results.result.stage, ("acute", "subacute", "chronic"))
        attention = results.attentionNodes["local-to-global"]
        self.assertEqual(attention.GetImageData().GetDimensions(), volumeNode.GetImageData().GetDimensions())
        logic.cleanup()
        logging.info("DVTStaging self-test passed")
        self.delayDisplay("Staging of the phantom study passed")
