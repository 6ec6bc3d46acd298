"""The model and detector choices of the panel: the catalogue's staging models and detectors (bundled and user
ones) in two combo boxes that FOLLOW the parameter node (modelId, detectorId), so the panel always shows the
models that run: after a scene close (the ids back to the default), after a scene load (the scene's ids), and
an id the catalogue no longer has is shown as "<id> (missing)", never replaced by another model."""

import logging

from slicer.i18n import tr as _

KINDS = {"staging": "modelId", "detector": "detectorId"}   # catalogue kind -> parameter


class ModelSection:
    def __init__(self, widget):
        self.widget = widget
        self.entries = {kind: [] for kind in KINDS}   # the catalogue as last read (setup, Refresh)
        ui = widget.ui
        self.combos = {"staging": ui.modelComboBox, "detector": ui.detectorComboBox}
        self.tooltips = {kind: combo.toolTip for kind, combo in self.combos.items()}   # the .ui's
        ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        ui.detectorComboBox.connect("currentIndexChanged(int)", self.onDetectorChanged)
        ui.refreshModelsButton.connect("clicked(bool)", self.refresh)

    def refresh(self) -> None:
        """Read the catalogue again (a model trained or adapted since) and show it."""
        from DVTStagingLib.models.catalog import list_models

        for kind in KINDS:
            try:
                self.entries[kind] = list_models(kind)
            except Exception as exc:  # a broken catalogue folder must not break the panel
                logging.warning(f"DVTStaging: cannot list {kind} models: {exc}")
                self.entries[kind] = []
        self.show(self.widget._parameterNode)

    def missing(self, kind: str, chosen: str) -> bool:
        return bool(chosen) and chosen not in [e.id for e in self.entries[kind]]

    def items(self, kind: str, chosen: str) -> list:
        """(text, id) of each choice: the default, the catalogue's entries, and the chosen id when it is missing."""
        items = [(_("default (bundled)"), "")] + [(f"{e.id} ({e.source})", e.id) for e in self.entries[kind]]
        if self.missing(kind, chosen):
            items.append((_("{id} (missing)").format(id=chosen), chosen))
        return items

    def show(self, parameterNode) -> None:
        """Each combo box lists the choices and selects the parameter node's id (none: the default)."""
        for kind, parameter in KINDS.items():
            combo = self.combos[kind]
            chosen = getattr(parameterNode, parameter) if parameterNode else ""
            items = self.items(kind, chosen)
            blocked = combo.blockSignals(True)   # showing the parameter is not a choice of the user
            try:
                if [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count)] != items:
                    combo.clear()
                    for text, data in items:
                        combo.addItem(text, data)
                combo.currentIndex = max(combo.findData(chosen), 0)
            finally:
                combo.blockSignals(blocked)
            combo.toolTip = self.tooltips[kind] + (_(" '{id}' is not in the catalogue: choose another one, or add it "
                                                     "and Refresh.").format(id=chosen)
                                                   if self.missing(kind, chosen) else "")

    def _choose(self, kind: str, index: int) -> None:
        p = self.widget._parameterNode
        if p is not None and not self.widget._updatingGUI:
            setattr(p, KINDS[kind], self.combos[kind].itemData(index) or "")

    def onModelChanged(self, index) -> None:
        self._choose("staging", index)

    def onDetectorChanged(self, index) -> None:
        self._choose("detector", index)
