"""The "Compute on" part of the panel: this computer (the warm local worker) or a staging server, with its
address and token file.  The choice lives in Slicer's user settings (DVTStagingLib.slicer.compute), not in
the scene, and is read again at each Stage or Auto-detect."""

from slicer.i18n import tr as _

from DVTStagingLib.slicer import compute


class ComputeSection:
    def __init__(self, widget):
        self.widget = widget
        ui = widget.ui
        ui.computeOnComboBox.clear()
        ui.computeOnComboBox.addItem(_("this computer"), compute.LOCAL)
        ui.computeOnComboBox.addItem(_("server"), compute.SERVER)
        self.load()
        ui.computeOnComboBox.connect("currentIndexChanged(int)", self.save)
        ui.serverUrlLineEdit.connect("textChanged(QString)", self.save)
        ui.serverTokenPathLineEdit.connect("currentPathChanged(QString)", self.save)
        # An empty path is not valid input to ctkPathLineEdit (without nameFilters it validates with `.+`):
        # clearing the field emits validInputChanged(false) and never currentPathChanged("").
        ui.serverTokenPathLineEdit.connect("validInputChanged(bool)", self.save)

    @property
    def _widgets(self):
        ui = self.widget.ui
        return ui.computeOnComboBox, ui.serverUrlLineEdit, ui.serverTokenPathLineEdit

    def load(self) -> None:
        """The settings into the widgets (without writing them back)."""
        choice = compute.read_settings()
        combo, url, token = self._widgets
        previous = [w.blockSignals(True) for w in self._widgets]
        combo.currentIndex = max(combo.findData(choice.compute_on), 0)
        url.text = choice.server_url
        token.currentPath = choice.token_file
        for w, blocked in zip(self._widgets, previous):
            w.blockSignals(blocked)
        self.showServerFields()

    def save(self, *args) -> None:
        combo, url, token = self._widgets
        compute.write_settings(compute.ComputeSettings(combo.currentData or compute.LOCAL, url.text,
                                                       token.currentPath))
        self.showServerFields()

    def showServerFields(self) -> None:
        ui = self.widget.ui
        server = ui.computeOnComboBox.currentData == compute.SERVER
        for w in (ui.serverUrlLabel, ui.serverUrlLineEdit, ui.serverTokenLabel, ui.serverTokenPathLineEdit):
            w.setVisible(server)
