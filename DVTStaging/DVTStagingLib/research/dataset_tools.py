"""`dataset stats` and `dataset split`: what a labeled dataset holds, and patient-wise train/val/test splits.

Stats count cases and labelled ROIs per split and stage, and measure every
ROI: its box size in mm and, when the case's segmentation has a "thrombus"
segment, the thrombus voxels inside the box (extent along the image axes in
mm, and volume).

Splits keep every patient (case field ``patient``, else the case id) in a
single split, and balance the stages across splits as far as whole patients
allow: patients are grouped by their most frequent stage and each group is
dealt out, in a seeded random order, to the split furthest below its share.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..core.errors import UserError
from ..io.dataset import Case, Dataset, load_dataset, write_dataset_json

STATS_SCHEMA = "dvt-staging/dataset-stats@1"
SPLIT_NAMES = ("train", "val", "test")
NO_STAGE = "none"


# ---------------------------------------------------------------------------
# stats
# ---------------------------------------------------------------------------
def _summary(values) -> dict | None:
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return {"n": len(values), "median": round(float(np.median(values)), 2),
            "min": round(min(values), 2), "max": round(max(values), 2)}


def _grid_of(segmentation):
    """A `Volume` on the segmentation's grid (for ROI voxel masks), without reading the image."""
    from ..io.volume import Volume

    m = np.asarray(segmentation.ijk_to_lps, dtype=float)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    return Volume(segmentation.labelmap, spacing, m[:3, 3], m[:3, :3] / spacing[None, :])


def _roi_records(dataset: Dataset, case: Case, with_segments: bool) -> list[dict]:
    from ..io.roi import read_rois
    from ..io.segmentation import read_segmentation

    rois = [roi for rel in case.rois for roi in read_rois(dataset.path(rel))]
    thrombus = grid = None
    if with_segments and case.segmentation:
        seg = read_segmentation(dataset.path(case.segmentation))
        thrombus = seg.find_mask("thrombus")
        grid = _grid_of(seg) if thrombus is not None else None
    records = []
    for roi in rois:
        rec = {"case": case.id, "roi": roi.name, "split": case.split, "stage": case.stage_of(roi.name),
               "box_size_mm": [round(float(v), 2) for v in roi.size_mm],
               "box_length_mm": round(float(np.max(roi.size_mm)), 2),
               "thrombus_voxels": None, "thrombus_extent_mm": None, "thrombus_length_mm": None,
               "thrombus_volume_ml": None}
        if thrombus is not None:
            inside = thrombus & roi.voxel_mask(grid)
            rec["thrombus_voxels"] = int(np.count_nonzero(inside))
            if rec["thrombus_voxels"]:
                k, j, i = np.nonzero(inside)
                extent = (np.array([np.ptp(i), np.ptp(j), np.ptp(k)]) + 1) * grid.spacing
                rec["thrombus_extent_mm"] = [round(float(v), 2) for v in extent]
                rec["thrombus_length_mm"] = round(float(extent.max()), 2)
                rec["thrombus_volume_ml"] = round(rec["thrombus_voxels"] * float(np.prod(grid.spacing)) / 1000, 4)
        records.append(rec)
    return records


def dataset_stats(root, with_segments: bool = True) -> dict:
    """Counts per split and stage, and thrombus sizes per stage (JSON-friendly)."""
    dataset = load_dataset(root)
    stages = list(dataset.classes) + [NO_STAGE]
    splits = {}
    records = []
    for case in dataset.cases:
        entry = splits.setdefault(case.split, {"cases": 0, "patients": set(), "rois": {s: 0 for s in stages},
                                               "cases_without_roi": 0})
        entry["cases"] += 1
        entry["patients"].add(patient_of(case))
        case_records = _roi_records(dataset, case, with_segments)
        if not case_records:
            entry["cases_without_roi"] += 1
        for rec in case_records:
            entry["rois"][rec["stage"] or NO_STAGE] += 1
        records.extend(case_records)
    order = [s for s in (*SPLIT_NAMES, "unassigned") if s in splits] + sorted(set(splits) - {*SPLIT_NAMES, "unassigned"})
    split_out = {name: {**splits[name], "patients": len(splits[name]["patients"])} for name in order}
    sizes = {}
    for stage in stages:
        recs = [r for r in records if (r["stage"] or NO_STAGE) == stage]
        if not recs:
            continue
        sizes[stage] = {"rois": len(recs),
                        "box_length_mm": _summary(r["box_length_mm"] for r in recs),
                        "thrombus_length_mm": _summary(r["thrombus_length_mm"] for r in recs),
                        "thrombus_volume_ml": _summary(r["thrombus_volume_ml"] for r in recs)}
    return {"schema": STATS_SCHEMA, "root": str(root), "classes": list(dataset.classes),
            "cases": len(dataset.cases), "patients": len({patient_of(c) for c in dataset.cases}),
            "rois": len(records), "splits": split_out, "sizes": sizes, "per_roi": records}


def _fmt(summary: dict | None) -> str:
    return "-" if summary is None else f"{summary['median']:.1f} ({summary['min']:.1f}-{summary['max']:.1f})"


def format_stats(stats: dict) -> str:
    stages = stats["classes"] + [NO_STAGE]
    lines = [f"{stats['root']}: {stats['cases']} cases, {stats['patients']} patients, {stats['rois']} ROIs", ""]
    head = f"{'split':<11}{'cases':>6}{'patients':>9}" + "".join(f"{s:>10}" for s in stages) + f"{'no ROI':>8}"
    lines += [head, "-" * len(head)]
    for name, s in stats["splits"].items():
        lines.append(f"{name:<11}{s['cases']:>6}{s['patients']:>9}" + "".join(f"{s['rois'][st]:>10}" for st in stages)
                     + f"{s['cases_without_roi']:>8}")
    lines += ["", "ROI counts per stage; sizes median (min-max):", ""]
    head = f"{'stage':<11}{'ROIs':>5}  {'box length mm':<22}{'thrombus length mm':<22}{'thrombus volume mL':<22}"
    lines += [head, "-" * len(head)]
    for stage, s in stats["sizes"].items():
        lines.append(f"{stage:<11}{s['rois']:>5}  {_fmt(s['box_length_mm']):<22}{_fmt(s['thrombus_length_mm']):<22}"
                     f"{_fmt(s['thrombus_volume_ml']):<22}")
    return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------
def patient_of(case: Case) -> str:
    patient = case.extra.get("patient")
    return str(patient) if patient not in (None, "") else case.id


def _main_stage(cases: list[Case]) -> str:
    counts = Counter(label.get("stage") or NO_STAGE for case in cases for label in case.labels)
    if not counts:
        return NO_STAGE
    best = max(counts.values())
    return sorted(s for s, n in counts.items() if n == best)[0]


def check_fractions(fractions) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(not np.isfinite(f) or f < 0 for f in fractions):
        raise UserError(f"--fractions needs three non-negative numbers (train val test), got {list(fractions)}")
    if abs(sum(fractions) - 1.0) > 0.01:
        raise UserError(f"--fractions must add up to 1, got {list(fractions)} (sum {sum(fractions):g})")
    return fractions


def assign_splits(cases: list[Case], seed: int = 0, fractions=(0.6, 0.2, 0.2), by: str = "patient") -> dict[str, str]:
    """Case id -> split, with every group (patient, or case with by='case') in one split."""
    fractions = np.asarray(check_fractions(fractions))
    key = patient_of if by == "patient" else (lambda c: c.id)
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(key(case), []).append(case)
    strata: dict[str, list[str]] = {}
    for gid in sorted(groups):
        strata.setdefault(_main_stage(groups[gid]), []).append(gid)
    rng = np.random.default_rng(seed)
    total = np.zeros(3)
    out = {}
    for stage in sorted(strata):
        gids = list(strata[stage])
        rng.shuffle(gids)
        gids.sort(key=lambda g: -len(groups[g]))     # big patients first, while there is room (stable)
        n_stratum = sum(len(groups[g]) for g in gids)
        placed = np.zeros(3)
        for gid in gids:
            size = len(groups[gid])
            # the split furthest below its share, of this stage and overall (a stage with few
            # patients cannot fill every split; the overall share then decides)
            deficit = fractions * n_stratum - placed
            overall = fractions * (total.sum() + size) - total
            score = np.where(fractions > 0, deficit + overall, -np.inf)
            choice = int(np.argmax(score))
            placed[choice] += size
            total[choice] += size
            for case in groups[gid]:
                out[case.id] = SPLIT_NAMES[choice]
    return out


def split_dataset(root, by: str = "patient", seed: int = 0, fractions=(0.6, 0.2, 0.2),
                  overwrite: bool = False) -> Dataset:
    """Assign train/val/test to every case and rewrite dataset.json atomically."""
    if by not in ("patient", "case"):
        raise UserError(f"--by must be 'patient' or 'case', got '{by}'")
    fractions = check_fractions(fractions)
    dataset = load_dataset(root)
    if not dataset.cases:
        raise UserError(f"{root} has no cases to split")
    assigned = [c for c in dataset.cases if c.split != "unassigned"]
    if assigned and not overwrite:
        raise UserError(f"{len(assigned)} of {len(dataset.cases)} cases in {root} already have a split "
                        f"({', '.join(sorted({c.split for c in assigned}))}); pass --overwrite to reassign them")
    splits = assign_splits(dataset.cases, seed, fractions, by)
    for case in dataset.cases:
        case.split = splits[case.id]
    write_dataset_json(dataset)
    return dataset


def format_split(dataset: Dataset) -> str:
    lines = []
    for name in SPLIT_NAMES:
        cases = dataset.split(name)
        stages = Counter(label.get("stage") or NO_STAGE for c in cases for label in c.labels)
        detail = ", ".join(f"{s} {stages[s]}" for s in (*dataset.classes, NO_STAGE) if stages[s])
        lines.append(f"{name:<6}{len(cases):>4} cases {len({patient_of(c) for c in cases}):>4} patients"
                     + (f"  ROIs: {detail}" if detail else ""))
    return "\n".join(lines)
