"""Uploaded files into a job's input folder, under names the server chooses (an upload's own file name,
which may name the patient, is never used, kept or logged: only a volume file's format suffix is).

A volume file is saved as `image<suffix>`; a DICOM series arrives as a zip of one folder's files and is
unpacked into `series/` with its names checked (no paths, no links), its file count and unpacked size
bounded; the ROIs are saved as `rois.mrk.json`.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from ..core.errors import UserError

CHUNK = 1 << 20
MAX_SERIES_FILES = 20000
# Format suffixes SimpleITK tells formats by; anything else is saved without a suffix.
_SUFFIX = re.compile(r"^(\.[a-z0-9]{1,8}){1,2}$")


def megabytes(n: int) -> str:
    return f"{n / (1 << 20):.3g} MB"


def volume_suffix(filename: str | None) -> str:
    """The format suffix of an uploaded file name ('.nrrd', '.nii.gz', ...), or '' when it has none."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name.lower()
    suffixes = PurePosixPath(name).suffixes[-2:]
    if len(suffixes) == 2 and suffixes[-1] not in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[-1:]
    suffix = "".join(suffixes)
    return suffix if _SUFFIX.match(suffix) else ""


def save_file(source, target: Path, max_bytes: int) -> Path:
    """Copy an uploaded file object to `target`, refusing more than `max_bytes`."""
    written = 0
    with open(target, "wb") as out:
        for block in iter(lambda: source.read(CHUNK), b""):
            written += len(block)
            if written > max_bytes:
                raise UserError(f"the upload is larger than this server's limit of {megabytes(max_bytes)}")
            out.write(block)
    return target


def save_image(source, filename: str | None, folder: Path, max_bytes: int) -> Path:
    return save_file(source, folder / f"image{volume_suffix(filename)}", max_bytes)


def save_series(source, folder: Path, max_bytes: int, series_file: str | None = None) -> tuple[Path, Path]:
    """Unpack a zip of one folder's files into `folder/series`; returns (what to read, the series folder):
    the folder, or the file `series_file` in it (a DICOM file that names its series)."""
    archive = folder / "series.zip"
    save_file(source, archive, max_bytes)
    target = folder / "series"
    target.mkdir()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_SERIES_FILES:
                raise UserError(f"the series archive holds more than {MAX_SERIES_FILES} files")
            if sum(m.file_size for m in members) > max_bytes:
                raise UserError(f"the series unpacks to more than this server's limit of {megabytes(max_bytes)}")
            for member in members:
                name = member.filename
                if "/" in name or "\\" in name or name in (".", "..") or not name.strip():
                    raise UserError("the series archive must hold the files of one folder, without sub-folders")
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UserError("the series archive holds a symbolic link")
                with zf.open(member) as src, open(target / name, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile:
        raise UserError("the series upload is not a zip archive") from None
    finally:
        archive.unlink(missing_ok=True)
    if series_file:
        name = PurePosixPath(series_file.replace("\\", "/")).name
        if name != series_file or not (target / name).is_file():
            raise UserError("series_file names no file of the series archive")
        return target / name, target
    return target, target


def save_rois(source, folder: Path, max_bytes: int) -> Path:
    return save_file(source, folder / "rois.mrk.json", max_bytes)
