"""Training runs beyond one plain schedule: a wall-time limit, mixed precision, and the in-memory phantom bank
that tools/train_in_memory.py trains on (a lent GPU box has no SimpleITK to read the files)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import REPO
from DVTStagingLib.models.config import VDPF_TINY
from DVTStagingLib.training.slice_bank import build_slice_bank
from DVTStagingLib.training.train import run_training
from test_cli import assert_user_error, run_cli


def test_a_time_limit_ends_training_early_with_the_best_weights_and_the_card_says_so(phantom_dataset, tmp_path):
    card = run_training(phantom_dataset.root, VDPF_TINY, tmp_path / "limited", seed=2, epochs=3, model_id="limited",
                        publish=False, time_limit_s=1e-3, bf16=True)
    training = card["training"]
    assert training["epochs_run"] == 1 and training["epochs_planned"] == 3
    assert training["stopped_by"] == "time limit"
    assert training["precision"] == "float32"               # bf16 autocast is for a GPU; a CPU run says what it used
    assert (tmp_path / "limited" / "limited.safetensors").is_file()
    log = (tmp_path / "limited" / "train.log.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(log) == 1

    full = run_training(phantom_dataset.root, VDPF_TINY, tmp_path / "full", seed=2, epochs=2, model_id="full",
                        publish=False)
    assert full["training"]["epochs_run"] == 2 and "stopped_by" not in full["training"]


def test_a_time_limit_must_be_positive(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--time-limit-min", "0")
    assert code == 2 and "--time-limit-min" in err and "Traceback" not in err


def test_a_run_folder_with_a_run_is_refused_before_the_slices_are_built(phantom_dataset, tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"a run was here")
    code, _, err = run_cli(capsys, "train", "--data", phantom_dataset.root, "--config", "vdpf-tiny",
                           "--out", tmp_path, "--no-publish")
    assert_user_error(code, err, "--resume")
    assert "slices" not in err


def test_the_in_memory_phantom_bank_holds_the_slices_of_the_phantom_files(phantom_dataset):
    sys.path.insert(0, str(REPO / "tools"))
    from phantom_in_memory import provenance, render_bank

    source = json.loads((phantom_dataset.root / "dataset.json").read_text(encoding="utf-8"))["source"]
    files = build_slice_bank(phantom_dataset, VDPF_TINY.input, workers=1, cache=False)
    memory = render_bank(source["cases"], source["seed"], VDPF_TINY.input, with_crops=False, workers=2)
    assert memory.rois == files.rois
    for name in ("images", "masks", "roi_of_slice"):
        assert np.array_equal(getattr(memory, name), getattr(files, name)), name
    described = provenance(source["cases"], source["seed"])
    assert described["source"] == source
    assert described["splits"] == {s: len(phantom_dataset.split(s)) for s in described["splits"]}


def test_the_in_memory_bank_is_cached_for_the_tools_that_refit_a_model_and_refuses_a_held_out_style(
        phantom_dataset, tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "tools"))
    from phantom_in_memory import render_banks

    source = json.loads((phantom_dataset.root / "dataset.json").read_text(encoding="utf-8"))["source"]
    monkeypatch.setenv("DVT_BANK_CACHE", str(tmp_path / "cache"))
    (drawn,) = render_banks(source["cases"], source["seed"], [VDPF_TINY.input], with_crops=False, workers=2)
    (cached_file,) = (tmp_path / "cache").glob("bank-analytic-*.npz")
    (reread,) = render_banks(source["cases"], source["seed"], [VDPF_TINY.input], with_crops=False, workers=2)
    assert reread.rois == drawn.rois
    for name in ("images", "masks", "roi_of_slice"):
        assert np.array_equal(getattr(reread, name), getattr(drawn, name)), name
    # another request is another file: the cache never answers for studies it did not draw
    render_banks(1, source["seed"] + 1, [VDPF_TINY.input], with_crops=False, workers=1)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2 and cached_file.is_file()
    with pytest.raises(SystemExit, match="held out"):
        render_banks(1, 5, [VDPF_TINY.input], with_crops=False, workers=1, style="fields")
