"""The annotation and result labels of the panel: true stage per ROI, reviewed, notes, the ROI's answer."""

from slicer.i18n import tr as _

from DVTStagingLib.core.stages import STAGES


class AnnotationSection:
    def __init__(self, widget):
        self.widget = widget
        ui = widget.ui
        ui.trueStageComboBox.clear()
        ui.trueStageComboBox.addItem(_("(not labeled)"), "")
        for stage in STAGES:
            ui.trueStageComboBox.addItem(stage, stage)
        ui.trueStageComboBox.connect("currentIndexChanged(int)", self.onTrueStageChanged)
        ui.reviewedCheckBox.connect("toggled(bool)", self.onReviewedChanged)
        ui.notesTextEdit.connect("textChanged()", self.onNotesChanged)

    @property
    def _editing(self) -> bool:
        """A change made by the panel itself (showing a study) is not an annotator's edit."""
        return self.widget._parameterNode is None or self.widget._updatingGUI

    def show(self, volume, roiNode) -> None:
        ui, logic = self.widget.ui, self.widget.logic
        result = logic.roiResult(roiNode) if roiNode else None
        if result:
            probs = ", ".join(f"{c} {result['probabilities'][c]:.0%}" for c in STAGES)
            ui.roiResultLabel.text = f"<b>{result['stage']}</b> ({probs})"
            ratio = result["thrombus_muscle_ratio"]
            ui.ratioLabel.text = (_("{ratio:.2f} (published T1: acute 2.8±1.2, chronic 1.4±0.6)").format(ratio=ratio)
                                  if ratio is not None else _("not measurable (no muscle next to the ROI)"))
        else:
            ui.roiResultLabel.text = _("No result for this ROI yet.")
            ui.ratioLabel.text = "-"
        ui.trueStageComboBox.enabled = bool(roiNode)
        ui.trueStageComboBox.currentIndex = max(ui.trueStageComboBox.findData(logic.trueStage(roiNode) if roiNode
                                                                              else ""), 0)
        ui.reviewedCheckBox.enabled = ui.notesTextEdit.enabled = bool(volume)
        ui.reviewedCheckBox.checked = logic.reviewed(volume) if volume else False
        notes = logic.notes(volume) if volume else ""
        if ui.notesTextEdit.toPlainText() != notes:
            ui.notesTextEdit.setPlainText(notes)

    def onTrueStageChanged(self, index) -> None:
        roi = None if self._editing else self.widget._parameterNode.currentROI
        if roi:
            self.widget.logic.setTrueStage(roi, self.widget.ui.trueStageComboBox.itemData(index) or "")
            self.widget.worklistSection.refreshRow()

    def onReviewedChanged(self, checked) -> None:
        volume = None if self._editing else self.widget._parameterNode.inputVolume
        if volume:
            self.widget.logic.setReviewed(volume, checked)
            self.widget.worklistSection.refreshRow()

    def onNotesChanged(self) -> None:
        volume = None if self._editing else self.widget._parameterNode.inputVolume
        if volume:
            self.widget.logic.setNotes(volume, self.widget.ui.notesTextEdit.toPlainText())
