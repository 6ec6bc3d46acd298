"""The phantom study offered through Slicer's Sample Data module.

There is no web hosting for sample data, so the study is generated on first
use into a cache folder (about a second) and SampleData loads it from there
through a `file://` address.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SAMPLE_NAME = "DVTStagingPhantom"
SAMPLE_SEED = 2024
SAMPLE_STAGES = ("acute",)
IMAGE_FILE = "image.nrrd"


def sample_folder(cache_dir, seed: int = SAMPLE_SEED) -> Path:
    return Path(cache_dir) / "DVTStaging" / f"phantom-{seed}"


def ensure_sample_study(cache_dir, seed: int = SAMPLE_SEED) -> Path:
    """The folder of the generated study (image.nrrd, its thrombus ROI, truth); made if missing."""
    from ..phantom.study import make_study
    from ..phantom.writer import write_study

    folder = sample_folder(cache_dir, seed)
    if (folder / IMAGE_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Write beside, then rename: a half-written study is never taken for a finished one.
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write_study(make_study(seed, list(SAMPLE_STAGES)), staging)
        try:
            os.replace(staging, folder)
        except OSError:   # another process finished first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def sample_image_uri(cache_dir, seed: int = SAMPLE_SEED) -> str:
    return (sample_folder(cache_dir, seed) / IMAGE_FILE).resolve().as_uri()
