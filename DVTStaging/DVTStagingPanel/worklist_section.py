"""The worklist and export part of the panel: a folder or the DICOM database as a list of studies with
their status and last result, in folder order or "uncertain first" (studies without a result are staged in
the background to be ordered), moving between them (each study's labels and thrombus segmentation saved on
the way, and on Save study), and dataset export."""

import qt

import slicer
from slicer.i18n import tr as _

from DVTStagingLib.research.worklist import FOLDER_ORDER, UNCERTAIN_FIRST, result_entropy
from DVTStagingLib.slicer.worklist_staging import WorklistStager


class WorklistSection:
    def __init__(self, widget):
        self.widget = widget
        self.worklist = None
        self.studyNodeID = None   # the volume the worklist opened: what Next saves, whatever the selector shows
        ui = widget.ui
        # directorySelected, not directoryChanged: choosing the same folder again must reload it.
        ui.worklistFolderButton.connect("directorySelected(QString)", self.onFolder)
        ui.worklistFromDICOMButton.connect("clicked(bool)", self.onDICOMDatabase)
        ui.worklistTableWidget.connect("cellDoubleClicked(int,int)", self.onRowOpen)
        ui.previousStudyButton.connect("clicked(bool)", self.onPrevious)
        ui.nextStudyButton.connect("clicked(bool)", self.onNext)
        ui.saveStudyButton.connect("clicked(bool)", self.onSave)
        ui.exportButton.connect("clicked(bool)", self.onExport)
        ui.worklistOrderComboBox.clear()
        ui.worklistOrderComboBox.addItem(_("folder order"), FOLDER_ORDER)
        ui.worklistOrderComboBox.addItem(_("uncertain first"), UNCERTAIN_FIRST)
        ui.worklistOrderComboBox.connect("currentIndexChanged(int)", self.onOrderChanged)
        # Studies without a result are staged one at a time, as the panel's own runs are (same worker or server);
        # never while the panel's own run is going.
        self.stager = WorklistStager(widget.logic.jobs, busy=widget.logic.isRunning, is_open=self.isOpen)
        self._stagerTimer = qt.QTimer()
        self._stagerTimer.setInterval(500)
        self._stagerTimer.connect("timeout()", self.onStagerTimer)

    def cleanup(self) -> None:
        self._stagerTimer.stop()
        self.stager.stop()

    def _study(self):
        """The volume node of the worklist's current study, while it is in the scene."""
        return slicer.mrmlScene.GetNodeByID(self.studyNodeID) if self.studyNodeID else None

    def isOpen(self, entry) -> bool:
        """Whether `entry` is the worklist study open in the scene."""
        return bool(self.worklist and self._study() and self.worklist.current == entry)

    def onFolder(self, folder) -> None:
        from DVTStagingLib.research.worklist import Worklist

        if self.widget.ensure("worklist"):
            with slicer.util.tryWithErrorDisplay(_("Cannot open the worklist folder."), waitCursor=True):
                self.saveCurrent()             # the study open from the previous worklist keeps its edits
                self.open(Worklist.from_folder(folder))

    def onDICOMDatabase(self) -> None:
        if self.widget.ensure("worklist"):
            with slicer.util.tryWithErrorDisplay(_("Cannot read the DICOM database."), waitCursor=True):
                self.saveCurrent()
                self.open(self.widget.logic.worklistFromDICOMDatabase())

    def open(self, worklist) -> None:
        self.stager.stop()                    # the previous worklist's background staging
        self.worklist, self.studyNodeID = worklist, None
        self.worklist.sort(self.widget.ui.worklistOrderComboBox.currentData or FOLDER_ORDER)
        self.fill()
        self.stageInBackground()

    def onOrderChanged(self, index) -> None:
        if self.worklist:
            self.worklist.sort(self.widget.ui.worklistOrderComboBox.itemData(index) or FOLDER_ORDER)
            self.fill()
            self.stageInBackground()

    def stageInBackground(self) -> None:
        """Uncertain first: stage the studies without a result in the background, when a model can run here
        (nothing is installed without asking: then they wait at the end of the unlabeled studies)."""
        if self.worklist.order != UNCERTAIN_FIRST or any(self.widget.logic.installer.missing("stage")):
            return
        p = self.widget._parameterNode
        self.stager.start(self.worklist, model=p.modelId if p else None, detector=p.detectorId if p else None,
                          device=p.device if p else "auto")
        if self.stager.active:
            self._stagerTimer.start()
            self.showCounts()

    def onStagerTimer(self) -> None:
        if self.stager.poll() and self.worklist is self.stager.worklist:
            self.worklist.sort()              # with the new results; the open study stays current
            self.fill()
        if not self.stager.active:
            self._stagerTimer.stop()
            self.showCounts()

    def lastResult(self, entry) -> tuple:
        """(text, tooltip) of the study's last result for the table."""
        if entry.id in self.stager.failures:
            return _("not staged"), self.stager.failures[entry.id]
        result = self.worklist.last_result(entry)
        if result is None:
            return "-", ""
        uncertainty = result_entropy(result)
        return (_("{stage} (uncertainty {u:.2f})").format(stage=result.get("stage", "?"), u=uncertainty),
                result.get("reason") or "")

    def fill(self) -> None:
        table = self.widget.ui.worklistTableWidget
        table.setRowCount(0)
        table.setColumnCount(3)
        table.setHorizontalHeaderLabels([_("Study"), _("Status"), _("Last result")])
        for row, (entry, status) in enumerate(self.worklist.statuses()):
            table.insertRow(row)
            table.setItem(row, 0, qt.QTableWidgetItem(entry.name))
            table.setItem(row, 1, qt.QTableWidgetItem(status))
            text, tip = self.lastResult(entry)
            item = qt.QTableWidgetItem(text)
            item.setToolTip(tip)
            table.setItem(row, 2, item)
        self.showCounts()
        table.selectRow(self.worklist.index)

    def showCounts(self) -> None:
        counts = ", ".join(f"{k}: {v}" for k, v in self.worklist.counts().items())
        if self.stager.active:
            waiting = len(self.stager.queue) + (self.stager.running is not None)
            counts += _("; staging {n} in the background").format(n=waiting)
        self.widget.ui.worklistCountsLabel.text = counts

    def refreshRow(self) -> None:
        volume = self._study()
        if self.worklist and self.worklist.current and volume:
            status = self.widget.logic.caseAnnotation(volume).status
            self.widget.ui.worklistTableWidget.setItem(self.worklist.index, 1, qt.QTableWidgetItem(status))

    def saveCurrent(self) -> bool:
        """Save the worklist's open study (ROIs, labels, thrombus segmentation, last result); False if none."""
        volume = self._study()
        if not (self.worklist and self.worklist.current and volume):
            return False
        self.widget.logic.saveStudy(volume, self.worklist, self.worklist.current)
        return True

    def onSave(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot save the study."), waitCursor=True):
            if self.saveCurrent():
                self.widget.ui.statusLabel.text = _("Saved {name}.").format(name=self.worklist.current.name)
                self.refreshRow()
            else:
                self.widget.ui.statusLabel.text = _("Open a study of the worklist to save it.")

    def _goTo(self, move, atTheEnd: str = "") -> None:
        """Save the current study, move in the worklist (`move` gives the entry or None), open that study."""
        widget = self.widget
        with slicer.util.tryWithErrorDisplay(_("Cannot open the study."), waitCursor=True):
            self.saveCurrent()
            entry = move()
            if entry is None:
                widget.ui.statusLabel.text = atTheEnd
                return
            slicer.mrmlScene.Clear(False)   # runs scene-close handling: a running job is cancelled
            volume = widget.logic.openStudy(self.worklist, entry)
            self.studyNodeID = volume.GetID()
            widget.initializeParameterNode()
            widget._parameterNode.inputVolume = volume
            slicer.util.setSliceViewerLayers(background=volume, fit=True)
            self.fill()

    def onNext(self) -> None:
        if self.worklist:
            self._goTo(self.worklist.next, _("End of the worklist."))

    def onPrevious(self) -> None:
        if self.worklist:
            self._goTo(self.worklist.previous, _("Start of the worklist."))

    def onRowOpen(self, row, column) -> None:
        if self.worklist:
            self._goTo(lambda: self.worklist.go_to(self.worklist.entries[row].id))

    def onExport(self) -> None:
        """The selected study into a dataset folder (de-identified unless asked otherwise)."""
        volume = self.widget._parameterNode.inputVolume if self.widget._parameterNode else None
        if volume is None:
            slicer.util.errorDisplay(_("Select a study to export."))
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Dataset folder"))
        if not folder or not self.widget.ensure("export"):
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            dataset = self.widget.logic.exportStudies([volume], folder,
                                                      keepIdentifiers=self.widget.ui.keepIdentifiersCheckBox.checked)
            self.widget.ui.statusLabel.text = _("Exported to {folder} ({n} cases in the dataset).").format(
                folder=folder, n=len(dataset.cases))
