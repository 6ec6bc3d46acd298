"""Strict fakes of the parts of Slicer that slicer-core (PyPI) lacks: `qt`, `ctk`, the Qt-dependent
`slicer.util` functions, `slicer.app`, `slicer.modules`, `slicer.ScriptedLoadableModule`,
`slicer.i18n`, `slicer.parameterNodeWrapper`, `slicer.packaging` (5.12), `SampleData`, `DICOMLib`.

They fail the way Slicer fails (unknown attributes raise, wrong keyword arguments raise TypeError,
signals must exist) and behave as Slicer does where the panel depends on it; the facts and their
sources are in Testing/slicer_api_facts.md.  MRML is real (slicer-core), driven by
Testing/slicer_app.HeadlessSlicer, which starts a `Session` (slicer_fakes.session).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import slicer

from . import qtcore, runtime, slicer_util, widgets
from .parameter_node_wrapper import make_module as _make_wrapper_module
from .scripted_module import make_i18n_module, make_scripted_loadable_module
from .session import Session, UnexpectedDialog
from .user import User, selected_rows
from .widgets import UserCannotDoThat

MODULE_FILE = Path(__file__).resolve().parents[2] / "DVTStaging" / "DVTStaging.py"
_installed = False


def install() -> None:
    """Put the fakes where Slicer has the real things (once per process; later sessions reuse them)."""
    global _installed
    if _installed:
        return
    sys.modules["qt"] = qtcore.make_qt_module()
    sys.modules["ctk"] = qtcore.make_ctk_module()
    for name, module in (("slicer.i18n", make_i18n_module()),
                         ("slicer.parameterNodeWrapper", _make_wrapper_module()),
                         ("slicer.ScriptedLoadableModule", make_scripted_loadable_module())):
        sys.modules[name] = module
        setattr(slicer, name.split(".", 1)[1], module)
    for cls in (widgets.qMRMLWidget, widgets.qMRMLNodeComboBox, widgets.qMRMLTableView):
        setattr(slicer, cls.__name__, cls)
    for name in slicer_util.FAKED:
        setattr(slicer.util, name, getattr(slicer_util, name))
    _installed = True


def session() -> Session:
    return runtime.session()


def import_module_file():
    """DVTStaging.py as the module `DVTStaging` (loaded by path: the repository folder has the same name)."""
    install()
    if str(MODULE_FILE.parent) not in sys.path:   # Slicer puts each scripted module's folder on sys.path
        sys.path.append(str(MODULE_FILE.parent))
    module = sys.modules.get("DVTStaging")
    if module is not None and getattr(module, "__file__", None) == str(MODULE_FILE):
        return module
    spec = importlib.util.spec_from_file_location("DVTStaging", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["DVTStaging"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("DVTStaging", None)
        raise
    return module


__all__ = ["install", "import_module_file", "session", "Session", "User", "UserCannotDoThat", "UnexpectedDialog",
           "selected_rows", "MODULE_FILE"]
