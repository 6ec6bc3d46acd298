"""pytest fixtures for tests on the fakes (import them into a test module: `from slicer_fakes.fixtures import *`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .pythonslicer import FakePythonSlicer

TESTING = Path(__file__).resolve().parents[1]
FAKE_CLI = [sys.executable, str(TESTING / "fake_stage_cli.py")]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One Slicer cache folder for the test run: the sample phantom is generated once."""
    return tmp_path_factory.mktemp("slicer-cache")


@pytest.fixture
def slicer_session(slicer_app, shared_cache):
    """The fake Slicer session of `slicer_app`; no exception may reach the Python console."""
    slicer_app.session.app.cachePath = str(shared_cache)
    yield slicer_app.session
    errors = list(slicer_app.session.console_errors)
    assert not errors, "exceptions were printed to Slicer's Python console:\n" + "\n".join(errors)


@pytest.fixture
def panel(slicer_app, slicer_session, tmp_path):
    """The DVTStaging module loaded, shown and entered as Slicer does it, with three slice views; staging
    runs Testing/fake_stage_cli.py, one process per job (the Logic's documented injection points)."""
    session = slicer_session
    slicer_app.add_slice_views()
    session.load_module()
    widget = session.show_module()
    widget.logic.jobs.command_prefix = FAKE_CLI
    widget.logic.jobs.worker = None     # a fresh CLI process per job (the warm worker: test_service_slicer.py)
    widget.logic.jobs.job_parent_folder = str(tmp_path)
    yield widget
    session.unload_module()


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    """PythonSlicer on PATH that 'installs' into a dist-info folder first on sys.path (removed after)."""
    return FakePythonSlicer(tmp_path / "python", monkeypatch)


__all__ = ["shared_cache", "slicer_session", "panel", "fake_python", "FAKE_CLI"]
