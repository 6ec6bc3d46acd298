"""A plain (non-editable) install of the core: the wheel carries the bundled models and schemas, and
`stage --auto-roi` works from another folder with nothing of the source tree around."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel from a copy of the tree (the source tree gets no build/ folder), then
    installed with `pip install --target` (dependencies come from this environment)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO / "DVTStaging", source / "DVTStaging", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-q", str(source), "-w", str(root)],
                   check=True, timeout=300, cwd=root)
    wheel = next(root.glob("dvt_staging-*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "-q", "--target", str(root / "site"), str(wheel)],
                   check=True, timeout=300, cwd=root)
    return wheel, root / "site"


def test_the_wheel_carries_the_bundled_models_and_schemas(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in (REPO / "DVTStaging" / "Resources" / "Models").iterdir():
        assert f"DVTStagingLib/Resources/Models/{model.name}" in names
    assert {"DVTStagingLib/schemas/result.schema.json", "DVTStagingLib/schemas/dataset.schema.json"} <= names
    assert not any(n.startswith(("DVTStagingPanel/", "Testing/")) for n in names)   # the Qt side stays in Slicer


def test_stage_with_auto_rois_from_another_folder(installed, tmp_path):
    _, site = installed
    from DVTStagingLib.phantom.study import make_study
    from DVTStagingLib.phantom.writer import write_study

    files = write_study(make_study(31, ["chronic"]), tmp_path / "study")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    probe = subprocess.run([sys.executable, "-c", "import DVTStagingLib; print(DVTStagingLib.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=60)
    assert Path(probe.stdout.strip()).is_relative_to(site), probe.stdout   # the installed copy, not the tree
    proc = subprocess.run([sys.executable, "-m", "DVTStagingLib", "stage", str(tmp_path / "study" / files["image"]),
                           "--auto-roi", "--device", "cpu", "--out", "out"],
                          capture_output=True, text=True, cwd=elsewhere, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((elsewhere / "out" / "result.json").read_text())
    assert result["rois"] and result["model"]["id"] == "vdpf-small-phantom"
