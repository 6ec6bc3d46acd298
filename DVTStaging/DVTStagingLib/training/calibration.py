"""Fitting the trust parts of a model (staging.trust): temperature, confidence and OOD thresholds.

Temperature scaling (Guo et al. 2017) minimises the validation NLL of the per-ROI probabilities (the mean
of the slices' softmax(logits / T), the paper's per-thrombus rule).  The OOD Gaussians come from the
training split only; the thresholds are read off the validation split, which the network never saw.

The confidence threshold is selective classification with risk control (after Geifman & El-Yaniv 2017): the
lowest threshold on the highest calibrated probability at which the answered validation ROIs' error rate is,
by a one-sided Clopper-Pearson bound, below TARGET_RISK.  It never abstains on more than 1 - TARGET_COVERAGE
of the validation ROIs: a weak model keeps answering most ROIs, an accurate one abstains only where its
answers are measurably worse.  (The bound is taken at each candidate threshold without a correction for
the scan: a guide to the threshold, not a guarantee.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta

from ..staging.trust import Trust, softmax
from .metrics import staging_metrics
from .predict import model_inputs, roi_mean
from .slice_bank import SliceBank

TARGET_COVERAGE = 0.95      # the confidence threshold keeps at least this share of validation ROIs ...
TARGET_RISK = 0.05          # ... and keeps more while the answered ROIs' error rate stays below this
RISK_DELTA = 0.05           # (upper bound at 1 - RISK_DELTA confidence)
OOD_QUANTILE = 0.99         # the OOD threshold: this quantile of the validation ROIs' scores ...
OOD_MARGIN = 1.10           # ... times this margin (unseen in-distribution studies vary more than 50 ROIs show)
SITE_QUANTILE = 0.95        # the site check's threshold: this quantile of the validation ROIs' scores (a
                            # conformal 5 % false-alarm rate on studies like the training data)
COVARIANCE_RIDGE = 1e-3     # shrinkage toward the mean variance, so a few thousand slices give a stable inverse


@torch.inference_mode()
def slice_outputs(model, bank: SliceBank, device: torch.device, batch_size: int = 64, need_layers: bool = True):
    """(logits [M, C], features [M, D] or None, token statistics [M, blocks, F] or None) for every slice of
    the bank; the last two for models with an `embed` (VDPF), the statistics only with need_layers."""
    model.eval()
    logits, features, layers = [], [], []
    embed = getattr(model, "embed", None)
    for start in range(0, len(bank.images), batch_size):
        inputs = [t.to(device) for t in model_inputs(model, *bank.tensors(slice(start, start + batch_size)))]
        if embed is not None:
            out = embed(*inputs, need_layers=need_layers)
            f = out[0]
            features.append(f.float().cpu())
            if need_layers:
                layers.append(out[2].float().cpu())
            logits.append(model.head(f).float().cpu())
        else:
            logits.append(model(*inputs).float().cpu())
    return (torch.cat(logits).numpy().astype(np.float64),
            torch.cat(features).numpy().astype(np.float64) if features else None,
            torch.cat(layers).numpy() if layers else None)


def roi_probabilities(logits: np.ndarray, roi_of_slice: np.ndarray, n_rois: int, temperature: float = 1.0):
    return roi_mean(softmax(logits, temperature), roi_of_slice, n_rois)


def nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean())


def fit_temperature(logits: np.ndarray, roi_of_slice: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the NLL of the per-ROI probabilities (grid, then refined)."""
    n = len(labels)

    def loss(t):
        return nll(roi_probabilities(logits, roi_of_slice, n, t), labels)

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    best = grid[int(np.argmin([loss(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.06, 0.06, 41))
    return float(fine[int(np.argmin([loss(t) for t in fine]))])


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence, equal-width bins, weighted by the bins' share of ROIs."""
    return float(sum(b["n"] * abs(b["confidence"] - b["accuracy"])
                     for b in reliability_bins(probabilities, labels, bins) if b["n"]) / max(len(labels), 1))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Per equal-width confidence bin: its ROI count, mean confidence and accuracy (None when empty)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "n": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()) if (which == b).any() else None,
             "accuracy": float(correct[which == b].mean()) if (which == b).any() else None}
            for b in range(bins)]


def error_rate_upper_bound(errors: int, n: int, delta: float = RISK_DELTA) -> float:
    """The one-sided (1 - delta) Clopper-Pearson upper bound of an error rate observed as errors / n."""
    if n <= 0 or errors >= n:
        return 1.0
    return float(beta.ppf(1 - delta, errors + 1, n - errors))


def fit_confidence_threshold(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, dict]:
    """The confidence threshold (module docstring) for calibrated validation probabilities [R, C], and how
    it was chosen.  ROIs whose highest probability is below it are answered "not confident"."""
    confidence = probabilities.max(axis=1)
    n = len(confidence)
    ascending = np.sort(confidence)
    k = int(np.floor((1 - TARGET_COVERAGE) * n))
    coverage_cap = float(ascending[k]) if k > 0 else float(ascending[0]) - 1e-6
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(probabilities.argmax(axis=1)[order] != labels[order])
    answered = next((m for m in range(n, 0, -1) if error_rate_upper_bound(int(errors[m - 1]), m) <= TARGET_RISK), 0)
    if answered == n:
        risk_threshold = float(ascending[0]) - 1e-6
    else:
        risk_threshold = float(confidence[order[answered - 1]]) if answered else float("inf")
    threshold = min(coverage_cap, risk_threshold)
    kept = confidence >= threshold
    return threshold, {"rule": "risk control" if risk_threshold <= coverage_cap else "coverage cap",
                       "target_risk": TARGET_RISK, "risk_delta": RISK_DELTA, "target_coverage": TARGET_COVERAGE,
                       "val_coverage": float(kept.mean()),
                       "val_answered_error_rate": float((probabilities.argmax(axis=1) != labels)[kept].mean())
                       if kept.any() else None}


def fit_class_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int):
    """Class means [C, D] and the inverse of the shared (tied) covariance, with ridge shrinkage."""
    means = np.stack([features[labels == c].mean(axis=0) if (labels == c).any() else features.mean(axis=0)
                      for c in range(n_classes)])
    centred = features - means[labels]
    cov = centred.T @ centred / max(len(features) - n_classes, 1)
    cov += COVARIANCE_RIDGE * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    return means, np.linalg.inv(cov)


def fit_trust(model, train_bank: SliceBank, val_bank: SliceBank, device: torch.device) -> tuple[Trust, dict]:
    """A Trust fit on this model's data, and the figures of the fit (validation NLL/ECE before and after)."""
    val_logits, val_features, val_layers = slice_outputs(model, val_bank, device)
    val_labels = val_bank.roi_labels()
    n_val = len(val_bank.rois)
    temperature = fit_temperature(val_logits, val_bank.roi_of_slice, val_labels)
    before = roi_probabilities(val_logits, val_bank.roi_of_slice, n_val)
    after = roi_probabilities(val_logits, val_bank.roi_of_slice, n_val, temperature)
    confidence_threshold, rule = fit_confidence_threshold(after, val_labels)
    # rounded down: the card's threshold answers every ROI the fitted one answers
    trust = Trust(temperature=temperature, confidence_threshold=math.floor(confidence_threshold * 1e4) / 1e4)
    report = {"val_rois": n_val, "val_nll_before": nll(before, val_labels), "val_nll_after": nll(after, val_labels),
              "val_ece_before": expected_calibration_error(before, val_labels),
              "val_ece_after": expected_calibration_error(after, val_labels), **rule}
    if val_features is not None:
        _, train_features, train_layers = slice_outputs(model, train_bank, device)
        slice_labels = train_bank.roi_labels()[train_bank.roi_of_slice]
        means, precision = fit_class_gaussians(train_features, slice_labels, val_logits.shape[1])
        trust.class_means, trust.precision = means, precision
        scores = np.array([trust.roi_ood_score(val_features[val_bank.roi_of_slice == r]) for r in range(n_val)])
        trust.ood_threshold = round(float(np.quantile(scores, OOD_QUANTILE) * OOD_MARGIN), 3)
        report.update(train_slices=len(train_features), ood_quantile=OOD_QUANTILE, ood_margin=OOD_MARGIN,
                      val_ood_score_median=float(np.median(scores)))
        report.update(fit_site_check(trust, train_layers, slice_labels, val_layers, val_bank.roi_of_slice, n_val,
                                     val_logits.shape[1]))
    trust.fit = rounded_fit(report)
    return trust, report


def rounded_fit(report: dict) -> dict:
    """A fit report as the card's `trust.fit` keeps it (floats to 5 decimals)."""
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in report.items()}


def fit_site_check(trust: Trust, train_layers: np.ndarray, slice_labels: np.ndarray, val_layers: np.ndarray,
                   val_roi_of_slice: np.ndarray, n_val: int, n_classes: int, threshold: float | None = None) -> dict:
    """The site check (staging.trust) of `trust`: one tied-covariance Gaussian per class and block on the
    training slices' token statistics, each block's scale and the threshold from the validation ROIs
    (`threshold`: an operating point chosen elsewhere instead, reported with its validation false-alarm rate)."""
    fits = [fit_class_gaussians(train_layers[:, k].astype(np.float64), slice_labels, n_classes)
            for k in range(train_layers.shape[1])]
    trust.layer_means = np.stack([m for m, _ in fits])
    trust.layer_precisions = np.stack([p for _, p in fits])
    distances = np.stack([trust.layer_distances(val_layers[val_roi_of_slice == r]) for r in range(n_val)])
    trust.layer_scales = np.median(distances, axis=0)
    scores = (distances / trust.layer_scales).mean(axis=1)
    report = {"site_blocks": int(train_layers.shape[1]), "val_site_score_max": float(scores.max())}
    if threshold is None:
        trust.site_threshold = conformal_threshold(scores, SITE_QUANTILE)
        return {"site_quantile": SITE_QUANTILE, **report}
    trust.site_threshold = float(threshold)
    return {"site_threshold_chosen": float(threshold),
            "val_share_over_site_threshold": float(np.mean(scores > threshold)), **report}


def conformal_threshold(scores: np.ndarray, quantile: float) -> float:
    """Split-conformal threshold: the ceil((n + 1) q)-th smallest of n validation scores, so that a new study
    like them exceeds it with probability at most 1 - q.  With too few scores for that rank (a site's dozen
    validation ROIs in `adapt`) the largest is used: the false-alarm rate is then about 1 / (n + 1)."""
    ordered = np.sort(np.asarray(scores, np.float64))
    rank = min(math.ceil((len(ordered) + 1) * quantile), len(ordered))
    # rounded up: the card's threshold answers every ROI the fitted one answers
    return math.ceil(float(ordered[rank - 1]) * 1e4) / 1e4


@dataclass
class TrustedOutputs:
    """Per-ROI calibrated probabilities [R, C], the reason each ROI is indeterminate (None: staged), its OOD
    score and its site check's score, exactly as `stage` decides them."""
    probabilities: np.ndarray
    reasons: list
    ood_scores: list
    site_scores: list


def trusted_outputs(model, trust: Trust, bank: SliceBank, device: torch.device) -> TrustedOutputs:
    logits, features, layers = slice_outputs(model, bank, device, need_layers=trust.site_threshold is not None)
    n = len(bank.rois)
    probs = roi_probabilities(logits, bank.roi_of_slice, n, trust.temperature)
    rows = [bank.roi_of_slice == r for r in range(n)]
    scores = [None if features is None else trust.roi_ood_score(features[r]) for r in rows]
    sites = [None if layers is None else trust.roi_site_score(layers[r]) for r in rows]
    reasons = [trust.decide(p, s, site) for p, s, site in zip(probs, scores, sites)]
    return TrustedOutputs(probs, reasons, scores, sites)


def trusted_predictions(model, trust: Trust, bank: SliceBank, device: torch.device):
    """(probabilities, reasons, OOD scores) of `trusted_outputs`."""
    out = trusted_outputs(model, trust, bank, device)
    return out.probabilities, out.reasons, out.ood_scores


def trusted_split_metrics(model, trust: Trust, bank: SliceBank, device: torch.device, classes) -> dict:
    """staging_metrics (indeterminate counted wrong) and ECE of the bank's ROIs, answered as `stage` decides."""
    out = trusted_outputs(model, trust, bank, device)
    scores = staging_metrics(bank.roi_labels(), out.probabilities, classes, [r is not None for r in out.reasons])
    scores["ece"] = expected_calibration_error(out.probabilities, bank.roi_labels())
    return scores


def trust_tensors(trust: Trust) -> dict:
    """The Trust's arrays as tensors named for the weights file."""
    from ..staging.trust import TRUST_PREFIX

    return {TRUST_PREFIX + k: torch.from_numpy(v) for k, v in trust.tensors().items()}


def calibrate_model(data, model: str | None, out, model_id: str | None = None, device: str = "auto",
                    publish: bool = False) -> dict:
    """Fit (or re-fit) a model's trust parts on a dataset's train/val splits and save it as a new model:
    same network weights, a card with the new `trust` section and validation figures."""
    from pathlib import Path

    from ..core.errors import UserError
    from ..core.progress import status
    from ..io.dataset import load_dataset
    from ..models.catalog import save_model, user_dir
    from ..staging.inference import Stager
    from .slice_bank import build_slice_bank

    dataset = load_dataset(data)
    stager = Stager(model, device)
    bank = build_slice_bank(dataset, stager.cfg.input, with_crops=stager.cfg.architecture != "vdpf",
                            crop_margin=stager.cfg.crop_margin_px)
    train_bank, val_bank = bank.split("train"), bank.split("val")
    if not train_bank.rois or not val_bank.rois:
        raise UserError(f"{data}: calibration needs labeled ROIs in both the 'train' and the 'val' split")
    trust, report = fit_trust(stager.model, train_bank, val_bank, stager.device)
    card = {k: v for k, v in stager.entry.card.items() if k not in ("id", "sha256")}
    card["trust"] = trust.card_section()
    card["calibration_data"] = dataset.provenance()
    weights = {**stager.model.state_dict(), **trust_tensors(trust)}
    model_id = model_id or f"{stager.entry.id}-calibrated"
    entry = save_model(weights, card, Path(out), model_id)
    if publish:
        save_model(weights, card, user_dir(), model_id)
    status(f"calibrate: T={trust.temperature:.3f}, val NLL {report['val_nll_before']:.3f} -> "
           f"{report['val_nll_after']:.3f}, ECE {report['val_ece_before']:.3f} -> {report['val_ece_after']:.3f}; "
           f"confidence threshold {trust.confidence_threshold}, OOD threshold {trust.ood_threshold}")
    status(f"calibrate: model card {entry.card_path}")
    return card
