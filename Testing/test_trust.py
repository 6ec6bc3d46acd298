"""Calibrated answers that abstain, and maps that point at the evidence (issue 11).

The toy tests need no model; the others use the bundled staging model and detector, as `stage` does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from DVTStagingLib.core.stages import INDETERMINATE
from DVTStagingLib.io.roi import read_rois
from DVTStagingLib.io.volume import read_volume
from DVTStagingLib.staging.trust import Trust
from DVTStagingLib.training.calibration import (
    TARGET_RISK,
    error_rate_upper_bound,
    expected_calibration_error,
    fit_confidence_threshold,
    fit_temperature,
    nll,
    roi_probabilities,
)
from DVTStagingLib.training.metrics import staging_metrics
from test_cli import run_cli
from test_staging import oblique_study  # noqa: F401  (a fixture: a phantom study on an oblique grid)


# -- calibration and scoring (no model) ------------------------------------------------------------------
def _miscalibrated_toy(rng, n_rois=300, slices=4, overconfidence=4.0):
    """Slice logits of a classifier that is right ~70% of the time but says so with ~99% confidence."""
    labels = rng.integers(0, 3, n_rois)
    roi_of_slice = np.repeat(np.arange(n_rois), slices)
    right = rng.random(n_rois) < 0.7
    guess = np.where(right, labels, (labels + rng.integers(1, 3, n_rois)) % 3)
    logits = rng.normal(0, 0.3, (n_rois * slices, 3))
    logits[np.arange(len(logits)), guess[roi_of_slice]] += 1.2
    return logits * overconfidence, roi_of_slice, labels


def test_temperature_scaling_lowers_the_nll_and_ece_of_an_overconfident_toy():
    rng = np.random.default_rng(0)
    fit_logits, fit_slices, fit_labels = _miscalibrated_toy(rng)
    temperature = fit_temperature(fit_logits, fit_slices, fit_labels)
    assert temperature > 1.5                      # overconfident: softened
    logits, slices, labels = _miscalibrated_toy(rng)        # fresh draws: the fit generalises
    raw = roi_probabilities(logits, slices, len(labels))
    scaled = roi_probabilities(logits, slices, len(labels), temperature)
    assert nll(scaled, labels) < 0.8 * nll(raw, labels)
    assert expected_calibration_error(scaled, labels) < 0.5 * expected_calibration_error(raw, labels)
    np.testing.assert_array_equal(raw.argmax(axis=1), scaled.argmax(axis=1))   # the answers do not change


def test_the_error_bound_is_the_clopper_pearson_one():
    assert error_rate_upper_bound(0, 59) == pytest.approx(1 - 0.05 ** (1 / 59))    # no error: 1 - delta^(1/n)
    assert error_rate_upper_bound(3, 100) > 0.03                                   # above the observed rate
    assert error_rate_upper_bound(5, 5) == 1.0


def _validation_rois(rng, n, accuracy):
    """Calibrated-looking ROI probabilities: right with probability `accuracy`, less sure when wrong."""
    labels = rng.integers(0, 3, n)
    right = rng.random(n) < accuracy
    answer = np.where(right, labels, (labels + 1) % 3)
    top = np.where(right, rng.uniform(0.6, 1.0, n), rng.uniform(0.4, 0.7, n))
    probs = np.full((n, 3), 0.0)
    probs[np.arange(n), answer] = top
    probs[np.arange(n), (answer + 1) % 3] = 1 - top
    return probs, labels


def test_an_accurate_model_abstains_on_fewer_rois_than_the_coverage_rule():
    probs, labels = _validation_rois(np.random.default_rng(1), 400, accuracy=0.99)
    threshold, how = fit_confidence_threshold(probs, labels)
    coverage_rule = np.sort(probs.max(axis=1))[int(0.05 * 400)]
    assert how["rule"] == "risk control" and threshold < coverage_rule
    assert how["val_coverage"] > 0.95
    assert error_rate_upper_bound(round(how["val_answered_error_rate"] * 400 * how["val_coverage"]),
                                  round(400 * how["val_coverage"])) <= TARGET_RISK


def test_a_weak_model_is_capped_at_the_coverage_rule():
    probs, labels = _validation_rois(np.random.default_rng(2), 400, accuracy=0.6)
    threshold, how = fit_confidence_threshold(probs, labels)
    assert how["rule"] == "coverage cap"
    assert how["val_coverage"] == pytest.approx(0.95, abs=0.01)     # abstains on 5%, not on most ROIs


def test_an_indeterminate_answer_counts_as_wrong_in_macro_f1():
    truth = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[truth] * 0.9 + 0.1 / 3          # every ROI right
    assert staging_metrics(truth, probs, ["a", "b", "c"])["macro_f1"] == pytest.approx(1.0)
    abstain = np.array([True, False, False, False, False, False])
    m = staging_metrics(truth, probs, ["a", "b", "c"], abstain)
    # the abstained 'a' scores as a wrong answer: a recall 1/2 (F1 2/3), one false 'b' (F1 4/5), c 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 5 + 1) / 3)
    assert m["accuracy"] == pytest.approx(5 / 6) and m["indeterminate_rate"] == pytest.approx(1 / 6)
    assert m["indeterminate_per_class"] == [1, 0, 0]
    # abstaining on a wrong answer does not make it right either: the F1 never rises above the all-answered one
    wrong = probs.copy()
    wrong[0] = [0.1, 0.8, 0.1]
    answered = staging_metrics(truth, wrong, ["a", "b", "c"])["macro_f1"]
    assert staging_metrics(truth, wrong, ["a", "b", "c"], abstain)["macro_f1"] <= answered + 1e-12


def test_a_trust_abstains_for_distance_and_for_low_confidence_with_a_reason():
    trust = Trust(temperature=1.0, confidence_threshold=0.6, ood_threshold=5.0,
                  class_means=np.zeros((3, 2)), precision=np.eye(2))
    assert trust.decide(np.array([0.8, 0.1, 0.1]), trust.roi_ood_score(np.zeros((4, 2)))) is None
    far = trust.roi_ood_score(np.full((4, 2), 10.0))
    assert far == pytest.approx(np.sqrt(200)) and trust.decide(np.array([0.8, 0.1, 0.1]), far).startswith("out of")
    assert trust.decide(np.array([0.4, 0.3, 0.3]), 0.0).startswith("not confident")


def _site_trust(threshold=2.0):
    """A Trust whose site check has two blocks of 2 statistics, unit precision, class means at 0 and 4."""
    means = np.array([[[0.0, 0.0], [4.0, 4.0]], [[0.0, 0.0], [4.0, 4.0]]])
    return Trust(temperature=1.0, confidence_threshold=0.6, ood_threshold=5.0, class_means=np.zeros((2, 2)),
                 precision=np.eye(2), site_threshold=threshold, layer_means=means,
                 layer_precisions=np.stack([np.eye(2), np.eye(2)]), layer_scales=np.array([1.0, 2.0]))


def test_the_site_check_abstains_on_other_token_statistics_with_its_own_reason():
    trust = _site_trust()
    sure = np.array([0.9, 0.1])
    near = np.zeros((5, 2, 2))                       # 5 slices, 2 blocks, at a class mean
    assert trust.roi_site_score(near) == 0.0 and trust.decide(sure, 0.0, trust.roi_site_score(near)) is None
    far = np.zeros((5, 2, 2))
    far[:, 0] = [2.0, 2.0]                           # block 0: sqrt(8) from both means; block 1 at a mean
    score = trust.roi_site_score(far)
    assert score == pytest.approx(np.sqrt(8) / 2)    # mean over blocks of distance / scale
    reason = trust.decide(sure, 0.0, score + 1.0)
    assert reason.startswith("out of distribution") and "site check" in reason and "\n" not in reason
    # no statistics (a model without the check, or none computed) decides as before
    assert trust.roi_site_score(None) is None and Trust().roi_site_score(near) is None


def test_the_nearest_mean_distance_is_the_mahalanobis_distance_written_out():
    from DVTStagingLib.staging.trust import nearest_mean_distance

    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    precision, means, x = a @ a.T + np.eye(6), rng.normal(size=(3, 6)), rng.normal(size=(40, 6)) * 3
    by_hand = np.sqrt(np.min([[(r - m) @ precision @ (r - m) for m in means] for r in x], axis=1))
    np.testing.assert_allclose(nearest_mean_distance(x, means, precision), by_hand, rtol=1e-9)


def test_the_site_check_is_stored_with_the_weights_and_read_back():
    from DVTStagingLib.training.calibration import trust_tensors

    trust = _site_trust(1.2345)
    card = {"trust": trust.card_section()}
    state = {"head.weight": torch.zeros(2), **trust_tensors(trust)}
    back = Trust.from_model(card, state)
    assert list(state) == ["head.weight"]            # the trust tensors are taken out of the network's state
    assert back.site_threshold == 1.2345
    np.testing.assert_allclose(back.layer_means, trust.layer_means)
    np.testing.assert_allclose(back.layer_scales, trust.layer_scales)
    # a card whose weights lack the check's tensors runs without it rather than with half of it
    partial = {k: v for k, v in trust_tensors(trust).items() if not k.endswith("layer_scales")}
    assert Trust.from_model(card, partial).site_threshold is None


def test_the_site_check_is_fit_at_its_quantile_or_at_a_chosen_operating_point():
    from DVTStagingLib.training.calibration import SITE_QUANTILE, conformal_threshold, fit_site_check

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 400)
    train = rng.normal(size=(400, 2, 3)) + labels[:, None, None] * 3.0      # [slices, blocks, statistics]
    val = rng.normal(size=(120, 2, 3))
    val_roi = np.repeat(np.arange(40), 3)                                   # 40 ROIs of 3 slices
    fitted = _site_trust()
    report = fit_site_check(fitted, train, labels, val, val_roi, 40, 2)
    scores = np.array([fitted.roi_site_score(val[val_roi == r]) for r in range(40)])
    assert fitted.site_threshold == conformal_threshold(scores, SITE_QUANTILE) and report["site_quantile"] == SITE_QUANTILE
    chosen = _site_trust()
    report = fit_site_check(chosen, train, labels, val, val_roi, 40, 2, threshold=float(np.median(scores)))
    assert chosen.site_threshold == float(np.median(scores))
    assert report["val_share_over_site_threshold"] == pytest.approx(0.5)    # its false-alarm rate on validation
    assert "site_quantile" not in report
    np.testing.assert_allclose(chosen.layer_scales, fitted.layer_scales)    # the same check, another threshold


def test_the_conformal_threshold_keeps_the_false_alarm_rate_and_falls_back_to_the_largest_score():
    from DVTStagingLib.training.calibration import conformal_threshold

    scores = np.arange(1, 101, dtype=float)          # 100 validation scores 1..100
    assert conformal_threshold(scores, 0.95) == 96.0     # the ceil(101 * 0.95) = 96th smallest
    assert conformal_threshold(scores[:12], 0.95) == 12.0   # a dozen ROIs: too few for that rank
    rng = np.random.default_rng(0)
    fit, new = rng.normal(size=400), rng.normal(size=20000)
    assert np.mean(new > conformal_threshold(fit, 0.95)) == pytest.approx(0.05, abs=0.02)


# -- the bundled model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundled():
    from DVTStagingLib.detection.detector import load_detector
    from DVTStagingLib.staging.inference import Stager

    return Stager(None, "cpu"), load_detector(None, "cpu")


@pytest.mark.parametrize("kind", ["noise", "smoothed-noise", "tube", "brain-like"])
def test_inputs_unlike_the_training_data_come_out_indeterminate_with_a_reason(bundled, kind):
    from DVTStagingLib.training.ood import SYNTHETIC, centre_roi

    stager, detector = bundled
    for seed in (1, 2):
        volume = SYNTHETIC[kind](np.random.default_rng(seed))
        _, (result,) = stager.stage(volume, [centre_roi(volume)], want_attention=False, show_progress=False,
                                    detector=detector)
        assert result.stage(stager.classes) == INDETERMINATE, (kind, seed, result.probabilities, result.ood_score)
        assert result.reason and "\n" not in result.reason


def test_the_bundled_site_check_passes_the_training_style_and_flags_the_held_out_one(bundled):
    """The held-out style is another "site": the bundled model says so rather than stage it from a renderer it
    never saw, and still stages a study of its own style (seeds outside every training and figure set)."""
    from DVTStagingLib.phantom.styles import make_study

    stager, detector = bundled
    assert stager.trust.site_threshold is not None
    scores = {}
    for style in ("analytic", "fields"):
        study = make_study(31, ["subacute"], style)
        _, (result,) = stager.stage(study.volume, study.rois[:1], want_attention=False, show_progress=False,
                                    detector=detector)
        scores[style] = result.site_score
        if style == "fields":
            assert result.stage(stager.classes) == INDETERMINATE and "site check" in result.reason
    assert scores["analytic"] <= stager.trust.site_threshold < scores["fields"], scores


def test_the_bundled_model_stages_a_phantom_thrombus_and_abstains_on_muscle(bundled, phantom_dataset):
    from DVTStagingLib.io.segmentation import MUSCLE, THROMBUS, read_segmentation
    from DVTStagingLib.training.ood import roi_on_label

    stager, detector = bundled
    case = next(c for c in phantom_dataset.cases if c.labels)
    volume = read_volume(phantom_dataset.path(case.image))
    roi = read_rois(phantom_dataset.path(case.rois[0]))[0]
    labels = read_segmentation(phantom_dataset.path(case.segmentation)).labelmap
    muscle = roi_on_label(volume, labels, MUSCLE, labels == THROMBUS, np.random.default_rng(0), "muscle")
    _, (thrombus, on_muscle) = stager.stage(volume, [roi, muscle], want_attention=False, show_progress=False,
                                            detector=detector)
    assert thrombus.reason is None and thrombus.stage(stager.classes) in stager.classes
    assert on_muscle.stage(stager.classes) == INDETERMINATE and on_muscle.reason


def test_evidence_map_has_the_geometry_of_an_oblique_axis_permuted_input(oblique_study, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "stage", oblique_study / "image.nrrd", "--roi", oblique_study / "roi.mrk.json",
                           "--out", out, "--device", "cpu")
    assert code == 0, err
    image = read_volume(oblique_study / "image.nrrd")
    evidence = read_volume(out / "evidence.nrrd")
    assert evidence.same_geometry(image, atol=1e-6)
    assert evidence.array.min() >= 0 and evidence.array.max() == pytest.approx(1.0)
    # the evidence lies on the ROI's slices, and its peak within 10 mm of the box
    roi = read_rois(oblique_study / "roi.mrk.json")[0]
    k, j, i = np.unravel_index(int(np.argmax(evidence.array)), evidence.array.shape)
    assert roi.contains_ras(image.ijk_to_ras_points(np.array([[i, j, k]], float)), tol=10.0)[0]
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["outputs"]["evidence"] == "evidence.nrrd"
    assert result["rois"][0]["reason"] is None or result["rois"][0]["stage"] == INDETERMINATE


def test_deleting_the_top_evidence_changes_the_prediction_more_than_a_random_region(bundled, phantom_dataset):
    from DVTStagingLib.training.explanation import deletion_test

    stager, _ = bundled
    top, random = [], []
    for case in [c for c in phantom_dataset.cases if c.labels][:3]:
        volume = read_volume(phantom_dataset.path(case.image))
        rois = [r for f in case.rois for r in read_rois(phantom_dataset.path(f))]
        study, results = stager.stage(volume, rois, want_attention=False, show_progress=False, want_evidence=True)
        for result in results:
            d = deletion_test(stager, study, result, draws=4)
            top.append(d["drop_top_evidence"])
            random.append(d["drop_random_region"])
    assert np.mean(top) > np.mean(random) + 0.05, (top, random)


def test_the_evidence_map_shows_on_the_slices_the_model_is_sure_of(bundled, phantom_dataset):
    """A reader scrolls through the ROI: the overlay must not be blank wherever the stage is certain (the
    log-probability's gradient vanished there, 1e-25 of the peak on most slices)."""
    from DVTStagingLib.staging.evidence import normalised

    stager, _ = bundled
    case = next(c for c in phantom_dataset.cases if c.labels)
    volume = read_volume(phantom_dataset.path(case.image))
    rois = [r for f in case.rois for r in read_rois(phantom_dataset.path(f))]
    _, results = stager.stage(volume, rois, want_attention=False, show_progress=False, want_evidence=True)
    for result in results:
        sure = result.slice_probabilities.max(axis=1) > 0.99
        assert sure.sum() >= 3, "the test needs a ROI the model is sure of on several slices"
        per_slice_peak = normalised(result.evidence).reshape(len(sure), -1).max(axis=1)
        assert np.median(per_slice_peak[sure]) > 0.05, per_slice_peak


def test_the_zoom_window_maps_back_onto_the_pixels_it_was_cut_from():
    import torch
    from DVTStagingLib.staging.slices import ZoomWindow

    planes = torch.zeros(1, 60, 80)
    planes[0, 20:30, 40:50] = 1.0                        # a lesion
    window = ZoomWindow(center=(25.0, 45.0), half=(10.0, 10.0))   # rows 15-35, cols 35-55
    crop = window.crop(planes, 32)
    assert crop.shape == (1, 1, 32, 32) and crop[0, 0, 8:24, 8:24].mean() > 0.9   # the lesion fills the middle
    back = window.to_view(crop[:, 0], 60, 80)
    assert back[0, 21:29, 41:49].min() > 0.9                    # back on the lesion's own pixels
    assert back[0, :14].abs().max() == 0 and back[0, :, 57:].abs().max() == 0   # nothing outside the window


class _CountingNetwork(torch.nn.Module):
    """The detector's own network, counting the slices it is given."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.slices = inner, 0

    def forward(self, x):
        self.slices += x.shape[0]
        return self.inner(x)


def test_the_content_check_runs_a_long_roi_on_a_few_slices_and_still_finds_its_thrombus(bundled, phantom_dataset):
    from dataclasses import replace

    from DVTStagingLib.io.roi import BoxROI
    from DVTStagingLib.staging.content import CONTENT_SLICES, roi_thrombus_probability

    _, detector = bundled
    case = next(c for c in phantom_dataset.cases if c.labels)
    volume = read_volume(phantom_dataset.path(case.image))
    roi = read_rois(phantom_dataset.path(case.rois[0]))[0]
    counted = replace(detector, network=_CountingNetwork(detector.network))
    short = roi_thrombus_probability(counted, volume, roi)
    short_slices = counted.network.slices
    # the same box, stretched along the vessel to several times the slices the check runs
    extent = np.abs(volume.ijk_to_ras[:3, :3]) @ np.array(volume.array.shape[::-1], dtype=float)
    long_roi = BoxROI("long", roi.center_ras, [roi.size_mm[0], roi.size_mm[1], 0.9 * extent[2]], roi.axes_ras)
    counted.network.slices = 0
    long = roi_thrombus_probability(counted, volume, long_roi)
    assert short_slices <= CONTENT_SLICES and counted.network.slices == CONTENT_SLICES
    assert short >= detector.post.pixel_threshold and long >= detector.post.pixel_threshold
