"""Scalar volumes with exact geometry: reading, writing, IJK <-> RAS.

A `Volume` holds the voxels as a numpy array indexed ``[k, j, i]`` (the order
SimpleITK and numpy use) and the geometry of the file as SimpleITK reports it:
spacing along i, j, k, the origin and the direction cosines in LPS, which is
what DICOM, NRRD ("left-posterior-superior") and ITK use.  Slicer works in
RAS; the two differ by negating the first two world axes, so every RAS
conversion goes through `LPS_TO_RAS`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputFileError
from ..core.files import is_dicom_file, nested_dicom_message

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
# The voxel sizes of any clinical or research MR study, in millimetres.  Outside them the header is wrong
# (often metres or micrometres written as millimetres), and every physical size the models use would be too.
PLAUSIBLE_SPACING_MM = (0.01, 100.0)
# How far (a share of the slice spacing) a DICOM slice may lie from the evenly spaced grid ITK reads it onto.
SLICE_POSITION_TOLERANCE = 0.1
# Enhanced MR and Legacy Converted Enhanced MR Image Storage: multi-frame, a position for every frame.
ENHANCED_MR_STORAGE = ("1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4")

# DICOM tags kept from a series: enough to describe the study and to
# de-identify it later.  Nothing else from the header is carried along.
DICOM_TAGS = {
    "0010|0010": "PatientName",
    "0010|0020": "PatientID",
    "0010|0030": "PatientBirthDate",
    "0010|0040": "PatientSex",
    "0008|0020": "StudyDate",
    "0008|0050": "AccessionNumber",
    "0008|0060": "Modality",
    "0008|103e": "SeriesDescription",
    "0020|000d": "StudyInstanceUID",
    "0020|000e": "SeriesInstanceUID",
    "0020|0052": "FrameOfReferenceUID",
}


@dataclass
class Volume:
    """A 3D scalar image and its geometry (spacing i,j,k; origin and direction in LPS)."""

    array: np.ndarray
    spacing: np.ndarray
    origin_lps: np.ndarray
    direction_lps: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.spacing = np.asarray(self.spacing, dtype=float).reshape(3)
        self.origin_lps = np.asarray(self.origin_lps, dtype=float).reshape(3)
        self.direction_lps = np.asarray(self.direction_lps, dtype=float).reshape(3, 3)
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3D array, got shape {self.array.shape}")

    # -- geometry -----------------------------------------------------------
    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.array.shape
        return i, j, k

    @property
    def ijk_to_lps(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.direction_lps * self.spacing[None, :]
        m[:3, 3] = self.origin_lps
        return m

    @property
    def ijk_to_ras(self) -> np.ndarray:
        m = self.ijk_to_lps
        m[:3, :] = LPS_TO_RAS @ m[:3, :]
        return m

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    @property
    def direction_ras(self) -> np.ndarray:
        """Unit vectors of the i, j, k axes in RAS, as columns."""
        return LPS_TO_RAS @ self.direction_lps

    def ijk_to_ras_points(self, ijk) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float)
        m = self.ijk_to_ras
        return ijk @ m[:3, :3].T + m[:3, 3]

    def ras_to_ijk_points(self, ras) -> np.ndarray:
        ras = np.asarray(ras, dtype=float)
        m = self.ras_to_ijk
        return ras @ m[:3, :3].T + m[:3, 3]

    def same_geometry(self, other: "Volume", atol: float = 1e-4) -> bool:
        return (
            self.shape_ijk == other.shape_ijk
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin_lps, other.origin_lps, atol=atol)
            and np.allclose(self.direction_lps, other.direction_lps, atol=atol)
        )

    def geometry_dict(self) -> dict:
        """Geometry as plain JSON-friendly values (for result files)."""
        return {
            "size_ijk": list(self.shape_ijk),
            "spacing": self.spacing.tolist(),
            "origin_lps": self.origin_lps.tolist(),
            "direction_lps": self.direction_lps.tolist(),
            "ijk_to_ras": self.ijk_to_ras.tolist(),
        }

    def with_array(self, array: np.ndarray) -> "Volume":
        """A new volume on the same grid (metadata is not copied: it may identify the patient)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.array.shape}")
        return Volume(array, self.spacing.copy(), self.origin_lps.copy(), self.direction_lps.copy())

    # -- SimpleITK ----------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.array)
        image.SetSpacing(self.spacing.tolist())
        image.SetOrigin(self.origin_lps.tolist())
        image.SetDirection(self.direction_lps.ravel().tolist())
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, metadata: dict | None = None) -> "Volume":
        return cls(
            sitk.GetArrayFromImage(image),
            np.array(image.GetSpacing()),
            np.array(image.GetOrigin()),
            np.array(image.GetDirection()).reshape(3, 3),
            metadata or {},
        )


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spacing, origin_lps, direction_lps) of a 4x4 IJK->RAS matrix."""
    m = np.asarray(ijk_to_ras, dtype=float)
    lin = LPS_TO_RAS @ m[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    return spacing, LPS_TO_RAS @ m[:3, 3], lin / spacing[None, :]


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
def _itk_message(exc: Exception) -> str:
    """The useful last line of an ITK exception, which is otherwise many lines long."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.lower().startswith(("description:", "itk::error", "error")) or ":" in ln:
            return ln.split("Description:")[-1].strip()
    return lines[-1] if lines else type(exc).__name__


@contextmanager
def _itk_quiet():
    """ITK and GDCM print warnings straight to stderr; our messages say what went wrong instead."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def _slice_geometry_problem(reader: sitk.ImageSeriesReader, count: int) -> str | None:
    """Why a series' slices do not make one regular 3D grid, or None.  ITK reads them anyway, with one mean
    slice spacing: each slice after a gap lands in the wrong place, and echoes or time points stored in one
    series are stacked as if they were slices."""
    try:
        positions = [[float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")] for i in range(count)]
        orientations = np.array([[float(v) for v in reader.GetMetaData(i, "0020|0037").split("\\")]
                                 for i in range(count)])
    except (RuntimeError, ValueError):
        return None         # no (readable) position or orientation tags: ITK's own geometry is all there is
    if orientations.shape[1] != 6 or np.abs(orientations - orientations[0]).max() > 1e-3:
        return "mixes slice orientations (a localizer?)"
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    depth = np.sort(np.asarray(positions) @ normal)
    gaps = np.diff(depth)
    if gaps.min() < 1e-3:
        return "has several slices at one position (echoes or time points in one series?)"
    # ITK's grid runs evenly from the first slice to the last: how far from it the slices really lie.  Positions
    # rounded in the header move them by hundredths of a millimetre; a missing slice by half a slice.
    off = np.abs(depth - np.linspace(depth[0], depth[-1], len(depth))).max()
    if off > SLICE_POSITION_TOLERANCE * float(np.mean(gaps)):
        return f"has unevenly spaced slices ({gaps.min():.3g} to {gaps.max():.3g} mm apart: a missing slice?)"
    return None


def _header(path: Path, unreadable: str) -> sitk.ImageFileReader:
    """A reader of `path` with its header read (no voxels yet); `unreadable` starts the error for a file ITK
    cannot read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputFileError(f"{unreadable} ({_itk_message(exc)})") from None
    return reader


def _read_multiframe(path: Path) -> Volume | None:
    """A series stored as one multi-frame file (enhanced MR), or None when the file holds a single frame.  GDCM
    places the frames from their per-frame positions, which the enhanced MR storage classes require; any other
    multi-frame file does not record where its frames lie, and is refused."""
    reader = _header(path, f"cannot read {path}")
    if reader.GetDimension() < 3 or reader.GetSize()[2] < 2:
        return None
    sop_class = reader.GetMetaData("0008|0016").strip(" \0") if reader.HasMetaDataKey("0008|0016") else "unknown"
    if sop_class not in ENHANCED_MR_STORAGE:
        raise InputFileError(f"{path} holds {reader.GetSize()[2]} frames of SOP class {sop_class}, which records no "
                             "position for each frame: the spacing of its slices is unknown (export the series as "
                             "one file per slice, or as enhanced MR)")
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputFileError(f"cannot read {path}: it is truncated or corrupt ({_itk_message(exc)})") from None
    tags = {name: reader.GetMetaData(tag).strip() for tag, name in DICOM_TAGS.items() if reader.HasMetaDataKey(tag)}
    return _checked(image, str(path), {"source_format": "dicom", "dicom": tags, "dicom_files": [str(path)]})


def _read_dicom_series(folder: Path, wanted_series: str | None = None) -> Volume:
    with _itk_quiet():
        return _read_dicom_files(folder, wanted_series)


def _read_dicom_files(folder: Path, wanted_series: str | None) -> Volume:
    reader = sitk.ImageSeriesReader()
    try:
        series_ids = reader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as exc:
        raise InputFileError(f"cannot list DICOM series in {folder}: {_itk_message(exc)}") from None
    if not series_ids:
        nested = nested_dicom_message(folder)
        if nested:
            raise InputFileError(nested)
        raise InputFileError(f"{folder} is a folder without a DICOM series (give a volume file or a DICOM folder)")
    if wanted_series is not None:
        if wanted_series not in series_ids:
            raise InputFileError(f"DICOM series {wanted_series} is not in {folder}")
        series_ids = (wanted_series,)
    # With several series, the one with most slices is the volume a user means.
    files_by_series = {sid: reader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids}
    series = max(files_by_series, key=lambda sid: len(files_by_series[sid]))
    files = files_by_series[series]
    volume = _read_slices(reader, files, folder, series) if len(files) > 1 else _read_multiframe(Path(files[0]))
    if volume is None:
        raise InputFileError(f"DICOM series {series} in {folder} has a single slice; a 3D volume is required")
    if len(files_by_series) > 1:
        volume.metadata["other_series"] = sorted(s for s in files_by_series if s != series)
    return volume


def _read_slices(reader: sitk.ImageSeriesReader, files, folder: Path, series: str) -> Volume:
    """A series stored one file per slice."""
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputFileError(f"cannot read DICOM series in {folder}: {_itk_message(exc)}") from None
    problem = _slice_geometry_problem(reader, len(files))
    if problem:
        raise InputFileError(f"DICOM series {series} in {folder} {problem}: it is not one regular 3D volume "
                             "(Slicer loads such a series with its geometry corrected; stage that volume)")
    tags = {name: reader.GetMetaData(0, tag).strip() for tag, name in DICOM_TAGS.items()
            if reader.HasMetaDataKey(0, tag)}
    return _checked(image, str(folder), {"source_format": "dicom", "dicom": tags, "dicom_files": list(files)})


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a 3D scalar volume (NRRD, NIfTI, MHA, ... or a DICOM series folder).

    Raises `InputFileError` with a one-line message for anything that is not a
    finite 3D scalar volume.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"no such file or folder: {path}")
    if path.is_dir():
        return _read_dicom_series(path)
    if path.stat().st_size == 0:
        raise InputFileError(f"{path} is an empty file")
    with _itk_quiet():
        return _read_file(path)


def _read_file(path: Path) -> Volume:
    if is_dicom_file(path):
        # A single DICOM file stands for the series it belongs to.
        try:
            sid = _header(path, "").GetMetaData("0020|000e").strip()
        except (InputFileError, RuntimeError):
            sid = None
        return _read_dicom_series(path.parent, sid)
    reader = _header(path, f"{path} is not an image file SimpleITK can read")
    dim = reader.GetDimension()
    size = reader.GetSize()
    if reader.GetNumberOfComponents() != 1:
        raise InputFileError(
            f"{path} has {reader.GetNumberOfComponents()} components per voxel (colour or vector image); "
            "a scalar volume is required"
        )
    if dim < 3:
        raise InputFileError(f"{path} is a {dim}D image; a 3D volume is required")
    if dim > 3 and any(s != 1 for s in size[3:]):
        raise InputFileError(
            f"{path} is a {dim}D image with {int(np.prod(size[3:]))} volumes; give a single 3D volume"
        )
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputFileError(f"cannot read {path}: it is truncated or corrupt ({_itk_message(exc)})") from None
    if image.GetDimension() > 3:
        image = sitk.Extract(image, list(size[:3]) + [0] * (dim - 3), [0] * dim)
    return _checked(image, str(path), {"source_format": path.suffix.lower().lstrip(".") or "image"})


def _checked(image: sitk.Image, name: str, metadata: dict) -> Volume:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputFileError(f"{name} is not a scalar image; a scalar volume is required")
    if image.GetDimension() != 3:
        raise InputFileError(f"{name} is a {image.GetDimension()}D image; a 3D volume is required")
    size = image.GetSize()
    if min(size) < 2:
        raise InputFileError(f"{name} has size {size}: a single slice is a 2D image; a 3D volume is required")
    volume = Volume.from_sitk(image, metadata)
    if volume.array.dtype.kind not in "iuf":
        raise InputFileError(f"{name} has voxel type {volume.array.dtype}, which is not a number type")
    if volume.array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(volume.array)))
        if bad:
            raise InputFileError(f"{name} contains {bad} NaN or infinite voxels")
    direction = volume.direction_lps
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
        raise InputFileError(f"{name} has a direction matrix that is not orthonormal")
    if np.any(volume.spacing <= 0) or not np.all(np.isfinite(volume.spacing)):
        raise InputFileError(f"{name} has invalid voxel spacing {volume.spacing.tolist()}")
    low, high = PLAUSIBLE_SPACING_MM
    if np.any(volume.spacing < low) or np.any(volume.spacing > high):
        raise InputFileError(f"{name} has voxel spacing {', '.join(f'{s:.3g}' for s in volume.spacing)} mm, outside "
                             f"the {low:g}-{high:g} mm of an MR study: check the units in its header")
    return volume


def check_image_content(volume: Volume, name: str) -> None:
    """A volume with one value everywhere holds nothing to find or stage."""
    lo, hi = float(volume.array.min()), float(volume.array.max())
    if hi <= lo:
        raise InputFileError(f"{name} is constant (every voxel is {lo:g}); nothing to stage")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def write_volume(volume: Volume, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write a volume with its exact geometry; the format follows the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path))
    writer.SetUseCompression(compress)
    if compress:
        # Level 1: nearly the size of level 6 at a fraction of the time.
        writer.SetCompressionLevel(1)
    writer.Execute(volume.to_sitk())
    return path
