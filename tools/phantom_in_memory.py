"""Phantom studies rendered in memory into a slice bank, for a machine without SimpleITK/slicerio (a lent GPU box).

The studies of `dvt-staging phantom --cases N --seed S` are re-rendered from the same per-case seeds
(`phantom.writer.plan_cases`), so the bank holds the slices `dvt-staging train` reads from those files.
Imported by tools/compare_in_memory.py and tools/train_in_memory.py.
"""
import hashlib
import json
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
from DVTStagingLib.phantom.styles import HELD_OUT_STYLES, TRAINING_STYLE, make_study  # noqa: E402
from DVTStagingLib.phantom.writer import case_id, plan_cases  # noqa: E402
from DVTStagingLib.staging.slices import prepare_study  # noqa: E402
from DVTStagingLib.training.slice_bank import (  # noqa: E402
    MAX_SLICES_PER_ROI,
    SliceBank,
    bank_from_items,
    load_bank,
    roi_items,
    save_bank,
)

CLASSES = list(STAGES)


def _case_items(plan: dict, seed: int, specs: list[dict], with_crops: bool, crop_margin: int,
                style: str = TRAINING_STYLE) -> list[list[dict]]:
    """The bank items of one study, for each input spec (the study is rendered once)."""
    torch.set_num_threads(1)
    study = make_study(plan["seed"], plan["stages"], style)
    case = case_id(seed, plan["index"], style)
    per_spec = []
    for spec in specs:
        view = prepare_study(study.volume, InputSpec.from_dict(spec))
        per_spec.append([roi_items(view, roi, {"case": case, "roi": roi.name, "stage": t["stage"],
                                               "label": CLASSES.index(t["stage"]), "split": plan["split"]},
                                   with_crops, crop_margin)
                         for roi, t in zip(study.rois, study.truth["thrombi"])])
    return per_spec


def render_banks(cases: int, seed: int, specs: list[InputSpec], with_crops: bool, crop_margin: int = 5,
                 workers: int | None = None, splits: tuple[str, ...] | None = None, style: str = TRAINING_STYLE,
                 for_training: bool = True) -> list[SliceBank]:
    """One slice bank per input spec of `dvt-staging phantom --cases N --seed S [--style]`, built without files;
    each study is rendered once.  Every split, or only the studies of `splits`.  A held-out style is refused
    for training (it is an external site, for scoring only)."""
    if for_training and style in HELD_OUT_STYLES:
        raise SystemExit(f"the phantom style {style!r} is held out: score on it, never train on it")
    code = _drawing_code_digest() if os.environ.get("DVT_BANK_CACHE") else None
    cached = [_cache_path(cases, seed, spec, with_crops, crop_margin, splits, style, code) for spec in specs]
    if all(p is not None and p.is_file() for p in cached):
        return [load_bank(p, with_crops) for p in cached]
    plans = [p for p in plan_cases(cases, seed) if splits is None or p["split"] in splits]
    work = partial(_case_items, seed=seed, specs=[s.to_dict() for s in specs], with_crops=with_crops,
                   crop_margin=crop_margin, style=style)
    with get_context("fork").Pool(workers or os.cpu_count() or 1) as pool:
        per_case = pool.map(work, plans, chunksize=2)
    banks = [bank_from_items([i for case in per_case for i in case[k]], with_crops) for k in range(len(specs))]
    for path, bank in zip(cached, banks):
        if path is not None:
            save_bank(path, bank)
    return banks


LIB = Path(__file__).resolve().parents[1] / "DVTStaging" / "DVTStagingLib"
DRAWING_CODE = [*sorted((LIB / "phantom").rglob("*.py")), LIB / "staging" / "slices.py",
                LIB / "training" / "slice_bank.py"]


def _drawing_code_digest() -> bytes:
    """sha256 of the code that draws and slices the studies: read once per request, shared by its banks."""
    h = hashlib.sha256()
    for source in DRAWING_CODE:
        h.update(source.read_bytes())
    return h.digest()


def _cache_path(cases, seed, spec: InputSpec, with_crops, crop_margin, splits, style, code) -> Path | None:
    """Where DVT_BANK_CACHE (a folder, when set) keeps this bank: keyed by the request and the phantom's own
    code and slicing, so a changed drawing never reuses slices of the old one (the tools re-fitting a model after its
    training then read the training's rendering instead of drawing 1200 studies again)."""
    folder = os.environ.get("DVT_BANK_CACHE")
    if not folder:
        return None
    h = hashlib.sha256(json.dumps([cases, seed, spec.to_dict(), with_crops, crop_margin, sorted(splits or []),
                                   style, MAX_SLICES_PER_ROI]).encode())
    h.update(code)
    return Path(folder) / f"bank-{style}-{seed}-{cases}-{h.hexdigest()[:16]}.npz"


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
