"""Issue 19, on the strict fakes (Testing/slicer_fakes) over real MRML: the panel's model and detector choices.

The user catalogue's models appear in both combo boxes after Refresh; the combo boxes FOLLOW the parameter
node (modelId, detectorId): after a scene close they show the default again, after a scene load they show the
scene's ids, and an id the catalogue lacks is shown as "<id> (missing)", never replaced; the choices reach the
background stage and detect runs (the fake CLI records them in its outputs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalogue_helpers import catalogue_copy
from DVTStagingLib.slicer.result_nodes import result_folder
from slicer_fakes.fixtures import *  # noqa: F401,F403  (fixtures: slicer_session, panel, shared_cache)


def _items(combo):
    return [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count)]


@pytest.fixture
def user_catalogue(tmp_path, monkeypatch):
    """A user catalogue holding a copy of each bundled model under a site's id."""
    folder = tmp_path / "catalogue"
    catalogue_copy(folder, "staging", "site-staging")
    catalogue_copy(folder, "detector", "site-detector")
    monkeypatch.setenv("DVT_STAGING_MODELS", str(folder))
    return folder


def _choose_site_models(panel, session):
    ui, user = panel.ui, session.user
    user.click(ui.refreshModelsButton)
    user.choose(ui.modelComboBox, "site-staging (user)")
    user.choose(ui.detectorComboBox, "site-detector (user)")
    p = panel._parameterNode
    assert (p.modelId, p.detectorId) == ("site-staging", "site-detector")


def test_user_catalogue_models_appear_in_both_combo_boxes_after_refresh(panel, slicer_session, user_catalogue):
    ui = panel.ui
    assert ("site-staging (user)", "site-staging") not in _items(ui.modelComboBox)   # not read yet
    slicer_session.user.click(ui.refreshModelsButton)
    staging, detectors = _items(ui.modelComboBox), _items(ui.detectorComboBox)
    assert staging[0] == ("default (bundled)", "") and detectors[0] == ("default (bundled)", "")
    assert ("vdpf-small-phantom (bundled)", "vdpf-small-phantom") in staging
    assert ("site-staging (user)", "site-staging") in staging and ("site-detector (user)", "site-detector") not in staging
    assert ("detector-phantom (bundled)", "detector-phantom") in detectors
    assert ("site-detector (user)", "site-detector") in detectors and ("site-staging (user)", "site-staging") not in detectors
    _choose_site_models(panel, slicer_session)
    assert panel._parameterNode.parameterNode.GetParameter("detectorId") == "site-detector"   # saved with the scene


def test_after_a_scene_close_the_combo_boxes_show_the_default_that_runs(panel, slicer_session, slicer_app,
                                                                         user_catalogue):
    """The bug of issue 19: modelId went back to the default while the combo box kept the user's model."""
    ui = panel.ui
    _choose_site_models(panel, slicer_session)
    slicer_app.scene.Clear(False)                               # File > Close Scene
    p = panel._parameterNode
    assert (p.modelId, p.detectorId) == ("", "")
    assert ui.modelComboBox.currentData == "" and ui.modelComboBox.currentText == "default (bundled)"
    assert ui.detectorComboBox.currentData == "" and ui.detectorComboBox.currentText == "default (bundled)"
    # ... and the next Stage runs what the panel shows (the fake CLI records the detector it was given).
    volume = panel.logic.loadSampleStudy()
    slicer_session.user.click(ui.stageButton)
    slicer_session.run_event_loop(lambda: not panel.logic.isRunning(), timeout=60)
    result = json.loads((Path(result_folder(volume)) / "result.json").read_text())
    assert result["detector"]["id"] == "detector-phantom"
    assert slicer_session.errors_shown() == []


def test_a_loaded_scene_selects_its_models_and_a_missing_one_is_shown_not_replaced(panel, slicer_session, slicer_app,
                                                                                    user_catalogue, tmp_path):
    """The other bug of issue 19: a modelId set by a loaded scene left the combo box on "default (bundled)"."""
    ui = panel.ui
    slicer_session.user.click(ui.refreshModelsButton)
    p = panel._parameterNode
    p.modelId, p.detectorId = "site-staging", "retired-detector"        # as another session saved them
    mrb = tmp_path / "scene.mrb"
    assert slicer_app.scene.WriteToMRB(str(mrb))
    slicer_app.scene.Clear(False)
    assert ui.modelComboBox.currentData == "" and ui.detectorComboBox.currentData == ""
    (tmp_path / "unpacked").mkdir()
    assert slicer_app.app_logic.OpenSlicerDataBundle(str(mrb), str(tmp_path / "unpacked"))   # File > Load Scene
    p = panel._parameterNode
    assert (p.modelId, p.detectorId) == ("site-staging", "retired-detector")
    assert ui.modelComboBox.currentText == "site-staging (user)" and ui.modelComboBox.currentData == "site-staging"
    assert ui.detectorComboBox.currentText == "retired-detector (missing)"
    assert ui.detectorComboBox.currentData == "retired-detector" and "not in the catalogue" in ui.detectorComboBox.toolTip
    assert p.detectorId == "retired-detector"                             # never silently replaced
    # Refresh keeps showing it missing; choosing a catalogued detector drops the missing item.
    slicer_session.user.click(ui.refreshModelsButton)
    assert ui.detectorComboBox.currentText == "retired-detector (missing)"
    slicer_session.user.choose(ui.detectorComboBox, "site-detector (user)")
    assert p.detectorId == "site-detector"
    assert "retired-detector" not in [data for _text, data in _items(ui.detectorComboBox)]
    assert "not in the catalogue" not in ui.detectorComboBox.toolTip


def test_the_detector_choice_reaches_the_background_stage_and_detect_runs(panel, slicer_session, user_catalogue):
    ui, logic = panel.ui, panel.logic
    _choose_site_models(panel, slicer_session)
    volume = logic.loadSampleStudy()
    slicer_session.user.click(ui.stageButton)
    assert not ui.detectorComboBox.enabled and not ui.modelComboBox.enabled   # the run's models stay shown
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    assert ui.detectorComboBox.enabled
    result = json.loads((Path(result_folder(volume)) / "result.json").read_text())
    assert result["detector"]["id"] == "site-detector"
    slicer_session.user.click(ui.autoDetectButton)                       # `detect --detector site-detector`
    slicer_session.run_event_loop(lambda: not logic.isRunning(), timeout=60)
    segmentation = logic.thrombusSegmentation(volume)
    detections = Path(segmentation.GetStorageNode().GetFileName()).parent / "detections.json"
    assert json.loads(detections.read_text())["model"]["id"] == "site-detector"
    assert slicer_session.errors_shown() == []
