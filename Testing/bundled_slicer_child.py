"""Child process of test_bundled_environment.py: the DVTStaging panel in a Python that has only what Slicer
bundles.  Run: python bundled_slicer_child.py <version> <worklist folder> <work folder>

First an import hook makes every top-level package Slicer does not ship unimportable (a meta path
finder first in sys.meta_path raises ModuleNotFoundError) and invisible to importlib.metadata (the
path finder's distributions are filtered).  Then the module is loaded, shown and used as a user would;
the last output line is a JSON report for the parent test.

After the user has declined every install, they accept them: a fake `PythonSlicer` on PATH
(Testing/fake_python_slicer.py) "installs" by writing dist-info folders, and from then on the hook lets
those distributions (and what they depend on) be imported, as pip would have put them there.  So the
sample, export and Stage entry points must work with exactly the packages their feature asked for.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import json
import os
import re
import stat
import sys
import traceback
from pathlib import Path

TESTING = Path(__file__).resolve().parent

# What Slicer's Python has (besides the standard library) and what the test harness itself is.
BUNDLED = {"numpy", "scipy", "SimpleITK", "vtk", "vtkmodules", "slicer", "slicer_core", "packaging", "pydicom", "PIL",
           "requests", "urllib3", "idna", "charset_normalizer", "certifi", "pip", "setuptools", "_distutils_hack"}
MODULE_AND_HARNESS = {"DVTStaging", "DVTStagingLib", "DVTStagingPanel", "slicer_app", "slicer_fakes", "qt", "ctk",
                      "SampleData", "DICOMLib", "bundled_slicer_child", "__editable___dvt_staging_0_1_0_finder"}
BUNDLED_DISTRIBUTIONS = {"numpy", "scipy", "simpleitk", "vtk", "slicer-core", "packaging", "pydicom", "pillow",
                         "requests", "urllib3", "idna", "charset-normalizer", "certifi", "pip", "setuptools"}
MUST_BE_ABSENT = ("torch", "torchvision", "timm", "safetensors", "slicerio", "nrrd", "jsonschema", "matplotlib",
                  "highdicom", "huggingface_hub", "yaml")
blocked: list[str] = []
FAKE_SITE: Path | None = None          # where the fake PythonSlicer "installs" (set once the user accepts)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(name: str, seen: set[str]) -> set[str]:
    """A distribution and everything it requires (no extras), as this environment has them."""
    from packaging.requirements import Requirement

    name = _canonical(name)
    if name in seen:
        return seen
    seen.add(name)
    try:
        requires = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return seen
    for text in requires:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            _closure(req.name, seen)
    return seen


def _top_levels(distribution: str) -> set[str]:
    dist = importlib.metadata.distribution(distribution)
    listed = dist.read_text("top_level.txt")
    if listed:
        return set(listed.split())
    return {Path(str(f)).parts[0].removesuffix(".py") for f in dist.files or []
            if not str(f).startswith(("..", "/")) and ".dist-info" not in str(f) and ".data" not in str(f)}


INSTALLED_DISTRIBUTIONS: set[str] = set()
INSTALLED_TOPS: set[str] = set()
DEPENDENCIES: dict[str, set[str]] = {}   # distribution -> it and what it requires (learnt before the hook)
TOP_LEVELS: dict[str, set[str]] = {}     # distribution -> its top-level modules


def _refresh_installed() -> None:
    """What the fake pip has installed so far, with what pip would have brought along."""
    if FAKE_SITE is None:
        return
    for info in FAKE_SITE.glob("*.dist-info"):
        name = _canonical(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        if name not in INSTALLED_DISTRIBUTIONS:
            for dist in DEPENDENCIES.get(name, {name}):
                INSTALLED_DISTRIBUTIONS.add(dist)
                INSTALLED_TOPS.update(TOP_LEVELS.get(dist, ()))


def _allowed(top: str) -> bool:
    _refresh_installed()
    # _sysconfigdata_<abi>_<platform>: every CPython's build configuration (Slicer's too), which sysconfig
    # imports by a platform-specific name that sys.stdlib_module_names does not list.
    return (top in sys.stdlib_module_names or top.startswith("_sysconfigdata_") or top in BUNDLED
            or top in MODULE_AND_HARNESS or top in INSTALLED_TOPS)


class OnlyWhatSlicerBundles(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if _allowed(top):
            return None
        blocked.append(fullname)
        raise ModuleNotFoundError(f"No module named '{fullname}' (not bundled with Slicer)", name=fullname)


class BundledDistributionsOnly:
    """Wraps the path finder: imports as usual, but importlib.metadata sees only bundled distributions."""

    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, *args, **kwargs):
        return self.inner.find_spec(*args, **kwargs)

    def invalidate_caches(self):
        return self.inner.invalidate_caches()

    def find_distributions(self, *args, **kwargs):
        for dist in self.inner.find_distributions(*args, **kwargs):
            name = _canonical(dist.metadata["Name"] or "")
            _refresh_installed()
            if name in BUNDLED_DISTRIBUTIONS or name in INSTALLED_DISTRIBUTIONS:
                yield dist


def learn_installable(requirements_file: Path) -> None:
    """Top-level modules of what the module may install (from this environment, before the hook)."""
    from packaging.requirements import Requirement

    lines = (line.split("#", 1)[0].strip() for line in requirements_file.read_text().splitlines())
    names = [Requirement(line).name for line in lines if line]
    for name in names:
        for dist in _closure(name, set()):
            DEPENDENCIES[dist] = _closure(dist, set())
            try:
                TOP_LEVELS[dist] = _top_levels(dist)
            except importlib.metadata.PackageNotFoundError:
                pass


def fake_python_slicer_on_path(work: Path) -> Path:
    """As Slicer has PythonSlicer on PATH: here the fake one, installing into work/fake-site."""
    folder = work / "fake-python"
    bin_dir, site = folder / "bin", folder / "site-packages"
    bin_dir.mkdir(parents=True)
    site.mkdir()
    script = bin_dir / "PythonSlicer"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{TESTING / "fake_python_slicer.py"}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    os.environ["FAKE_SITE_PACKAGES"] = str(site)
    os.environ["FAKE_PYTHON_STATE"] = str(folder / "calls.jsonl")
    sys.path.insert(0, str(site))      # the versions the fake pip installs are the ones importlib.metadata sees
    return site


def install_hook():
    loaded = sorted(m for m in sys.modules if not _allowed(m.partition(".")[0]) and m != "__main__")
    if loaded:
        raise SystemExit(f"already imported before the hook: {loaded}")
    sys.meta_path[:] = [BundledDistributionsOnly(f) if f is importlib.machinery.PathFinder else f
                        for f in sys.meta_path]
    sys.meta_path.insert(0, OnlyWhatSlicerBundles())


def main(version: str, worklist_folder: str, work: str) -> dict:
    global FAKE_SITE
    learn_installable(TESTING.parent / "DVTStaging" / "Resources" / "requirements.txt")
    install_hook()
    sys.path.insert(0, str(TESTING))
    import importlib.metadata

    from slicer_app import HeadlessSlicer
    from slicer_fakes.sample_data import click_sample_button

    report = {"metadata_hidden": []}
    for name in ("timm", "slicerio", "jsonschema", "torch"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            report["metadata_hidden"].append(name)

    app = HeadlessSlicer(version=version)
    session = app.session
    session.app.cachePath = str(Path(work) / "cache")
    app.add_slice_views()
    session.load_module()                     # everything the panel imports when Slicer loads the module
    session.startup_completed()
    widget = session.show_module()
    ui, user = widget.ui, session.user

    user.pick_folder(ui.worklistFolderButton, worklist_folder)   # the worklist needs nothing extra
    report["worklist_rows"] = ui.worklistTableWidget.rowCount
    user.double_click_cell(ui.worklistTableWidget, 0, 0)
    report["study_opened"] = widget._parameterNode.inputVolume is not None
    report["questions_before_entry_points"] = len(session.questions)

    session.answers.append(False)
    click_sample_button("DVTStagingPhantom")
    report["sample_asked"] = session.questions[-1].text
    report["sample_loaded"] = any(n.GetName() == "DVTStagingPhantom"
                                  for n in app.scene.GetNodesByClass("vtkMRMLScalarVolumeNode"))

    export = Path(work) / "export"
    session.folder_answers.append(str(export))
    session.answers.append(False)
    user.click(ui.exportButton)
    report["export_asked"] = session.questions[-1].text
    report["export_written"] = export.exists()

    session.answers.extend([True, False])     # no ROI: detect automatically? OK; install packages? Cancel
    user.click(ui.stageButton)
    report["stage_asked"] = session.questions[-1].text
    session.answers.append(False)
    user.click(ui.autoDetectButton)
    report["detect_asked"] = session.questions[-1].text
    report["running"] = widget.logic.isRunning()
    session.answers.append(False)
    report["ensure_declined"] = widget.logic.ensureDependencies("stage")
    report["errors_shown"] = session.errors_shown()
    report["console_errors"] = list(session.console_errors)
    report["blocked_imports"] = sorted(set(blocked))
    report["absent_loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in MUST_BE_ABSENT)

    # Now the user accepts: each entry point installs what its feature needs, and then works.
    FAKE_SITE = fake_python_slicer_on_path(Path(work))
    session.answers.append(True)
    click_sample_button("DVTStagingPhantom")
    sample = [n for n in app.scene.GetNodesByClass("vtkMRMLScalarVolumeNode") if n.GetName() == "DVTStagingPhantom"]
    report["sample_loaded_after_install"] = bool(sample)
    report["installed_for_sample"] = sorted(INSTALLED_DISTRIBUTIONS & {"slicerio", "jsonschema", "torch"})
    session.folder_answers.append(str(export))
    session.answers.append(True)
    user.choose(ui.inputVolumeSelector, sample[0]) if sample else None
    user.click(ui.exportButton)
    report["export_written_after_install"] = (export / "dataset.json").is_file()
    session.answers.append(True)
    user.click(ui.stageButton)                 # the sample has its ROI: no question about auto-detection
    session.run_event_loop(lambda: not widget.logic.isRunning(), timeout=300)
    report["staged_after_install"] = ui.statusLabel.text
    report["installs"] = [(c["tool"], c["requirements"]) for c in
                          map(json.loads, (Path(work) / "fake-python" / "calls.jsonl").read_text().splitlines())]
    report["errors_after_install"] = session.errors_shown()[len(report["errors_shown"]):]
    report["console_errors_after_install"] = list(session.console_errors)
    session.unload_module()
    app.close()
    return report


if __name__ == "__main__":
    try:
        result = main(*sys.argv[1:4])
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(result))
