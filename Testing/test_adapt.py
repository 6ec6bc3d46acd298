"""`dvt-staging adapt` (issue 19): both models fine-tuned on a site's labeled studies, boxes and stages only.

A tiny boxes-only site (six phantom studies, no thrombus masks, every case `unassigned`) and one epoch of each
model: what is checked is the contract (splits, cards, provenance, catalogue, the before/after scoring with
the adapted detector, refusals, interruption), not the figures, which docs/results reports from real runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from DVTStagingLib.io.dataset import load_dataset, write_dataset_json
from DVTStagingLib.models.catalog import bundled_dir
from test_cli import assert_user_error, run_cli

pytestmark = pytest.mark.skipif(not (bundled_dir() / "vdpf-small-phantom.json").is_file(),
                                reason="the bundled models are not installed")
QUICK = ["--staging-epochs", "1", "--detector-epochs", "1", "--detector-steps", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Six phantom studies as a site exports them with boxes only: no segmentation, no split, a patient key."""
    from DVTStagingLib.phantom.writer import write_phantom_dataset

    root = tmp_path_factory.mktemp("site") / "site-a"
    dataset = write_phantom_dataset(root, 6, seed=41, workers=2, show_progress=False)
    for n, case in enumerate(dataset.cases):
        case.segmentation, case.split = None, "unassigned"
        case.extra["patient"] = f"patient-{max(n - 1, 0)}"   # the first two studies are one patient's
    write_dataset_json(dataset)
    return root


def _text_of(folder) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.json"))


@pytest.fixture(scope="module")
def adapted(site, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapted") / "run"
    catalogue = tmp_path_factory.mktemp("catalogue")
    env = dict(os.environ, DVT_STAGING_MODELS=str(catalogue), OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "DVTStagingLib", "adapt", "--data", str(site), "--out", str(out),
                           *QUICK], capture_output=True, text=True, timeout=900, env=env)
    return {"proc": proc, "out": out, "catalogue": catalogue, "site": site}


def test_adapt_on_a_tiny_boxes_only_dataset_writes_both_cards_with_provenance(adapted):
    proc, out = adapted["proc"], adapted["out"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    staging = json.loads((out / "staging.json").read_text(encoding="utf-8"))
    detector = json.loads((out / "detector.json").read_text(encoding="utf-8"))
    bundled_staging = json.loads((bundled_dir() / "vdpf-small-phantom.json").read_text(encoding="utf-8"))
    bundled_detector = json.loads((bundled_dir() / "detector-phantom.json").read_text(encoding="utf-8"))
    assert staging["kind"] == "staging" and detector["kind"] == "detector"
    assert staging["parent"]["id"] == "vdpf-small-phantom" and staging["parent"]["sha256"] == bundled_staging["sha256"]
    assert detector["parent"]["id"] == "detector-phantom" and detector["parent"]["sha256"] == bundled_detector["sha256"]
    assert staging["weights"] == "staging.safetensors" and detector["weights"] == "detector.safetensors"
    assert staging["training_data"]["folder"] == "site-a" and staging["training_data"]["cases"] == 6
    assert staging["id"].startswith("site-a-staging-") and detector["id"].startswith("site-a-detector-")
    assert staging["trust"]["temperature"] > 0 and staging["trust"]["ood_threshold"] is not None   # re-fitted
    # the detector's model selection starts with the parent itself: a fine-tune is kept only where it beats it
    history = detector["training"]["history"]
    assert history[0]["epoch"] == 0 and history[0]["loss"] is None and len(history) == 2
    assert staging["training"]["best_epoch"] >= 0
    # the dataset's provenance, never where it lay on this machine
    assert str(adapted["site"].parent) not in _text_of(out) and str(out.parent) not in _text_of(out)
    # the site's dataset.json is read, not rewritten (its cases stay unassigned)
    assert {c.split for c in load_dataset(adapted["site"]).cases} == {"unassigned"}
    # both in the user catalogue, loadable by id
    report = json.loads((out / "adapt-report.json").read_text(encoding="utf-8"))
    ids = report["models"]["staging"]["id"], report["models"]["detector"]["id"]
    assert sorted(p.name for p in adapted["catalogue"].glob("*.json")) == sorted(f"{i}.json" for i in ids)
    assert report["splits"]["train"] and report["splits"]["val"] and report["splits"]["test"]
    cases = load_dataset(adapted["site"]).cases
    assert report["case_splits"][cases[0].id] == report["case_splits"][cases[1].id]      # one patient, one split
    assert not (out / ".adapt-partial").exists()


def test_the_before_after_table_scores_the_parent_pair_and_the_adapted_pair(adapted):
    out = adapted["out"]
    report = json.loads((out / "adapt-report.json").read_text(encoding="utf-8"))
    before, after = report["before"], report["after"]
    assert before["model"] == "vdpf-small-phantom" and before["detector"] == "detector-phantom"
    assert after["model"] == report["models"]["staging"]["id"] and after["detector"] == report["models"]["detector"]["id"]
    for row in (before, after):
        assert 0 <= row["macro_f1_true_rois"] <= 1 and 0 <= row["indeterminate_rate"] <= 1
        assert row["detector_recall"] is not None and row["false_rois_per_study"] is not None
    assert "adapt: macro F1, true ROIs" in adapted["proc"].stderr
    assert (out / "scores-after" / "metrics.json").is_file()


def test_the_adapted_models_run_by_card(adapted, tmp_path, capsys):
    """`stage` with the adapted pair (`--model` and `--detector` cards) on a site study."""
    out, site = adapted["out"], load_dataset(adapted["site"])
    case = site.cases[0]
    code, _, err = run_cli(capsys, "stage", site.path(case.image), "--roi", site.path(case.rois[0]),
                           "--model", out / "staging.json", "--detector", out / "detector.json",
                           "--device", "cpu", "--out", tmp_path / "staged")
    assert code == 0, err
    result = json.loads((tmp_path / "staged" / "result.json").read_text(encoding="utf-8"))
    detector = json.loads((out / "detector.json").read_text(encoding="utf-8"))
    assert result["detector"]["sha256"] == detector["sha256"]


def _edit(root, change):
    doc = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    change(doc)
    (root / "dataset.json").write_text(json.dumps(doc), encoding="utf-8")


@pytest.mark.parametrize("problem", ["empty", "no labels", "one stage", "missing file"])
def test_adapt_refuses_a_dataset_it_cannot_learn_from_with_one_line(site, tmp_path, capsys, problem):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(site, root)
    if problem == "empty":
        _edit(root, lambda d: d.update(cases=[]))
        expected = "no cases"
    elif problem == "no labels":
        _edit(root, lambda d: [c.update(labels=[]) for c in d["cases"]])
        expected = "no ROI has a stage label"
    elif problem == "one stage":
        _edit(root, lambda d: [lb.update(stage="acute") for c in d["cases"] for lb in c["labels"]])
        expected = "at least two stages"
    else:
        case = load_dataset(root).cases[0]
        (root / case.image).unlink()
        expected = case.image.split("/")[-1]
    code, _, err = run_cli(capsys, "adapt", "--data", root, "--out", tmp_path / "out", *QUICK)
    assert_user_error(code, err, expected)
    assert not (tmp_path / "out" / "staging.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_signal_mid_adapt_leaves_no_model_behind(site, tmp_path, sig):
    out, catalogue = tmp_path / "run", tmp_path / "catalogue"
    env = dict(os.environ, DVT_STAGING_MODELS=str(catalogue), OMP_NUM_THREADS="1")
    # Ctrl-C as in a terminal: a shell that starts the tests in the background ignores SIGINT, and a child
    # inherits that (Python then installs no KeyboardInterrupt handler); restore the default in the child
    proc = subprocess.Popen([sys.executable, "-m", "DVTStagingLib", "adapt", "--data", str(site), "--out", str(out),
                             *QUICK], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        for line in proc.stderr:         # the staging model is trained and held in memory by now
            lines.append(line)
            if line.startswith("adapt: detector: fine-tuning"):
                proc.send_signal(sig)
                break
        rest = proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(ln.startswith("adapt: detector: fine-tuning") for ln in lines), "".join(lines)[-2000:]
    assert proc.returncode == 130, rest[-2000:]
    assert "Traceback" not in rest
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], left
    assert not catalogue.exists() or list(catalogue.iterdir()) == []


def test_a_box_without_a_parent_detection_learns_its_core_ellipse(site):
    """Boxes only: the target is the parent's thrombus pixels inside each box, else the box's core ellipse;
    nothing outside the boxes."""
    from DVTStagingLib.detection.box_targets import box_pseudo_target
    from DVTStagingLib.detection.detector import Detector, PostProcess, load_detector, probability_maps
    from DVTStagingLib.detection.studies import read_case
    from DVTStagingLib.detection.view import prepare_view, resample_mask

    class SeesNothing(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], *x.shape[2:]), -20.0)

    dataset = load_dataset(site)
    volume, _, rois = read_case(dataset, dataset.cases[0])
    parent = load_detector(None, "cpu")
    view = prepare_view(volume, parent.spec)
    inside = torch.zeros(view.planes.shape, dtype=torch.bool)
    for roi in rois:
        inside |= resample_mask(view, roi.voxel_mask(volume)) > 0.5
    from_parent = box_pseudo_target(parent, view, volume, rois)
    blind = Detector(SeesNothing(), parent.spec, PostProcess(), torch.device("cpu"))
    fallback = box_pseudo_target(blind, view, volume, rois)
    for target in (from_parent, fallback):
        assert float(target[~inside].abs().max()) == 0.0
        assert float(target.max()) > 0.5
    # the ellipse covers the middle of each box slice, not the whole box
    box_slices = inside.flatten(1).any(dim=1)
    assert bool((fallback.flatten(1).amax(dim=1)[box_slices] == 1.0).all())
    assert float((fallback > 0).sum()) < 0.5 * float(inside.sum())
    # the parent runs on the box slices only, and sees there what it sees in a pass over the whole study
    whole = probability_maps(parent, view)
    sure = (whole >= parent.post.pixel_threshold) & inside
    assert bool(sure.any()) and torch.allclose(from_parent[sure], whole[sure], atol=1e-5)
    some = probability_maps(parent, view, slices=[3, 1, 3])
    assert torch.allclose(some[[1, 3]], whole[[1, 3]], atol=1e-5)
    assert float(some[[n for n in range(view.n_slices) if n not in (1, 3)]].abs().max()) == 0.0


def test_an_adapted_model_that_misses_the_error_target_on_the_site_is_flagged():
    from DVTStagingLib.research.adapt import reliability_warning

    capped = {"rule": "coverage cap", "val_answered_error_rate": 0.53, "target_risk": 0.05, "val_rois": 15}
    assert "wrong 53% of the time" in reliability_warning(capped)
    assert reliability_warning(dict(capped, rule="risk control", val_answered_error_rate=0.04)) is None
    assert reliability_warning(dict(capped, val_answered_error_rate=0.03)) is None
    assert reliability_warning({}) is None
