"""Write a labeled phantom dataset (docs/dataset-format.md), in parallel and deterministically."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .. import __version__
from ..core.errors import UserError
from ..core.progress import Progress
from ..core.stages import STAGES
from ..io.dataset import CLASSES, Case, Dataset, stratified_splits, write_dataset_json
from ..io.roi import write_rois
from ..io.segmentation import write_segmentation
from ..io.volume import write_volume
from .cues import STAGE_PRIOR
from .study import PhantomStudy
from .styles import TRAINING_STYLE, make_study, style_names

BILATERAL_FRACTION = 0.2     # studies with a thrombus in each leg
SAME_STAGE_BILATERAL = 0.7   # of those, both thrombi of the same age


def stage_counts(n: int) -> dict[str, int]:
    """Cases per stage for n cases, by the paper's case mix (largest remainder)."""
    exact = {s: STAGE_PRIOR[s] * n for s in STAGES}
    counts = {s: int(np.floor(v)) for s, v in exact.items()}
    for s in sorted(STAGES, key=lambda s: exact[s] - counts[s], reverse=True)[: n - sum(counts.values())]:
        counts[s] += 1
    return counts


def plan_cases(n_cases: int, seed: int, normal_fraction: float = 0.0) -> list[dict]:
    """Per case: its own seed, the stages of its thrombi (none for a normal study) and its split."""
    rng = np.random.default_rng([seed, 0])
    n_normal = int(round(normal_fraction * n_cases))
    kinds = [s for s, n in stage_counts(n_cases - n_normal).items() for _ in range(n)] + ["normal"] * n_normal
    rng.shuffle(kinds)
    splits = stratified_splits(kinds, seed)
    plans = []
    for index, kind in enumerate(kinds):
        stages = [] if kind == "normal" else [kind]
        if stages and rng.random() < BILATERAL_FRACTION:
            stages.append(kind if rng.random() < SAME_STAGE_BILATERAL
                          else str(rng.choice([s for s in STAGES if s != kind])))
        case_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        plans.append({"index": index, "seed": case_seed, "stages": stages, "split": splits[index]})
    return plans


def study_files(roi_names: list[str]) -> dict:
    """The files of one study's folder, relative to it: image, tissue segmentation, an ROI file per thrombus, truth."""
    return {"image": "image.nrrd", "segmentation": "tissues.seg.nrrd",
            "rois": [f"{name}.mrk.json" for name in roi_names], "truth": "truth.json"}


def write_study(study: PhantomStudy, folder: Path) -> dict:
    """Write study_files (truth.json last: a folder holding it is complete); paths relative to folder."""
    files = study_files([roi.name for roi in study.rois])
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(study.volume, folder / files["image"])
    write_segmentation(folder / files["segmentation"], study.labels, study.volume)
    for roi, name in zip(study.rois, files["rois"]):
        write_rois(folder / name, [roi])
    (folder / files["truth"]).write_text(json.dumps(study.truth, indent=1), encoding="utf-8")
    return files


def _finished_case(root: str, rel: Path, plan: dict, style: str) -> tuple[dict, dict] | None:
    """(files, truth) of a case an interrupted run already wrote completely (write_study writes truth.json last)."""
    truth_path = Path(root) / rel / study_files([])["truth"]
    if not truth_path.is_file():
        return None
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None     # cut off while truth.json itself was written: draw the case again
    if truth.get("seed") != plan["seed"] or truth.get("style", TRAINING_STYLE) != style:
        raise UserError(f"{Path(root) / rel} was drawn by another phantom run (seed or style differ); "
                        "--resume continues the same --cases, --seed and --style")
    return study_files([t["roi"] for t in truth["thrombi"]]), truth


def _make_case(root: str, the_id: str, plan: dict, style: str = TRAINING_STYLE, resume: bool = False) -> dict:
    rel = Path("cases") / the_id
    done = _finished_case(root, rel, plan, style) if resume else None
    if done is not None:
        files, truth = done
    else:
        study = make_study(plan["seed"], plan["stages"], style)
        study.truth["style"] = style
        files, truth = write_study(study, Path(root) / rel), study.truth
    case = Case(
        id=the_id,
        image=str(rel / files["image"]),
        segmentation=str(rel / files["segmentation"]),
        rois=[str(rel / f) for f in files["rois"]],
        labels=[{"roi": t["roi"], "stage": t["stage"], "side": t["side"]} for t in truth["thrombi"]],
        split=plan["split"],
        status="labeled",
        extra={"patient": the_id, "annotator": "phantom", "truth": str(rel / files["truth"]), "style": style},
    )
    return case.to_json()


def _prepare_output(out: Path, overwrite: bool, resume: bool = False):
    if resume:
        if (out / "dataset.json").is_file() or not (out / "cases").is_dir():
            raise UserError(f"{out} holds no interrupted phantom run to resume")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} is not empty; choose another --out or pass --overwrite")
        if not (out / "dataset.json").is_file() and not (out / "cases").is_dir():
            raise UserError(f"{out} is not empty and is not a dataset; refusing to overwrite it")
        (out / "dataset.json").unlink(missing_ok=True)
        shutil.rmtree(out / "cases", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def case_id(seed: int, index: int, style: str = TRAINING_STYLE) -> str:
    """Stable id of a phantom case; other styles carry their name so datasets never mix them up."""
    return f"phantom-{seed}-{index:04d}" if style == TRAINING_STYLE else f"phantom-{style}-{seed}-{index:04d}"


def write_phantom_dataset(out, n_cases: int, seed: int, workers: int | None = None, overwrite: bool = False,
                          normal_fraction: float = 0.0, show_progress: bool = True,
                          style: str = TRAINING_STYLE, resume: bool = False) -> Dataset:
    if n_cases < 1:
        raise UserError("--cases must be at least 1")
    if not 0.0 <= normal_fraction < 1.0:
        raise UserError("--normal-fraction must be in [0, 1)")
    if style not in style_names():
        raise UserError(f"unknown phantom style {style!r}; choose one of {', '.join(style_names())}")
    out = Path(out)
    _prepare_output(out, overwrite, resume)
    plans = plan_cases(n_cases, seed, normal_fraction)
    ids = [case_id(seed, p["index"], style) for p in plans]
    workers = max(1, min(workers or os.cpu_count() or 1, n_cases))
    progress = Progress("phantom", n_cases, enabled=show_progress)
    cases: list[dict | None] = [None] * n_cases
    if workers == 1:
        for n, (one_id, plan) in enumerate(zip(ids, plans)):
            cases[n] = _make_case(str(out), one_id, plan, style, resume)
            progress.update()
    else:
        # fork: workers inherit the imported modules; each case draws from its own seed,
        # so the result does not depend on the number of workers.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_make_case, str(out), one_id, plan, style, resume)
                       for one_id, plan in zip(ids, plans)]
            for n, future in enumerate(futures):
                cases[n] = future.result()
                progress.update()
    dataset = Dataset(
        out, [Case.from_json(c) for c in cases], CLASSES,
        {
            "name": "DVTStaging synthetic BTI phantom",
            "description": "Synthetic black-blood thrombus imaging studies of both thighs with labeled DVT "
                           "stage per thrombus ROI. Not patient data; not for clinical use.",
            "deidentified": True,
            "source": {"generator": "dvt-staging phantom", "version": __version__, "style": style, "seed": seed,
                       "cases": n_cases, "normal_fraction": normal_fraction},
        },
    )
    write_dataset_json(dataset)
    return dataset
