"""Real Qt 5.15 (PyQt5, offscreen) for the tests that check the fakes and the .ui against the real toolkit.

Slicer 5.10-5.12 embed Qt 5.15, so PyQt5 5.15 widgets are the same C++ classes the panel meets in Slicer.
PyQt5 is a declared test dependency (pyproject `test` extra); the Slicer module never imports it.  Without
it these tests fail at import, they are never skipped: a skipped check would hide a fake that drifted.
"""

from __future__ import annotations

import os

try:
    from PyQt5 import QtCore, QtGui, QtTest, QtWidgets
except ImportError as error:   # fail loudly: the conformance checks are part of `make test`
    raise ImportError("PyQt5 is a test dependency (pip install -e '.[test]'): the strict fakes are checked "
                      "against real Qt 5.15 widgets") from error

QT_VERSION = QtCore.qVersion()
_app = None   # held for the whole run: PyQt5 destroys a QApplication nobody references


def application() -> QtWidgets.QApplication:
    """The process's QApplication, on the offscreen platform (no display here, nor on a CI machine)."""
    global _app
    if not QT_VERSION.startswith("5.15."):
        raise RuntimeError(f"the fakes model Qt 5.15 (Slicer 5.10-5.12); PyQt5 brought Qt {QT_VERSION}")
    if _app is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["dvt-staging-tests"])
    return _app
