"""Measure the phantom's cues from its own masks, and draw a montage a person can judge it by."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.stages import STAGES
from ..imaging.display import display_window, slice_view
from ..imaging.signal_ratio import thrombus_muscle_ratio
from ..io.dataset import Dataset
from ..io.roi import read_rois
from ..io.segmentation import MUSCLE, THROMBUS, read_segmentation
from ..io.volume import read_volume


def measure_case(dataset: Dataset, case) -> list[dict]:
    """Per ROI: stage and thrombus/muscle ratio measured on the stored image with the phantom's masks."""
    volume = read_volume(dataset.path(case.image))
    seg = read_segmentation(dataset.path(case.segmentation))
    thrombus = seg.labelmap == THROMBUS
    muscle = seg.labelmap == MUSCLE
    out = []
    for rel in case.rois:
        for roi in read_rois(dataset.path(rel)):
            in_roi = thrombus & roi.voxel_mask(volume)
            out.append({
                "case": case.id, "roi": roi.name, "stage": case.stage_of(roi.name),
                "ratio": thrombus_muscle_ratio(volume.array, in_roi, muscle),
                "voxels": int(in_roi.sum()),
            })
    return out


def ratio_statistics(measurements: list[dict]) -> dict:
    stats = {}
    for stage in STAGES:
        r = np.array([m["ratio"] for m in measurements if m["stage"] == stage and m["ratio"] is not None])
        if r.size:
            stats[stage] = {"n": int(r.size), "mean": float(r.mean()), "sd": float(r.std(ddof=1)) if r.size > 1 else 0.0,
                            "median": float(np.median(r))}
    return stats


def write_preview(dataset: Dataset, path: Path, measurements: list[dict] | None = None) -> Path:
    """PNG montage: one study per stage, its thrombus slice whole and zoomed, thrombus outlined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    chosen = {}
    for case in dataset.cases:
        for label in case.labels:
            if label["stage"] in STAGES and label["stage"] not in chosen:
                chosen[label["stage"]] = (case, label["roi"])
    if measurements is None:
        measurements = [m for case, _ in chosen.values() for m in measure_case(dataset, case)]
    stats = ratio_statistics(measurements)
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5), gridspec_kw={"height_ratios": [1.0, 1.0]})
    for col, stage in enumerate(STAGES):
        ax_full, ax_zoom = axes[0, col], axes[1, col]
        if stage not in chosen:
            ax_full.set_axis_off()
            ax_zoom.set_axis_off()
            ax_full.set_title(f"{stage}: no study in this dataset")
            continue
        case, roi_name = chosen[stage]
        volume = read_volume(dataset.path(case.image))
        seg = read_segmentation(dataset.path(case.segmentation))
        roi = next(r for rel in case.rois for r in read_rois(dataset.path(rel)) if r.name == roi_name)
        in_roi = (seg.labelmap == THROMBUS) & roi.voxel_mask(volume)
        k = int(np.argmax(in_roi.sum(axis=(1, 2))))
        view = slice_view(volume, k)
        mask_view = slice_view(volume, k, in_roi.astype(np.uint8))
        lo, hi = display_window(view.image)
        ratio = next((m["ratio"] for m in measurements if m["case"] == case.id and m["roi"] == roi_name), None)
        lo_ijk, hi_ijk = roi.ijk_extent(volume)
        for ax in (ax_full, ax_zoom):
            ax.imshow(view.image, cmap="gray", vmin=lo, vmax=hi, aspect=view.aspect, interpolation="nearest")
            ax.contour(mask_view.image, levels=[0.5], colors=["#ff8c00"], linewidths=1.2)
            ax.add_patch(Rectangle(view.rectangle(lo_ijk, hi_ijk)[:2], *view.rectangle(lo_ijk, hi_ijk)[2:],
                                   fill=False, edgecolor="#40e0ff", linewidth=1.0, linestyle="--"))
            ax.set_xticks([])
            ax.set_yticks([])
        rows, cols = np.nonzero(mask_view.image)
        rc, cc = rows.mean(), cols.mean()
        half = 28.0 / volume.spacing[0]
        ax_zoom.set_xlim(cc - half, cc + half)
        ax_zoom.set_ylim(rc + half / view.aspect, rc - half / view.aspect)
        ratio_text = f"{ratio:.2f}" if ratio is not None else "n/a"
        ax_full.set_title(f"{stage.upper()}  ({case.id}, {roi_name})\n{volume.shape_ijk} voxels, slice {k}", fontsize=10)
        ax_zoom.set_title(f"zoom: thrombus/muscle ratio {ratio_text}", fontsize=10)
    lines = [f"{s}: {v['mean']:.2f} ± {v['sd']:.2f} (n={v['n']})" for s, v in stats.items()]
    fig.suptitle("DVTStaging synthetic BTI phantom (not patient data)\nmeasured thrombus/muscle ratio  "
                 + "   ".join(lines), fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
