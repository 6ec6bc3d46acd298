"""report.png: one picture per study for the reader: the slice with the lesion evidence and the ROI, the
lesion zoomed (plain and with evidence), the cross-attention as a second map, curves, the stage or why
it is indeterminate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.stages import INDETERMINATE_COLOR, STAGE_COLORS
from .slices import StudyView

REPORT_ROIS = 6   # ROIs listed by name in the picture
# Each axes title at a fixed height (y=1): left to itself, matplotlib measures every tick label of every axes at
# each draw to lift titles over ticks on top, which no axes here has (the same picture; a tenth of its time).
TITLE = {"fontsize": 10, "y": 1.0}


def _heat_rgba(plt, heat: np.ndarray, cmap: str) -> np.ndarray:
    rgba = plt.get_cmap(cmap)(heat)
    rgba[..., 3] = np.clip(heat, 0, 1) * 0.75
    return rgba


def warm_up() -> None:
    """Load matplotlib, its fonts and its PNG writer now (a long-lived process, the staging service), so
    that its first report takes as long as the next ones (about 0.4 s less)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), dpi=50)
    ax = fig.add_subplot()
    ax.imshow(np.zeros((2, 2)), cmap="gray")
    ax.plot([0, 1])
    ax.bar([0], [1])
    ax.set_title("warm-up")
    fig.suptitle("warm-up")
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def write_report(path: Path, study: StudyView, results, classes, overlays: dict, result: dict) -> Path:
    """One picture per study; `overlays` maps "evidence" and "local-to-global" to volumes in the input's
    geometry."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..imaging.display import display_window

    main = max(results, key=lambda r: float(np.max(r.probabilities)))
    image = study.orientation.apply(study.volume.array)
    evidence = study.orientation.apply(overlays["evidence"].array)
    attention = study.orientation.apply(overlays["local-to-global"].array)
    box = study.box(main.roi)
    views = main.pairs.view_slices
    # the slice the stage leaned on most (the evidence peak), else the ROI's middle slice
    peak = int(np.argmax(evidence[views].reshape(len(views), -1).max(axis=1))) if evidence[views].max() > 0 \
        else len(views) // 2
    s = int(views[peak])
    sl = image[s].astype(np.float32)
    lo, hi = display_window(image[views])
    aspect = study.orientation.spacing[1] / study.orientation.spacing[2]
    rows, cols = np.flatnonzero(box[s].any(axis=1)), np.flatnonzero(box[s].any(axis=0))

    fig = plt.figure(figsize=(16, 6.2), dpi=110)
    grid = fig.add_gridspec(2, 4, width_ratios=[1.5, 1, 1.2, 1.2], height_ratios=[1, 1])
    ax_full, ax_plain, ax_zoom = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])
    ax_att = fig.add_subplot(grid[:, 2])
    ax_curve, ax_bar = fig.add_subplot(grid[0, 3]), fig.add_subplot(grid[1, 3])
    heat = {ax_full: _heat_rgba(plt, evidence[s], "inferno"), ax_zoom: _heat_rgba(plt, evidence[s], "inferno"),
            ax_att: _heat_rgba(plt, attention[s], "viridis")}
    for ax in (ax_full, ax_zoom, ax_plain, ax_att):
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        if ax in heat:
            ax.imshow(heat[ax], aspect=aspect, interpolation="bilinear")
        ax.add_patch(Rectangle((cols[0] - 0.5, rows[0] - 0.5), cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1,
                               fill=False, ec="#00e5ff", lw=1.2))
        ax.xaxis.set_visible(False), ax.yaxis.set_visible(False)   # no ticks: nothing of the axis is drawn
    pad_r, pad_c = int(40 / study.orientation.spacing[1]), int(40 / study.orientation.spacing[2])
    for ax in (ax_zoom, ax_plain):
        ax.set_xlim(cols[0] - pad_c, cols[-1] + pad_c)
        ax.set_ylim(rows[-1] + pad_r, rows[0] - pad_r)
    axis = main.pairs.axis
    vol_index = int(main.pairs.volume_slices[peak])
    ax_full.set_title(f"{main.roi.name}: slice {axis}={vol_index}, lesion evidence", **TITLE)
    ax_att.set_title("cross-attention: where the lesion's tokens\nlooked in the whole slice", **TITLE)
    ax_full.text(0.01, 0.99, "R", color="w", transform=ax_full.transAxes, va="top", fontsize=11)
    ax_full.text(0.99, 0.99, "L", color="w", transform=ax_full.transAxes, va="top", ha="right", fontsize=11)
    ax_zoom.set_title("lesion with evidence", **TITLE)
    ax_plain.set_title("lesion (BTI)", **TITLE)

    order = np.argsort(main.pairs.volume_slices)
    x = main.pairs.volume_slices[order]
    for k, c in enumerate(classes):
        ax_curve.plot(x, main.slice_probabilities[order, k], color=STAGE_COLORS.get(c), label=c, lw=1.6)
    ax_curve.axvline(vol_index, color="0.6", ls=":", lw=1)
    # a little room past 0 and 1 (a certain class would hide under the frame) and the legend above the
    # plot, where it covers no curve
    ax_curve.set_ylim(-0.04, 1.04)
    ax_curve.set_xlabel(f"slice index ({axis})")
    ax_curve.set_ylabel("probability")
    ax_curve.set_title("per-slice probabilities", pad=16, **TITLE)
    ax_curve.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 0.99), ncol=len(classes),
                    frameon=False, handlelength=1.5, borderaxespad=0.1)

    # A study may hold many ROIs: the picture lists the first few, result.json has them all.
    shown = result["rois"][:REPORT_ROIS]
    width = 0.8 / max(len(shown), 1)
    for n, r in enumerate(shown):
        values = [r["probabilities"][c] for c in classes]
        xs = np.arange(len(classes)) + (n - (len(shown) - 1) / 2) * width
        ax_bar.bar(xs, values, width=width * 0.95, color=[STAGE_COLORS.get(c) for c in classes],
                   alpha=1.0 if n == 0 else 0.6, edgecolor="k", lw=0.5)
        ratio = r.get("thrombus_muscle_ratio")
        ax_bar.text(0.02, 0.96 - 0.075 * n, f"{r['name']}: {r['stage']}  "
                    f"(thrombus/muscle ≈ {ratio:.2f})" if ratio is not None else f"{r['name']}: {r['stage']}",
                    transform=ax_bar.transAxes, fontsize=9, va="top")
    hidden = len(result["rois"]) - len(shown)
    if hidden > 0:
        ax_bar.text(0.02, 0.96 - 0.075 * len(shown), f"+{hidden} more ROIs (see result.json)",
                    transform=ax_bar.transAxes, fontsize=9, va="top", color="0.35")
    ax_bar.set_xticks(range(len(classes)), classes)
    lines = len(shown) + (hidden > 0)
    ax_bar.set_ylim(0, 1.15 + 0.12 * max(lines - 2, 0))   # room above the bars for the list of ROIs
    ax_bar.set_title("stage probabilities (mean over slices)", **TITLE)

    stage = result["stage"]
    fig.suptitle(f"DVT stage: {stage.upper()}   " +
                 "  ".join(f"{c} {result['probabilities'][c]:.0%}" for c in classes) +
                 f"      model {result['model']['id']}", fontsize=13, color=STAGE_COLORS.get(stage, INDETERMINATE_COLOR))
    if result.get("reason"):
        fig.text(0.5, 0.935, f"why indeterminate: {result['reason']}", ha="center", fontsize=9,
                 color=INDETERMINATE_COLOR)
    fig.text(0.5, 0.005, "Research software. Not for clinical use: the bundled model is trained on a synthetic phantom.",
             ha="center", fontsize=8, color="0.35")
    # Fixed margins instead of tight_layout, and light PNG compression: the same picture in half the time
    # (the report is a large share of a warm Stage click).
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.08, top=0.86 if result.get("reason") else 0.89,
                        wspace=0.16, hspace=0.42)
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp.png")
    fig.savefig(tmp, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    os.replace(tmp, path)
    return Path(path)
