"""Child process of test_bundled_environment.py: the DVTStaging panel in a Python that has only what Slicer
bundles.  Run: python bundled_slicer_child.py <version> <worklist folder> <work folder>

First an import hook makes every top-level package Slicer does not ship unimportable (a meta path
finder first in sys.meta_path raises ModuleNotFoundError) and invisible to importlib.metadata (the
path finder's distributions are filtered).  Then the module is loaded, shown and used as a user would;
the last output line is a JSON report for the parent test.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import re
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


def _allowed(top: str) -> bool:
    return top in sys.stdlib_module_names or top in BUNDLED or top in MODULE_AND_HARNESS


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
            name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
            if name in BUNDLED_DISTRIBUTIONS:
                yield dist


def install_hook():
    loaded = sorted(m for m in sys.modules if not _allowed(m.partition(".")[0]) and m != "__main__")
    if loaded:
        raise SystemExit(f"already imported before the hook: {loaded}")
    sys.meta_path[:] = [BundledDistributionsOnly(f) if f is importlib.machinery.PathFinder else f
                        for f in sys.meta_path]
    sys.meta_path.insert(0, OnlyWhatSlicerBundles())


def main(version: str, worklist_folder: str, work: str) -> dict:
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
