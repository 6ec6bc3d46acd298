"""The worklist and export part of the panel: a folder or the DICOM database as a list of studies with
their status, moving between them (each study's labels saved on the way), and dataset export."""

import qt

import slicer
from slicer.i18n import tr as _


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
        ui.exportButton.connect("clicked(bool)", self.onExport)

    def _study(self):
        """The volume node of the worklist's current study, while it is in the scene."""
        return slicer.mrmlScene.GetNodeByID(self.studyNodeID) if self.studyNodeID else None

    def onFolder(self, folder) -> None:
        from DVTStagingLib.research.worklist import Worklist

        if self.widget.ensure("worklist"):
            with slicer.util.tryWithErrorDisplay(_("Cannot open the worklist folder."), waitCursor=True):
                self.worklist, self.studyNodeID = Worklist.from_folder(folder), None
                self.fill()

    def onDICOMDatabase(self) -> None:
        if self.widget.ensure("worklist"):
            with slicer.util.tryWithErrorDisplay(_("Cannot read the DICOM database."), waitCursor=True):
                self.worklist, self.studyNodeID = self.widget.logic.worklistFromDICOMDatabase(), None
                self.fill()

    def fill(self) -> None:
        table = self.widget.ui.worklistTableWidget
        table.setRowCount(0)
        table.setColumnCount(2)
        table.setHorizontalHeaderLabels([_("Study"), _("Status")])
        for row, (entry, status) in enumerate(self.worklist.statuses()):
            table.insertRow(row)
            table.setItem(row, 0, qt.QTableWidgetItem(entry.name))
            table.setItem(row, 1, qt.QTableWidgetItem(status))
        self.widget.ui.worklistCountsLabel.text = ", ".join(f"{k}: {v}" for k, v in self.worklist.counts().items())
        table.selectRow(self.worklist.index)

    def refreshRow(self) -> None:
        volume = self._study()
        if self.worklist and self.worklist.current and volume:
            status = self.widget.logic.caseAnnotation(volume).status
            self.widget.ui.worklistTableWidget.setItem(self.worklist.index, 1, qt.QTableWidgetItem(status))

    def _goTo(self, move, atTheEnd: str = "") -> None:
        """Save the current study, move in the worklist (`move` gives the entry or None), open that study."""
        widget, volume = self.widget, self._study()
        with slicer.util.tryWithErrorDisplay(_("Cannot open the study."), waitCursor=True):
            if self.worklist.current and volume:
                widget.logic.saveStudy(volume, self.worklist, self.worklist.current)
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
