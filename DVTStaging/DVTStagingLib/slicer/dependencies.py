"""The Python packages the module needs beyond Slicer's own, per entry point, and installing them.

Checked without importing anything.  torch (with torchvision) is installed
the way the PyTorch extension's PyTorchUtils does it, with light-the-torch, so
the build matches the GPU driver; the rest comes from Resources/requirements.txt
(`slicer.packaging.pip_ensure` from Slicer 5.12, our own pip run before).
Every install runs in a child process while the GUI keeps drawing a progress
dialog, and is asked for first.  Slicer's own numpy, scipy, SimpleITK, vtk
and pydicom are never touched.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import time
from pathlib import Path

import slicer

from .background import BackgroundProcess
from .jobs import slicer_python

# Slicer ships these; installing another version would break Slicer itself.
NEVER_REPLACE = frozenset({"numpy", "simpleitk", "vtk", "scipy", "pydicom"})
TORCH_REQUIREMENTS = ("torch>=2.1", "torchvision>=0.16")
LIGHT_THE_TORCH = "light-the-torch>=0.5"
ALL = "*"
# What each entry point imports beyond Slicer's bundle (package names of requirements.txt; ALL: every line).
FEATURE_PACKAGES = {
    "sample": ("slicerio",),                 # the phantom study writes a .seg.nrrd
    "worklist": (),                          # thrombus segmentations are read and written by Slicer itself
    "export": ("slicerio", "jsonschema"),    # segmentations and the validated dataset.json
    "stage": ALL,                            # the CLI child: model, report, result schema
}
NEEDS_TORCH = frozenset({"stage"})


def read_requirements(path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    reqs = [ln.split("#", 1)[0].strip() for ln in lines]
    return [r for r in reqs if r]


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower()


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements not satisfied by the installed distributions, in the given order."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.name.lower() in NEVER_REPLACE:
            raise ValueError(f"requirement '{text}' would replace a package Slicer ships; remove it")
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def requirements_for(feature: str, requirements_file) -> list[str]:
    """The lines of requirements.txt an entry point needs."""
    if feature not in FEATURE_PACKAGES:
        raise ValueError(f"unknown feature '{feature}' (use {', '.join(FEATURE_PACKAGES)})")
    wanted = FEATURE_PACKAGES[feature]
    lines = read_requirements(requirements_file)
    return lines if wanted == ALL else [r for r in lines if _name(r) in wanted]


def missing_for(feature: str, requirements_file) -> tuple[list[str], list[str]]:
    """(torch requirements, other requirements) that `feature` still lacks."""
    torch = missing_requirements(list(TORCH_REQUIREMENTS)) if feature in NEEDS_TORCH else []
    return torch, missing_requirements(requirements_for(feature, requirements_file))


def pip_install_command(python: str, requirements: list[str]) -> list[str]:
    return [python, "-m", "pip", "install", *requirements]


def torch_install_commands(python: str) -> list[list[str]]:
    return [pip_install_command(python, [LIGHT_THE_TORCH]),
            [python, "-m", "light_the_torch", "install", *TORCH_REQUIREMENTS]]


def _pip_ensure():
    """slicer.packaging.pip_ensure where this Slicer has it (5.12 and later), else None."""
    try:
        return importlib.import_module("slicer.packaging").pip_ensure
    except (ImportError, AttributeError):
        return None


def module_requirements_file() -> Path:
    """Resources/requirements.txt of the DVTStaging module (the package sits in the module's folder)."""
    return Path(__file__).resolve().parents[2] / "Resources" / "requirements.txt"


class _Cancelled(Exception):
    """The user pressed Cancel in an install's progress dialog."""


class DependencyInstaller:
    """Asks, installs in a child process with a progress dialog, and checks the result."""

    def __init__(self, requirements_file=None, python: str | None = None):
        self.requirements_file = Path(requirements_file or module_requirements_file())
        self.python = python               # None: Slicer's Python (PythonSlicer)

    def missing(self, feature: str) -> tuple[list[str], list[str]]:
        """(torch requirements, other requirements) that `feature` still lacks."""
        return missing_for(feature, self.requirements_file)

    def ensure(self, feature: str, ask_user: bool = True) -> bool:
        """True when `feature` can run; False when it cannot and the user knows why (declined, cancelled, Slicer
        showed the failed install, or Slicer runs its tests, which never install). Raises RuntimeError if our own
        install fails."""
        torch, packages = self.missing(feature)
        if not torch and not packages:
            return True
        if slicer.app.testingEnabled():
            return False
        listed = "\n".join(f"- {r}" for r in [*torch, *packages])
        if ask_user and not slicer.util.confirmOkCancelDisplay(
                f"DVT Staging needs these Python packages, which will be downloaded and installed now "
                f"(this may take several minutes):\n{listed}", windowTitle="DVT Staging - Install Python Packages"):
            return False
        python = self.python or slicer_python()
        torch_was_loaded = "torch" in sys.modules
        try:
            if torch:
                self._run(torch_install_commands(python), "Installing PyTorch (light-the-torch)")
            if packages:
                pip_ensure = _pip_ensure()
                if pip_ensure is not None:   # Slicer >= 5.12 shows its own progress dialog, and its own error
                    pip_ensure(packages, prompt_install=False, requester="DVTStaging")
                else:
                    self._run([pip_install_command(python, packages)], "Installing Python packages")
        except (_Cancelled, subprocess.CalledProcessError):
            return False
        importlib.invalidate_caches()
        torch, packages = self.missing(feature)
        if torch or packages:
            raise RuntimeError(f"still missing after installing: {', '.join([*torch, *packages])}")
        if torch_was_loaded:
            slicer.util.infoDisplay("PyTorch was updated while an older version was loaded: restart Slicer "
                                    "before staging.", windowTitle="DVT Staging")
        return True

    @staticmethod
    def _run(commands: list[list[str]], title: str) -> None:
        """Each command in a child process; the dialog shows its last output line and can cancel it."""
        dialog = slicer.util.createProgressDialog(maximum=0, labelText=title, windowTitle="DVT Staging")
        try:
            for argv in commands:
                process = BackgroundProcess(argv).start()
                while not process.finished:
                    process.poll(on_line=lambda stream, line: setattr(dialog, "labelText", f"{title}\n{line[-120:]}"))
                    slicer.app.processEvents()
                    if dialog.wasCanceled:
                        process.cancel()
                        raise _Cancelled(title)
                    time.sleep(0.05)
                process.poll()
                if process.returncode != 0:
                    raise RuntimeError(f"{title} failed: {process.error_message()}")
        finally:
            dialog.close()
