"""The bundled staging model: its card, checksum and size, and the demo that uses it."""

from __future__ import annotations

import json

import pytest
from DVTStagingLib.cli import main
from DVTStagingLib.models.build import build_model
from DVTStagingLib.models.catalog import list_models, load_weights, resolve, sha256_of
from DVTStagingLib.models.config import ModelConfig
from DVTStagingLib.staging.results import SEGMENT_RATIO, validate_result
from DVTStagingLib.staging.trust import Trust


def test_bundled_card_is_complete_and_matches_its_weights():
    entry = resolve(None, "staging")
    card = entry.card
    assert entry.source == "bundled" or entry.card_path.parent.name == "Models"
    assert card["sha256"] == sha256_of(entry.weights_path)
    assert entry.weights_path.suffix == ".safetensors"
    assert entry.weights_path.stat().st_size <= 25 * 1024 * 1024
    assert "not for clinical use" in card["intended_use"].lower()
    assert card["classes"] == ["acute", "subacute", "chronic"]
    assert card["training_data"]["seed"] is not None and card["training_data"]["source"]["seed"] is not None
    test = card["metrics"]["test"]
    assert 0 <= test["macro_f1"] <= 1 and 0 <= test["accuracy"] <= 1 and test["n"] > 0
    cfg = ModelConfig.from_dict(card["config"])
    assert card["input"]["size"] == cfg.input.size
    state = load_weights(entry)
    trust = Trust.from_model(card, state)       # takes the trust.* arrays out: the rest is the network
    build_model(cfg).load_state_dict(state)     # the weights fit the network of the card
    # calibrated and able to abstain: temperature, thresholds, and the OOD statistics beside the weights
    assert trust.temperature > 0 and 0 < trust.confidence_threshold < 1 and trust.ood_threshold > 0
    assert trust.class_means.shape == (3, cfg.embed_dim * 3)
    # ... and the site check's, one Gaussian per encoder block on its token statistics (staging.trust)
    assert trust.site_threshold > 0 and trust.layer_means.shape == (cfg.depth, 3, 4 * cfg.embed_dim)
    assert trust.layer_precisions.shape == (cfg.depth, 4 * cfg.embed_dim, 4 * cfg.embed_dim)
    assert "ece" in test and "indeterminate_rate" in test
    assert entry.id in {e.id for e in list_models("staging")}


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    for name in ("result.json", "evidence.nrrd", "attention.nrrd", "rois.mrk.json", "report.png", "study/image.nrrd"):
        assert (out / name).is_file(), err
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert validate_result(result) == []
    # auto-detected ROIs: the ratio's thrombus signal is the detector's thrombus pixels inside the box
    drawn = json.loads((out / "study" / "truth.json").read_text(encoding="utf-8"))["thrombi"][0]["ratio"]
    roi = result["rois"][0]
    assert roi["thrombus_muscle_ratio_method"] == SEGMENT_RATIO
    assert roi["thrombus_muscle_ratio"] == pytest.approx(drawn, rel=0.15)
    assert main(["demo", "--out", str(out)]) == 2                  # never overwrites without asking
    assert "--overwrite" in capsys.readouterr().err


@pytest.fixture
def tampered_catalogue(tmp_path, monkeypatch):
    entry = resolve(None, "staging")
    folder = tmp_path / "models"
    folder.mkdir()
    card = dict(entry.card, id="tampered")
    data = bytearray(entry.weights_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / entry.weights_path.name).write_bytes(bytes(data))
    (folder / "tampered.json").write_text(json.dumps(card), encoding="utf-8")
    monkeypatch.setenv("DVT_STAGING_MODELS", str(folder))
    return folder


def test_a_tampered_catalogue_model_is_refused_by_id(tampered_catalogue, tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "d"), "--model", "tampered"])
    err = capsys.readouterr().err
    assert code == 2 and "sha256" in err and "Traceback" not in err
