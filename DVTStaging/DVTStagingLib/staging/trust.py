"""Answers that can be trusted or say they are indeterminate: temperature scaling, a confidence threshold and an
out-of-distribution check, all fit on the model's own data and stored with the model.

- Temperature T (fit on the validation split): slice probabilities are softmax(logits / T).
- Confidence threshold (chosen on validation): an ROI whose highest calibrated probability is below it
  is "indeterminate: not confident".
- Out-of-distribution: the Mahalanobis distance (Lee et al. 2018) of each slice's fused feature vector to
  the nearest class mean, with one covariance shared by the classes, both fit on the training split only.
  An ROI's score is the median over its slices; above the threshold (chosen on validation) the ROI is
  "indeterminate: not what the model knows".
- Site check: the same distance on each encoder block's token statistics (the channels' mean and spread over
  the token grid, both views; models.vdpf.token_statistics), one Gaussian per block, after Lee et al.'s
  feature ensemble.  Early and middle blocks see the image's texture, noise and contrast, which move with the
  scanner and the renderer; the fused features the head reads barely do.  An ROI's score is the mean over
  blocks of its median slice distance, each divided by the block's validation median; above the threshold
  (a quantile of the validation ROIs' scores) the ROI is "indeterminate: out of distribution" as well: a
  study from a site the model was not fit to, which `dvt-staging adapt` fits it to.

The card holds the scalars (`trust` section); the weights file holds the means and the precision matrix
under the `trust.` prefix, so the sha256 of the weights covers them too.  Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRUST_PREFIX = "trust."
REASON_OOD = "out of distribution"
REASON_UNSURE = "not confident"
REASON_NO_THROMBUS = "no thrombus-like content"
SITE_TENSORS = ("layer_means", "layer_precisions", "layer_scales")


@dataclass
class Trust:
    temperature: float = 1.0
    confidence_threshold: float | None = None
    ood_threshold: float | None = None
    class_means: np.ndarray | None = None      # [classes, D]
    precision: np.ndarray | None = None        # [D, D], shared by the classes
    fit: dict | None = None                    # how each part was fit (for the card)
    site_threshold: float | None = None
    layer_means: np.ndarray | None = None      # [blocks, classes, F]
    layer_precisions: np.ndarray | None = None  # [blocks, F, F]
    layer_scales: np.ndarray | None = None     # [blocks] validation median of each block's ROI distance

    # -- storage -----------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, card: dict, state: dict) -> Trust:
        """The card's `trust` section and the weights' `trust.*` tensors (removed from `state`)."""
        tensors = {k[len(TRUST_PREFIX):]: state.pop(k) for k in list(state) if k.startswith(TRUST_PREFIX)}
        section = card.get("trust") or {}
        means, precision = tensors.get("class_means"), tensors.get("precision")
        site = {k: tensors[k].double().numpy() for k in SITE_TENSORS if k in tensors}
        has_site = len(site) == len(SITE_TENSORS)
        return cls(
            temperature=float(section.get("temperature", 1.0)),
            confidence_threshold=section.get("confidence_threshold"),
            ood_threshold=section.get("ood_threshold") if means is not None else None,
            class_means=None if means is None else means.double().numpy(),
            precision=None if precision is None else precision.double().numpy(),
            fit=section.get("fit"),
            site_threshold=section.get("site_threshold") if has_site else None,
            **(site if has_site else {}),
        )

    def card_section(self) -> dict:
        return {"temperature": self.temperature, "confidence_threshold": self.confidence_threshold,
                "ood_threshold": self.ood_threshold,
                "ood_method": "median over the ROI's slices of the Mahalanobis distance of the fused features "
                              "to the nearest class mean (shared covariance, fit on the training split)",
                **({"site_threshold": self.site_threshold,
                    "site_method": "mean over the encoder blocks of the median over the ROI's slices of the "
                                   "Mahalanobis distance of the block's token statistics to the nearest class "
                                   "mean, each divided by its validation median (fit on the training split)"}
                   if self.site_threshold is not None else {}),
                "fit": self.fit or {}}

    def tensors(self) -> dict:
        """numpy arrays to store beside the network's weights (prefix added by the caller)."""
        arrays = {}
        if self.class_means is not None:
            arrays.update(class_means=self.class_means, precision=self.precision)
        if self.site_threshold is not None:
            arrays.update({k: getattr(self, k) for k in SITE_TENSORS})
        return {k: np.asarray(v, np.float32) for k, v in arrays.items()}

    # -- scoring -----------------------------------------------------------------------------------
    def slice_distances(self, features: np.ndarray) -> np.ndarray | None:
        """[n] distance of each feature row to the nearest class mean (None without a fitted check)."""
        if self.class_means is None or len(features) == 0:
            return None
        return nearest_mean_distance(features, self.class_means, self.precision)

    def roi_ood_score(self, features: np.ndarray) -> float | None:
        distances = self.slice_distances(features)
        return None if distances is None else float(np.median(distances))

    def layer_distances(self, layers: np.ndarray) -> np.ndarray:
        """[blocks] each block's median slice distance for one ROI's token statistics [n, blocks, F]."""
        layers = np.asarray(layers, np.float64)
        return np.array([np.median(nearest_mean_distance(layers[:, k], self.layer_means[k], self.layer_precisions[k]))
                         for k in range(len(self.layer_means))])

    def roi_site_score(self, layers: np.ndarray | None) -> float | None:
        """The site check's score of one ROI (None without a fitted check or token statistics)."""
        if self.site_threshold is None or layers is None or len(layers) == 0:
            return None
        return float(np.mean(self.layer_distances(layers) / self.layer_scales))

    def decide(self, probabilities: np.ndarray, ood_score: float | None, site_score: float | None = None) -> str | None:
        """None when the ROI may be staged, else the reason it is indeterminate (one line)."""
        if ood_score is not None and self.ood_threshold is not None and ood_score > self.ood_threshold:
            return (f"{REASON_OOD}: the ROI does not look like the studies the model was trained on "
                    f"(feature distance {ood_score:.1f} > {self.ood_threshold:.1f})")
        if site_score is not None and self.site_threshold is not None and site_score > self.site_threshold:
            # the local view is the ROI's content, so an ROI without a thrombus can fail this check too
            return (f"{REASON_OOD}: the texture and contrast in and around the ROI differ from the studies the "
                    f"model was trained on (site check {site_score:.2f} > {self.site_threshold:.2f}): another "
                    f"scanner or site, which dvt-staging adapt fits the models to, or an ROI without a thrombus")
        confidence = float(np.max(probabilities))
        if self.confidence_threshold is not None and confidence < self.confidence_threshold:
            return (f"{REASON_UNSURE}: highest probability {confidence:.2f} is below "
                    f"{self.confidence_threshold:.2f} (threshold chosen on validation)")
        return None


def nearest_mean_distance(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """[n] Mahalanobis distance of each row of `features` to the nearest of `means` (shared precision)."""
    x, m = np.asarray(features, np.float64), np.asarray(means, np.float64)
    # (x - m) P (x - m)^T = x P x^T - 2 x P m^T + m P m^T: one [n, F] x [F, F] product for every class (BLAS)
    # instead of one per class; the site check has four blocks of 512 statistics per slice
    xp = x @ precision
    d2 = (xp * x).sum(axis=1, keepdims=True) - 2.0 * xp @ m.T + ((m @ precision) * m).sum(axis=1)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def content_reason(thrombus_probability: float, threshold: float) -> str | None:
    """Why an ROI without thrombus-like voxels is indeterminate (None when the detector sees some)."""
    if thrombus_probability >= threshold:
        return None
    return (f"{REASON_NO_THROMBUS}: the detector's highest thrombus probability inside the ROI is "
            f"{thrombus_probability:.2f} (< its pixel threshold {threshold:.2f})")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def study_decision(roi_probabilities: list[np.ndarray], roi_reasons: list[str | None],
                   trust: Trust) -> tuple[np.ndarray, str | None]:
    """The study's probabilities (mean over the ROIs that could be staged) and why it is indeterminate."""
    staged = [p for p, why in zip(roi_probabilities, roi_reasons) if why is None]
    if not staged:
        first = next((why for why in roi_reasons if why), "no ROI")
        return np.mean(roi_probabilities, axis=0), f"no ROI could be staged ({first})"
    probs = np.mean(staged, axis=0)
    return probs, trust.decide(probs, None)
