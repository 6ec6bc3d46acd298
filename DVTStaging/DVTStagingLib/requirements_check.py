"""Which of the module's Python requirements are missing (checked without importing them).

Slicer installs them on first use, after asking (slicer.packaging.pip_ensure);
this only answers the question, so it works the same in and out of Slicer.
torch is not listed: it comes from the PyTorch extension (PyTorchUtils).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

# Slicer ships these; installing another version would break Slicer itself.
NEVER_REPLACE = frozenset({"numpy", "simpleitk", "vtk", "scipy"})


def read_requirements(path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    reqs = [ln.split("#", 1)[0].strip() for ln in lines]
    return [r for r in reqs if r]


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


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None
