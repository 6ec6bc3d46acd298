"""Answers that follow the disease: ROI redraws, cue reliance, and the held-out phantom style kept out of
training (issue 18)."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
from DVTStagingLib.core.stages import INDETERMINATE, STAGES
from DVTStagingLib.io.roi import BoxROI
from DVTStagingLib.training.cue_analysis import cue_analysis, truth_cues
from DVTStagingLib.training.metrics import staging_metrics
from DVTStagingLib.training.roi_jitter import SCALE, SHIFT_MM, redrawn_rois


def test_redrawn_rois_stay_within_the_shift_and_scale_they_promise():
    axes = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    axes *= np.sign(np.linalg.det(axes))
    roi = BoxROI("t", [10.0, -20.0, -150.0], [12.0, 14.0, 40.0], axes)
    redraws = redrawn_rois(roi, np.random.default_rng(0), 200)
    assert len(redraws) == 200 and len({r.name for r in redraws}) == 200
    shifts = np.array([np.linalg.norm(r.center_ras - roi.center_ras) for r in redraws])
    factors = np.array([r.size_mm / roi.size_mm for r in redraws])
    assert shifts.max() <= SHIFT_MM + 1e-9 and shifts.max() > 0.8 * SHIFT_MM
    assert factors.min() >= SCALE[0] - 1e-9 and factors.max() <= SCALE[1] + 1e-9
    assert all(np.allclose(r.axes_ras, roi.axes_ras) for r in redraws)
    # every redraw still holds the thrombus the box was drawn around (the original centre)
    assert all(r.contains_ras(roi.center_ras[None, :])[0] for r in redraws)


def test_a_small_box_is_redrawn_around_its_centre_not_beside_it():
    roi = BoxROI("small", [0.0, 0.0, 0.0], [5.0, 5.0, 5.0])     # a 4 mm shift would often leave it
    redraws = redrawn_rois(roi, np.random.default_rng(1), 50)
    assert all(r.contains_ras(np.zeros((1, 3)))[0] for r in redraws)


def test_confidently_wrong_counts_answered_wrong_rois_only():
    truth = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 2, 2, 0]] * 0.9 + 0.1 / 3          # ROIs 1, 3 and 5 wrong
    assert staging_metrics(truth, probs, ["a", "b", "c"])["confidently_wrong_rate"] == pytest.approx(3 / 6)
    abstain = np.array([False, True, False, False, False, True])  # abstaining on two of the wrong ones
    m = staging_metrics(truth, probs, ["a", "b", "c"], abstain)
    assert m["confidently_wrong_rate"] == pytest.approx(1 / 6) and m["indeterminate_rate"] == pytest.approx(2 / 6)


def _predictions(dataset, acuteness_of):
    """Per-ROI records as `evaluate` writes them, with P(acute) - P(chronic) given by `acuteness_of(truth)`."""
    out = []
    for (case, roi), t in truth_cues(dataset).items():
        a = float(np.clip(acuteness_of(t), -0.9, 0.9))
        p = {"acute": (1 + a) / 3, "subacute": 1 / 3, "chronic": (1 - a) / 3}
        stage = max(p, key=p.get)
        out.append({"case": case, "roi": roi, "truth": t["stage"], "stage": stage, "probabilities": p})
    return out


def test_cue_reliance_finds_the_cue_a_model_follows(phantom_dataset):
    by_ratio = _predictions(phantom_dataset, lambda t: (t["ratio"] - 2.0) / 2)
    report = cue_analysis(phantom_dataset, by_ratio, list(STAGES))
    assert report["n"] == len(by_ratio) >= 5
    pooled = report["reliance"]["ratio"]["pooled"]
    assert pooled is not None and pooled > 0.99
    # a model that ignores the ratio shows no reliance on it
    noise = np.random.default_rng(0)
    blind = _predictions(phantom_dataset, lambda t: noise.uniform(-0.9, 0.9))
    blind_pooled = cue_analysis(phantom_dataset, blind, list(STAGES))["reliance"]["ratio"]["pooled"]
    assert blind_pooled is None or blind_pooled < pooled - 0.3
    # the wrong answers are listed with their cues; abstentions are not among them
    wrong = {(w["case"], w["roi"]) for w in report["confidently_wrong"]}
    assert wrong == {(p["case"], p["roi"]) for p in by_ratio if p["stage"] != p["truth"]}
    abstaining = [dict(p, stage=INDETERMINATE) for p in by_ratio]
    assert cue_analysis(phantom_dataset, abstaining, list(STAGES))["confidently_wrong"] == []
    rows = report["confusion_per_cue"]["ratio"]
    assert sum(r["n"] for r in rows) == len(by_ratio)


def test_no_truth_no_cue_analysis(phantom_dataset):
    bare = copy.deepcopy(phantom_dataset)
    for case in bare.cases:
        case.extra.pop("truth", None)
    assert cue_analysis(bare, _predictions(phantom_dataset, lambda t: 0.0), list(STAGES)) is None


@pytest.mark.slow
def test_the_bundled_model_keeps_its_answer_when_the_box_is_redrawn(phantom_dataset):
    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.io.roi import read_rois
    from DVTStagingLib.io.volume import read_volume
    from DVTStagingLib.staging.inference import Stager
    from DVTStagingLib.training.roi_jitter import jitter_stability

    stager = Stager(None, "cpu")
    cases = phantom_dataset.cases[:2]
    studies = [(c.id, read_volume(phantom_dataset.path(c.image)),
                [r for f in c.rois for r in read_rois(phantom_dataset.path(f))]) for c in cases]
    report = jitter_stability(stager, load_detector(None, "cpu"), studies, n=5, seed=1)
    assert report["redraws"] == 5 * report["rois"] >= 10
    assert report["stable_rate"] >= 0.9, report["per_roi"]


@pytest.fixture(scope="module")
def site_dataset(tmp_path_factory):
    from DVTStagingLib.phantom.writer import write_phantom_dataset

    root = tmp_path_factory.mktemp("site") / "fields"
    write_phantom_dataset(root, 2, seed=3, workers=1, show_progress=False, style="fields")
    return root


def test_the_held_out_style_never_trains_a_model_from_scratch(site_dataset, tmp_path, capsys):
    """`train` and `train-detector` refuse a dataset drawn in a held-out style before anything is written,
    also when only one of its cases says so (a dataset assembled by hand)."""
    from DVTStagingLib.cli import main

    for argv in (["train", "--data", str(site_dataset), "--config", "vdpf-tiny", "--out", str(tmp_path / "run")],
                 ["train-detector", "--data", str(site_dataset), "--out", str(tmp_path / "det")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "held-out phantom style 'fields'" in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "det").exists()
    hand_made = shutil.copytree(site_dataset, tmp_path / "hand-made")
    doc = json.loads((hand_made / "dataset.json").read_text(encoding="utf-8"))
    doc["source"].pop("style")
    for case in doc["cases"][1:]:
        case.pop("style", None)
    (hand_made / "dataset.json").write_text(json.dumps(doc), encoding="utf-8")
    assert main(["train", "--data", str(hand_made), "--config", "vdpf-tiny", "--out", str(tmp_path / "run")]) == 2
    assert "held-out phantom style 'fields'" in capsys.readouterr().err


def test_a_site_may_fine_tune_on_its_own_studies(site_dataset, tmp_path, capsys):
    """Fine-tuning (--init) is how a site uses its studies: the style guard lets it through (these runs then
    stop at the next check, so nothing is trained here)."""
    from DVTStagingLib.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    assert main(["train", "--data", str(site_dataset), "--init", "vdpf-small-phantom", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "held-out" not in err and "already holds a training run" in err
    assert main(["train-detector", "--data", str(site_dataset), "--init", "detector-phantom",
                 "--out", str(tmp_path / "det")]) == 2
    err = capsys.readouterr().err
    assert "held-out" not in err and "both the train and the val split" in err   # two studies, no val split


def test_the_bundled_models_were_not_trained_on_a_held_out_style():
    from DVTStagingLib.models.catalog import resolve
    from DVTStagingLib.phantom.styles import HELD_OUT_STYLES, TRAINING_STYLE

    for kind in ("staging", "detector"):
        data = resolve(None, kind).card["training_data"]
        style = (data.get("source") or {}).get("style", TRAINING_STYLE)
        assert style not in HELD_OUT_STYLES and style == TRAINING_STYLE
