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


NESTED_SHOWN = 4      # series folders named when a study is given as the folder above them


def dicom_subfolders(folder, max_folders: int = 5000) -> list[tuple[str, int]]:
    """(path relative to `folder`, number of DICOM files) of each subfolder holding DICOM files, as a CD or PACS
    export nests them (PATIENT/STUDY/SERIES); at most `max_folders` folders are looked at."""
    folder, found = Path(folder), []
    for seen, (root, dirs, files) in enumerate(os.walk(folder)):
        dirs.sort()
        if seen >= max_folders:
            break
        if Path(root) == folder:
            continue
        count = sum(1 for name in files if is_dicom_file(Path(root) / name))
        if count:
            found.append((str(Path(root).relative_to(folder)), count))
    return found


def nested_dicom_message(folder) -> str | None:
    """Where the DICOM files below `folder` are, for a folder that holds none itself (None: no subfolder does)."""
    nested = dicom_subfolders(folder)
    if not nested:
        return None
    listed = ", ".join(f"{path} ({n} file{'s' if n != 1 else ''})" for path, n in nested[:NESTED_SHOWN])
    more = f" and {len(nested) - NESTED_SHOWN} more" if len(nested) > NESTED_SHOWN else ""
    return (f"{folder} holds no DICOM files itself, its subfolders do: {listed}{more}; "
            "give the folder of the series to stage")
