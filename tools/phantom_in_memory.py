"""Phantom studies rendered in memory into a slice bank, for a machine without SimpleITK/slicerio (a lent GPU box).

The studies of `dvt-staging phantom --cases N --seed S` are re-rendered from the same per-case seeds
(`phantom.writer.plan_cases`), so the bank holds the slices `dvt-staging train` reads from those files.
Imported by tools/compare_in_memory.py and tools/train_in_memory.py.
"""
import os
import sys
import types
from functools import partial
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DVTStaging"))
for _name in ("SimpleITK", "slicerio", "jsonschema"):      # imported by the core, never called here
    try:
        __import__(_name)
    except ImportError:
        sys.modules[_name] = types.ModuleType(_name)

import torch  # noqa: E402
from DVTStagingLib import __version__  # noqa: E402
from DVTStagingLib.core.stages import STAGES  # noqa: E402
from DVTStagingLib.models.config import InputSpec  # noqa: E402
from DVTStagingLib.phantom.study import make_study  # noqa: E402
from DVTStagingLib.phantom.styles import TRAINING_STYLE  # noqa: E402
from DVTStagingLib.phantom.writer import plan_cases  # noqa: E402
from DVTStagingLib.staging.slices import prepare_study  # noqa: E402
from DVTStagingLib.training.slice_bank import SliceBank, bank_from_items, roi_items  # noqa: E402

CLASSES = list(STAGES)


def _case_items(plan: dict, seed: int, specs: list[dict], with_crops: bool, crop_margin: int) -> list[list[dict]]:
    """The bank items of one study, for each input spec (the study is rendered once)."""
    torch.set_num_threads(1)
    study = make_study(plan["seed"], plan["stages"])
    case = f"phantom-{seed}-{plan['index']:04d}"
    per_spec = []
    for spec in specs:
        view = prepare_study(study.volume, InputSpec.from_dict(spec))
        per_spec.append([roi_items(view, roi, {"case": case, "roi": roi.name, "stage": t["stage"],
                                               "label": CLASSES.index(t["stage"]), "split": plan["split"]},
                                   with_crops, crop_margin)
                         for roi, t in zip(study.rois, study.truth["thrombi"])])
    return per_spec


def render_banks(cases: int, seed: int, specs: list[InputSpec], with_crops: bool, crop_margin: int = 5,
                 workers: int | None = None, splits: tuple[str, ...] | None = None) -> list[SliceBank]:
    """One slice bank per input spec of `dvt-staging phantom --cases N --seed S`, built without files; each
    study is rendered once.  Every split, or only the studies of `splits`."""
    plans = [p for p in plan_cases(cases, seed) if splits is None or p["split"] in splits]
    work = partial(_case_items, seed=seed, specs=[s.to_dict() for s in specs], with_crops=with_crops,
                   crop_margin=crop_margin)
    with get_context("fork").Pool(workers or os.cpu_count() or 1) as pool:
        per_case = pool.map(work, plans, chunksize=2)
    return [bank_from_items([i for case in per_case for i in case[k]], with_crops) for k in range(len(specs))]


def render_bank(cases: int, seed: int, spec: InputSpec, with_crops: bool, crop_margin: int = 5,
                workers: int | None = None) -> SliceBank:
    """The slice bank of `dvt-staging phantom --cases N --seed S`, every split, built without files."""
    return render_banks(cases, seed, [spec], with_crops, crop_margin, workers)[0]


def provenance(cases: int, seed: int, style: str = TRAINING_STYLE) -> dict:
    """What a model card records of this training data: the command that writes the same studies as files."""
    splits = {}
    for plan in plan_cases(cases, seed):
        splits[plan["split"]] = splits.get(plan["split"], 0) + 1
    return {"dataset": "DVTStaging synthetic BTI phantom", "folder": None, "dataset_json_sha256": None,
            "source": {"generator": "dvt-staging phantom", "version": __version__, "style": style, "seed": seed,
                       "cases": cases,
                       "normal_fraction": 0.0},
            "cases": cases, "splits": splits,
            "rendered": f"in memory (tools/phantom_in_memory.py): the studies of dvt-staging phantom --cases {cases} "
                        f"--seed {seed} --style {style}"}


def model_and_studies_arguments(description: str, more=None):
    """The arguments of a tool that re-fits part of a model on the studies it was trained on: its card and
    the `dvt-staging phantom --cases N --seed S` that drew them (`more(parser)` adds the tool's own)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("card", type=Path)
    p.add_argument("--cases", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--workers", type=int, default=None)
    if more is not None:
        more(p)
    return p.parse_args()
