"""The test environment for installing packages: a fake `PythonSlicer` on PATH (Testing/fake_python_slicer.py)
and a folder of `*.dist-info` first on sys.path that it "installs" into.

This sets up the environment the module runs in (as Slicer puts PythonSlicer on PATH); it does not
patch the code under test.  Use as a context manager, or through a pytest fixture with monkeypatch.
"""

from __future__ import annotations

import importlib
import json
import os
import stat
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "fake_python_slicer.py"


class FakePythonSlicer:
    def __init__(self, folder, monkeypatch):
        folder = Path(folder)
        self.bin, self.site, self.state = folder / "bin", folder / "site-packages", folder / "pip-calls.jsonl"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.site.mkdir(parents=True, exist_ok=True)
        self.executable = self.bin / ("PythonSlicer.bat" if os.name == "nt" else "PythonSlicer")
        self.executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SCRIPT}" "$@"\n', encoding="utf-8")
        self.executable.chmod(self.executable.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_SITE_PACKAGES", str(self.site))
        monkeypatch.setenv("FAKE_PYTHON_STATE", str(self.state))
        monkeypatch.delenv("FAKE_PIP_FAIL", raising=False)
        monkeypatch.delenv("FAKE_PIP_SECONDS", raising=False)
        monkeypatch.syspath_prepend(str(self.site))   # removed from sys.path again after the test
        importlib.invalidate_caches()

    def installed(self, name: str, version: str) -> None:
        """A distribution already installed (shadows the one of the test environment: first on sys.path)."""
        folder = self.site / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir()
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                         encoding="utf-8")
        importlib.invalidate_caches()

    def calls(self) -> list[dict]:
        if not self.state.is_file():
            return []
        return [json.loads(line) for line in self.state.read_text(encoding="utf-8").splitlines() if line]
