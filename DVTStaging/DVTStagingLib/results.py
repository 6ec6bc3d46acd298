"""What `stage` writes: result.json (schema dvt-staging/result@1), overlays, ROIs and the report picture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import numpy as np

from .catalog import NOT_FOR_CLINICAL_USE
from .dataset import load_json_schema
from .signal_ratio import estimated_ratio_in_box
from .slices import StudyView

RESULT_SCHEMA = "dvt-staging/result@1"
STUDY_RULE = "study probabilities are the mean of the ROI probabilities; each ROI's are the mean of its slices"


def _probs(classes, values) -> dict:
    return {c: float(v) for c, v in zip(classes, values)}


def roi_ratio(study: StudyView, roi) -> float | None:
    box = study.orientation.apply(roi.voxel_mask(study.volume))
    image = study.orientation.apply(study.volume.array)
    return estimated_ratio_in_box(image, box, study.orientation.spacing[1:])


def build_result(study: StudyView, results, classes, model_entry, device: str, input_path: str,
                 timings: dict, detection_scores: dict | None = None) -> dict:
    rois = []
    for r in results:
        ratio = roi_ratio(study, r.roi)
        rois.append({
            "name": r.roi.name,
            "stage": r.stage(classes),
            "probabilities": _probs(classes, r.probabilities),
            "slice_axis": r.pairs.axis,
            "slices": [{"index": int(i), "probabilities": _probs(classes, p)}
                       for i, p in sorted(zip(r.pairs.volume_slices, r.slice_probabilities), key=lambda x: x[0])],
            "thrombus_muscle_ratio": None if ratio is None else round(ratio, 3),
            "thrombus_muscle_ratio_method": "estimated: median of the ROI's central half / modal intensity "
                                            "5-30 mm around it (no thrombus segment)",
            "box": r.roi.to_dict(),
            "detection_score": None if detection_scores is None else detection_scores.get(r.roi.name),
        })
    study_probs = np.mean([r.probabilities for r in results], axis=0)
    card = model_entry.card
    return {
        "schema": RESULT_SCHEMA,
        "stage": classes[int(np.argmax(study_probs))],
        "probabilities": _probs(classes, study_probs),
        "classes": list(classes),
        "study_rule": STUDY_RULE,
        "rois": rois,
        "model": {"id": card["id"], "version": str(card.get("version", "")), "sha256": card["sha256"],
                  "config": card["config"].get("name", "")},
        "device": device,
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "input": {"path": str(input_path), "geometry": study.volume.geometry_dict()},
        "intended_use": NOT_FOR_CLINICAL_USE,
    }


def validate_result(result: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_json_schema("result.schema.json"))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(result)]


def write_result(result: dict, path: Path) -> Path:
    problems = validate_result(result)
    if problems:   # our own output failing its schema is a bug, not a user error
        raise RuntimeError(f"result.json would not match its schema: {problems[0]}")
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return Path(path)


STAGE_COLORS = {"acute": "#d62728", "subacute": "#ff7f0e", "chronic": "#1f77b4"}


def write_report(path: Path, study: StudyView, results, classes, attention, result: dict) -> Path:
    """One picture per study: slice with overlay and ROI, zoom on the lesion, per-slice curve, stage."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .views import display_window

    main = max(results, key=lambda r: float(np.max(r.probabilities)))
    image = study.orientation.apply(study.volume.array)
    heat = study.orientation.apply(attention.array)
    box = study.orientation.apply(main.roi.voxel_mask(study.volume))
    views = main.pairs.view_slices
    s = int(views[len(views) // 2])
    sl, hm = image[s].astype(np.float32), heat[s]
    lo, hi = display_window(image[views])
    aspect = study.orientation.spacing[1] / study.orientation.spacing[2]
    rows, cols = np.flatnonzero(box[s].any(axis=1)), np.flatnonzero(box[s].any(axis=0))

    fig = plt.figure(figsize=(13, 6.2), dpi=110)
    grid = fig.add_gridspec(2, 3, width_ratios=[1.5, 1, 1.2], height_ratios=[1, 1])
    ax_full, ax_zoom = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[0, 1])
    ax_plain, ax_curve, ax_bar = fig.add_subplot(grid[1, 1]), fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[1, 2])
    heat_rgba = plt.get_cmap("inferno")(hm)
    heat_rgba[..., 3] = np.clip(hm, 0, 1) * 0.75
    for ax in (ax_full, ax_zoom, ax_plain):
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        if ax is not ax_plain:
            ax.imshow(heat_rgba, aspect=aspect, interpolation="bilinear")
        ax.add_patch(Rectangle((cols[0] - 0.5, rows[0] - 0.5), cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1,
                               fill=False, ec="#00e5ff", lw=1.2))
        ax.set_xticks([]), ax.set_yticks([])
    pad_r, pad_c = int(40 / study.orientation.spacing[1]), int(40 / study.orientation.spacing[2])
    for ax in (ax_zoom, ax_plain):
        ax.set_xlim(cols[0] - pad_c, cols[-1] + pad_c)
        ax.set_ylim(rows[-1] + pad_r, rows[0] - pad_r)
    axis = main.pairs.axis
    vol_index = int(main.pairs.volume_slices[len(views) // 2])
    ax_full.set_title(f"{main.roi.name}: slice {axis}={vol_index}, cross-attention (local→global)", fontsize=10)
    ax_full.text(0.01, 0.99, "R", color="w", transform=ax_full.transAxes, va="top", fontsize=11)
    ax_full.text(0.99, 0.99, "L", color="w", transform=ax_full.transAxes, va="top", ha="right", fontsize=11)
    ax_zoom.set_title("lesion with overlay", fontsize=10)
    ax_plain.set_title("lesion (BTI)", fontsize=10)

    order = np.argsort(main.pairs.volume_slices)
    x = main.pairs.volume_slices[order]
    for k, c in enumerate(classes):
        ax_curve.plot(x, main.slice_probabilities[order, k], color=STAGE_COLORS.get(c), label=c, lw=1.6)
    ax_curve.axvline(vol_index, color="0.6", ls=":", lw=1)
    ax_curve.set_ylim(0, 1)
    ax_curve.set_xlabel(f"slice index ({axis})")
    ax_curve.set_ylabel("probability")
    ax_curve.set_title("per-slice probabilities", fontsize=10)
    ax_curve.legend(fontsize=8, loc="upper right")

    names = [r["name"] for r in result["rois"]]
    width = 0.8 / max(len(names), 1)
    for n, r in enumerate(result["rois"]):
        values = [r["probabilities"][c] for c in classes]
        xs = np.arange(len(classes)) + (n - (len(names) - 1) / 2) * width
        ax_bar.bar(xs, values, width=width * 0.95, color=[STAGE_COLORS.get(c) for c in classes],
                   alpha=1.0 if n == 0 else 0.6, edgecolor="k", lw=0.5)
        ratio = r.get("thrombus_muscle_ratio")
        ax_bar.text(0.02, 0.95 - 0.09 * n, f"{r['name']}: {r['stage']}  "
                    f"(thrombus/muscle ≈ {ratio:.2f})" if ratio is not None else f"{r['name']}: {r['stage']}",
                    transform=ax_bar.transAxes, fontsize=9, va="top")
    ax_bar.set_xticks(range(len(classes)), classes)
    ax_bar.set_ylim(0, 1.15)
    ax_bar.set_title("stage probabilities (mean over slices)", fontsize=10)

    stage = result["stage"]
    fig.suptitle(f"DVT stage: {stage.upper()}   " +
                 "  ".join(f"{c} {result['probabilities'][c]:.0%}" for c in classes) +
                 f"      model {result['model']['id']}", fontsize=13, color=STAGE_COLORS.get(stage, "k"))
    fig.text(0.5, 0.005, "Research software. Not for clinical use: the bundled model is trained on a synthetic phantom.",
             ha="center", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return Path(path)
