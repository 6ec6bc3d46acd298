"""Write a float32 heat map as a gzip NRRD with Intel's ISA-L deflate (the `isal` package), when it is
installed: the header SimpleITK writes, byte for byte, and the same voxels, compressed about six times
faster than SimpleITK's zlib at level 1 and a little smaller.

The overlays of a Stage click are dense float maps (evidence, attention) that deflate poorly: SimpleITK
spent ~0.28 s of a warm click compressing three of them, as long as the report takes to draw.  Any NRRD
reader (SimpleITK, Slicer, teem, pynrrd) reads the file: a gzip stream is a gzip stream.  Without `isal`
(or for any other image) `volume.write_volume` writes the file through SimpleITK.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ISAL_LEVEL = 1      # ISA-L's level 1 compresses these maps as well as zlib's level 1, several times faster


def _number(x: float) -> str:
    """A double as ITK writes it into a NRRD header (17 significant digits; a negative zero as 0)."""
    return format(float(x) + 0.0, ".17g")


def _vector(values) -> str:
    return "(" + ",".join(_number(v) for v in values) + ")"


def nrrd_header(volume) -> bytes:
    """The header SimpleITK's NRRD writer gives a 3D float32 volume in LPS (tested against it)."""
    k, j, i = volume.array.shape
    directions = volume.direction_lps * volume.spacing[None, :]      # column a: the step along axis a
    lines = ["NRRD0004",
             "# Complete NRRD file format specification at:",
             "# http://teem.sourceforge.net/nrrd/format.html",
             "type: float",
             "dimension: 3",
             "space: left-posterior-superior",
             f"sizes: {i} {j} {k}",
             "space directions: " + " ".join(_vector(directions[:, a]) for a in range(3)),
             "kinds: domain domain domain",
             "endian: little",
             "encoding: gzip",
             f"space origin: {_vector(volume.origin_lps)}",
             "", ""]
    return "\n".join(lines).encode("ascii")


def fast_gzip():
    """ISA-L's gzip module, or None when `isal` is not installed."""
    try:
        from isal import igzip
    except ImportError:
        return None
    return igzip


def write_float_nrrd(volume, path: str | os.PathLike) -> bool:
    """Write `volume` (float32) to `path` as a gzip NRRD with ISA-L; False (nothing written) when `isal`
    is missing or the volume is not float32, for the caller to write it another way."""
    igzip = fast_gzip()
    if igzip is None or volume.array.dtype != np.float32:
        return False
    data = np.ascontiguousarray(volume.array, dtype="<f4")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(nrrd_header(volume))
        f.write(igzip.compress(memoryview(data).cast("B"), ISAL_LEVEL, mtime=0))   # the same bytes each run
    return True
