"""slicer.packaging (Slicer 5.12 and later; absent in 5.10: `import slicer.packaging` raises ImportError),
faked after Base/Python/slicer/packaging.py at v5.12.0.

pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
requester=None, skip_in_testing=True, show_progress=True): checks each requirement with
importlib.metadata (a version outside the specifier counts as missing); nothing missing -> None;
testing mode with skip_in_testing -> logs and returns None WITHOUT installing; prompt_install asks
confirmOkCancelDisplay and raises RuntimeError("User declined package installation") on Cancel; then
installs like Slicer does, by running `PythonSlicer -m pip install <missing...>` (PythonSlicer found on
PATH, RuntimeError if not) in a child process while the GUI keeps processing events; a failure shows
errorDisplay("Package installation failed.") and raises subprocess.CalledProcessError; afterwards, with
prompt_restart, packages that changed while imported lead to a restart question (not in testing mode).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import shutil
import subprocess
import sys
import threading
import time

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import runtime
from .modules import strict_module


def _to_requirements(reqs):
    if isinstance(reqs, str):
        try:
            return [Requirement(reqs)]
        except InvalidRequirement:
            return [Requirement(s) for s in reqs.split()]
    if isinstance(reqs, Requirement):
        return [reqs]
    if isinstance(reqs, list):
        return [Requirement(r) if isinstance(r, str) else r for r in reqs]
    raise TypeError(f"Expected str, Requirement, or list, got {type(reqs).__name__}")


def pip_check(req, _seen=None) -> bool:
    for requirement in _to_requirements(req):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if installed not in requirement.specifier:
            return False
    return True


def _installed_versions():
    importlib.invalidate_caches()
    return {canonicalize_name(d.metadata["Name"]): d.metadata["Version"] for d in importlib.metadata.distributions()
            if d.metadata["Name"]}


def _run_pip(args):
    """executePythonModule("pip", args): PythonSlicer from PATH, in a child process; the GUI keeps drawing."""
    import slicer
    python = shutil.which("PythonSlicer")
    if not python:
        raise RuntimeError("PythonSlicer executable not found")
    process = subprocess.Popen([python, "-m", "pip", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:   # _pip_install_with_dialog: processEvents while pip runs
        slicer.app.processEvents()
        time.sleep(0.01)
    reader.join(timeout=5)
    return process.returncode, "".join(lines)


def pip_install(requirements, constraints=None, no_deps_requirements=None, skip_packages=None, blocking=True,
                show_progress=True, requester=None, parent=None, logCallback=None, completedCallback=None):
    import slicer
    if skip_packages is not None or no_deps_requirements is not None or not blocking:
        raise NotImplementedError("the fake pip_install supports blocking installs of plain requirements")
    args = ["install", *(requirements.split() if isinstance(requirements, str) else requirements)]
    if constraints:
        args += ["-c", str(constraints)]
    session = runtime.session()
    dialog = None
    if show_progress and not slicer.app.testingEnabled():
        dialog = session.record_pip_dialog(requester)
    try:
        returncode, log = _run_pip(args)
    finally:
        if dialog is not None:
            dialog["closed"] = True
    if returncode != 0:
        if show_progress and not slicer.app.testingEnabled():
            title = f"{requester} - Installation Failed" if requester else "Installation Failed"
            slicer.util.errorDisplay("Package installation failed.", windowTitle=title, detailedText=log)
        raise subprocess.CalledProcessError(returncode, "pip install")
    return None


def pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
               requester=None, skip_in_testing=True, show_progress=True):
    import slicer
    requirements = _to_requirements(requirements)
    missing = [r for r in requirements if not pip_check(r)]
    if not missing:
        return None
    if skip_in_testing and slicer.app.testingEnabled():
        logging.info(f"Testing mode is enabled: skipping pip_ensure for [{', '.join(str(r) for r in missing)}]")
        return None
    if prompt_install:
        title = f"{requester} - Install Python Packages" if requester else "Install Python Packages"
        count = len(missing)
        message = ("1 Python package needs to be installed.\n\n" if count == 1 else
                   f"{count} Python packages need to be installed.\n\n") + \
            "This will modify Slicer's Python environment. Continue?"
        if not slicer.util.confirmOkCancelDisplay(message, title, detailedText="\n".join(f"- {r}" for r in missing)):
            raise RuntimeError("User declined package installation")
    before = _installed_versions() if prompt_restart else None
    skipped = pip_install([str(r) for r in missing], constraints=constraints, skip_packages=skip_packages,
                          blocking=True, show_progress=show_progress, requester=requester)
    if not prompt_restart:
        return skipped
    after = _installed_versions()
    imports = {}
    for module_name, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            imports.setdefault(canonicalize_name(dist), set()).add(module_name)
    updated = [name for name, version in after.items() if before.get(name) != version
               and any(m in sys.modules for m in imports.get(name, ()))]
    if updated and not slicer.app.testingEnabled():
        if slicer.util.confirmYesNoDisplay(
                f"{len(updated)} updated package(s) were already loaded in memory and may not work correctly "
                f"until Slicer is restarted.\n\nWould you like to restart now?",
                f"{requester} - Restart Recommended" if requester else "Restart Recommended",
                detailedText="\n".join(updated)):
            slicer.util.restart()
    return skipped


def make_module():
    return strict_module("slicer.packaging", "slicer.packaging of Slicer 5.12 (fake)", pip_ensure=pip_ensure,
                         pip_install=pip_install, pip_check=pip_check)
