"""Files the core writes: output folders that never overwrite silently, atomic writes, checksums."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import UserError


def prepare_output(out, overwrite: bool, names) -> Path:
    """Create the output folder; refuse to replace any of `names` already in it unless asked to."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds {', '.join(existing)}; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_text_atomic(path, text: str) -> Path:
    """Write beside, then rename: a crash never leaves half a file under the final name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json_atomic(path, data) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2))


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_dicom_file(path: Path) -> bool:
    """Whether a file carries the DICOM preamble marker (no DICOM library needed)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False
