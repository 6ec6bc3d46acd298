"""Shared fixtures: a small phantom dataset and a headless MRML application."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parent
REPO = TESTING.parent
sys.path.insert(0, str(TESTING))  # slicer_app helper
# Slicer puts a scripted module's folder on sys.path; DVTStaging.py finds DVTStagingPanel (not in the wheel) there.
sys.path.insert(1, str(REPO / "DVTStaging"))


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory):
    """Five labeled phantom studies (seed 11), written once per test session."""
    from DVTStagingLib.io.dataset import load_dataset
    from DVTStagingLib.phantom.writer import write_phantom_dataset

    root = tmp_path_factory.mktemp("phantom") / "ds"
    write_phantom_dataset(root, 5, seed=11, workers=2, show_progress=False)
    return load_dataset(root)


@pytest.fixture
def slicer_app():
    from slicer_app import HeadlessSlicer

    app = HeadlessSlicer()
    yield app
    app.close()
