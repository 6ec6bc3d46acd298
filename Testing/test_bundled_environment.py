"""The panel in a Python that has only what Slicer bundles (no torch, timm, slicerio, jsonschema, ...).

A child process installs an import hook (Testing/bundled_slicer_child.py) that makes every package
Slicer does not ship unimportable and invisible to importlib.metadata, then loads the module as Slicer
does, opens a worklist folder (needs nothing extra) and uses the sample, export, Stage and Auto-detect
entry points: each must ask to install its packages instead of failing with ModuleNotFoundError, and
nothing that is not bundled may be imported while the user declines.  Then the user accepts: a fake
PythonSlicer "installs" exactly what each entry point asked for, and the sample loads, the export is
written and the study is staged (by the real CLI) with nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from DVTStagingLib.phantom.study import make_study
from DVTStagingLib.phantom.writer import write_study

CHILD = Path(__file__).resolve().parent / "bundled_slicer_child.py"
SERVICE = ("fastapi>=0.165", "uvicorn>=0.30", "python-multipart>=0.0.18", "httpx>=0.27")   # the warm local worker
INSTALL = "DVT Staging needs these Python packages, which will be downloaded and installed now " \
          "(this may take several minutes):\n"


@pytest.fixture(scope="module")
def worklist_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundled-worklist")
    write_study(make_study(5, ["chronic"]), folder / "case-0")
    return folder


@pytest.mark.parametrize("version", ["5.10", "5.12"])
def test_entry_points_ask_to_install_instead_of_failing(worklist_folder, tmp_path, version):
    proc = subprocess.run([sys.executable, str(CHILD), version, str(worklist_folder), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ModuleNotFoundError" not in proc.stderr, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["metadata_hidden"] == ["timm", "slicerio", "jsonschema", "torch"]
    assert report["worklist_rows"] == 1 and report["study_opened"]
    assert report["questions_before_entry_points"] == 0          # loading, showing, the worklist: no install
    assert report["sample_asked"] == INSTALL + "- slicerio>=1.1" and not report["sample_loaded"]
    assert report["export_asked"] == INSTALL + "- slicerio>=1.1\n- jsonschema>=4.17" and not report["export_written"]
    everything = INSTALL + "\n".join(f"- {r}" for r in ("torch>=2.1", "torchvision>=0.16", "timm>=1.0",
                                                          "safetensors>=0.4", "slicerio>=1.1", "jsonschema>=4.17",
                                                          "matplotlib>=3.7", "isal>=1.6", *SERVICE))
    assert report["stage_asked"] == everything and report["detect_asked"] == everything
    assert report["running"] is False and report["ensure_declined"] is False
    assert report["errors_shown"] == [] and report["console_errors"] == []
    assert report["absent_loaded"] == []
    assert set(report["blocked_imports"]) <= {"org"}              # the standard library's Jython probe
    # Accepted: each feature's packages are enough for it.
    assert report["sample_loaded_after_install"] and report["installed_for_sample"] == ["slicerio"]
    assert report["export_written_after_install"]
    assert report["staged_after_install"].startswith("Study stage: ")
    assert report["installs"] == [["pip", ["slicerio>=1.1"]], ["pip", ["jsonschema>=4.17"]],
                                  ["pip", ["light-the-torch>=0.5"]],
                                  ["light_the_torch", ["torch>=2.1", "torchvision>=0.16"]],
                                  ["pip", ["timm>=1.0", "safetensors>=0.4", "matplotlib>=3.7", "isal>=1.6", *SERVICE]]]
    assert report["errors_after_install"] == [] and report["console_errors_after_install"] == []
