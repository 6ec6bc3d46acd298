"""The scanner of the `fields` style: grid, contrast, resolution, bias, noise and storage per study.

What differs between sites (resolution, slice profile, orientation, contrast curve, fat/muscle ratio,
coil count and noise statistics, bias field, intensity scaling and storage type) is drawn here, from
nothing that depends on the thrombus stage: absolute intensity carries no stage information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import gaussian_field, upsample

MAX_VOXELS = 12_000_000


@dataclass
class Contrast:
    """T1 tissue values relative to muscle and the sequence's contrast curve (image = curve(T1))."""

    fat: float
    marrow: float
    cortex: float
    skin: float
    edema: float
    vein_lumen: float
    artery_lumen: float
    vein_wall: float
    artery_wall: float
    sheath: float
    gamma: float
    saturation: float           # 0: none; else c of v^g (1 + 1/c) / (1 + v^g / c)

    def curve(self, t1):
        """Contrast curve of the sequence; curve(1) = 1 (muscle is the reference)."""
        v = np.power(np.maximum(t1, 0), self.gamma, dtype=np.float32) if isinstance(t1, np.ndarray) \
            else max(float(t1), 0.0) ** self.gamma
        if self.saturation > 0:
            c = self.saturation
            v = v * ((1 + 1 / c) / (1 + v / c))
        return v

    def tissue(self) -> dict:
        return {"fat": self.fat, "marrow": self.marrow, "cortex": self.cortex, "skin": self.skin,
                "edema": self.edema, "vein_lumen": self.vein_lumen}


def draw_contrast(rng: np.random.Generator) -> Contrast:
    fat = rng.uniform(2.0, 4.0)
    return Contrast(
        fat=float(fat), marrow=float(fat * rng.uniform(0.78, 0.95)), cortex=float(rng.uniform(0.02, 0.08)),
        skin=float(rng.uniform(0.9, 1.4)), edema=float(rng.uniform(0.5, 0.9)),
        vein_lumen=float(rng.uniform(0.1, 0.3)), artery_lumen=float(rng.uniform(0.06, 0.25)),
        vein_wall=float(rng.uniform(0.9, 1.3)), artery_wall=float(rng.uniform(0.9, 1.25)),
        sheath=float(fat * rng.uniform(0.85, 1.0)), gamma=float(rng.uniform(0.85, 1.15)),
        saturation=float(rng.uniform(6.0, 30.0)) if rng.random() < 0.5 else 0.0,
    )


@dataclass
class Grid:
    """Voxel grid in the model frame (LPS without the table offset)."""

    shape: tuple                # (nk, nj, ni)
    spacing: np.ndarray         # (i, j, k) mm
    direction: np.ndarray       # columns: i, j, k unit vectors (model = LPS axes)
    origin: np.ndarray          # model position of voxel (0, 0, 0)
    thickness: float            # slice thickness (mm), may differ from the k spacing
    psf_mm: float               # in-plane resolution (FWHM, mm)
    stack: str
    storage: str
    oblique_deg: float

    @property
    def matrix(self) -> np.ndarray:
        return self.direction * self.spacing[None, :]

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Model points (n, 3) -> continuous (i, j, k)."""
        return np.linalg.solve(self.matrix, (np.asarray(points, float) - self.origin).T).T

    @property
    def n_sub(self) -> int:
        """Samples across the slice profile (odd)."""
        n = int(np.clip(round(self.thickness / 1.1), 1, 5))
        return n if n % 2 else n + 1

    def sub_offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Offsets along the slice normal (mm) and weights of the slice-profile samples."""
        n = self.n_sub
        off = (np.arange(n) - (n - 1) / 2) * (self.thickness / n)
        w = np.ones(n)
        if n > 1:
            w[[0, -1]] = 0.7            # a real slice profile has soft edges
        return off, w / w.sum()


def _rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    a = np.deg2rad(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def draw_grid(rng: np.random.Generator, body: dict, targets: np.ndarray, focus: str, both: bool,
              z_limits: tuple) -> tuple[Grid, str]:
    """Orientation, resolution and field of view.

    body: side -> (xmin, xmax, ymin, ymax) of each thigh; targets: (n, 4) model points with a radius
    (thrombus centrelines) that must lie inside the field of view; focus: the leg of interest.
    Returns the grid and which legs it shows ("both", "one", "one+part").
    """
    stack = "axial" if rng.random() < 0.65 else "coronal"
    d = rng.uniform(0.6, 1.1) if rng.random() < 0.7 else rng.uniform(0.5, 1.5)
    u = rng.random()
    thick = rng.uniform(0.9, 1.5) * d if u < 0.35 else (rng.uniform(3.0, 6.0) if u < 0.75 else rng.uniform(1.5, 3.0))
    thick = float(np.clip(thick, 1.0, 6.0))
    u = rng.random()
    step_k = thick * (1.0 if u < 0.65 else (rng.uniform(1.05, 1.3) if u < 0.85 else rng.uniform(0.5, 0.9)))
    step_k = float(max(step_k, 0.6))

    # which legs the field of view shows
    other = "right" if focus == "left" else "left"
    if both or rng.random() < 0.55:
        legs = "both"
        x0 = min(b[0] for b in body.values()) - rng.uniform(-6.0, 30.0)
        x1 = max(b[1] for b in body.values()) + rng.uniform(-6.0, 30.0)
    else:
        fb, ob = body[focus], body[other]
        width_o = ob[1] - ob[0]
        part = rng.uniform(0.2, 0.7) if rng.random() < 0.55 else rng.uniform(-0.05, 0.05)
        legs = "one+part" if part > 0.1 else "one"
        if focus == "left":       # left leg at +x; the other leg lies toward -x
            x0, x1 = ob[1] - part * width_o, fb[1] + rng.uniform(-4.0, 25.0)
        else:
            x0, x1 = fb[0] - rng.uniform(-4.0, 25.0), ob[0] + part * width_o
    y0 = min(b[2] for b in body.values()) - rng.uniform(3.0, 25.0)
    y1 = max(b[3] for b in body.values()) + rng.uniform(2.0, 20.0)
    if targets.size:
        x0 = min(x0, targets[:, 0].min() - 20.0)
        x1 = max(x1, targets[:, 0].max() + 20.0)
    if stack == "coronal" and rng.random() < 0.6 and targets.size:
        # a coronal slab through the vessels rather than the whole thigh
        y0 = max(y0, targets[:, 1].min() - rng.uniform(15.0, 50.0))
        y1 = min(y1, targets[:, 1].max() + rng.uniform(15.0, 50.0))
    width, depth = x1 - x0, y1 - y0

    target_voxels = float(np.exp(rng.uniform(np.log(1.5e6), np.log(6.0e6))))
    cover = target_voxels * d * d * step_k / (width * depth)     # z extent: slices (axial) or rows (coronal)
    if targets.size:
        need_lo = targets[:, 2].min() - rng.uniform(6.0, 30.0)
        need_hi = targets[:, 2].max() + rng.uniform(6.0, 30.0)
    else:
        mid = rng.uniform(z_limits[0] + 60, z_limits[1] - 40)
        need_lo, need_hi = mid - 20, mid + 20
    cover = float(np.clip(cover, max(need_hi - need_lo, 50.0), 280.0))
    lo_min, hi_max = z_limits
    z0 = rng.uniform(max(lo_min, need_hi - cover), min(need_lo, hi_max - cover) + 1e-6) \
        if max(lo_min, need_hi - cover) < min(need_lo, hi_max - cover) else need_lo
    z1 = z0 + cover

    # grid axes before any oblique tilt
    s_i = 1.0 if rng.random() < 0.5 else -1.0          # LPS storage: i toward +x; RAS: toward -x
    storage = "LPS" if s_i > 0 else "RAS"
    if stack == "axial":
        axes = np.array([[s_i, 0, 0], [0, s_i, 0], [0, 0, 1.0 if rng.random() < 0.5 else -1.0]]).T
        extent = np.array([width, depth, z1 - z0])
        spacing = np.array([d, d, step_k])
    else:
        axes = np.array([[s_i, 0, 0], [0, 0, -1.0 if rng.random() < 0.85 else 1.0],
                         [0, 1.0 if rng.random() < 0.5 else -1.0, 0]]).T
        extent = np.array([width, z1 - z0, depth])
        spacing = np.array([d, d, step_k])
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2])
    oblique = 0.0
    direction = axes
    if rng.random() < 0.3:
        oblique = float(rng.uniform(3.0, 15.0))
        direction = _rotation(rng.standard_normal(3), oblique) @ axes
    # grow the box (in its own axes) until every target sits inside with its radius
    if targets.size:
        local = (targets[:, :3] - center) @ direction
        need = np.max(np.abs(local) + targets[:, 3:4], axis=0) * 2 + 4.0
        extent = np.maximum(extent, need)
    shape_ijk = np.maximum(np.ceil(extent / spacing).astype(int), 8)
    while np.prod(shape_ijk) > MAX_VOXELS:
        spacing[:2] *= 1.08
        shape_ijk = np.maximum(np.ceil(extent / spacing).astype(int), 8)
    origin = center - direction @ (spacing * (shape_ijk - 1) / 2)
    grid = Grid((int(shape_ijk[2]), int(shape_ijk[1]), int(shape_ijk[0])), spacing.astype(float), direction,
                origin, thick, float(spacing[0] * rng.uniform(1.0, 1.35)), stack, storage, oblique)
    return grid, legs


# -- scanner effects ----------------------------------------------------------------------------------
@dataclass
class Scanner:
    noise_model: str            # "rician" (one coil), "nc-chi" (sum of squares of several), "gaussian"
    coils: int
    snr: float                  # muscle signal / noise SD
    bias_sd: float
    bias_mm: float
    texture: float              # 3-D heterogeneity amplitude
    prescan: float              # 0, or the exponent of an intensity normalisation by the bias estimate
    dtype: str                  # "int16", "uint16", "float32", "rescaled"
    muscle_level: float
    slope: float
    intercept: float


def draw_scanner(rng: np.random.Generator) -> Scanner:
    u = rng.random()
    model, coils = ("rician", 1) if u < 0.35 else (("nc-chi", int(rng.choice([2, 3, 4, 6, 8]))) if u < 0.75
                                                    else ("gaussian", 1))
    # a sum of squares lifts the noise floor with the coil count: such sites scan at a higher SNR
    snr = np.exp(rng.uniform(np.log(8), np.log(40))) if model != "nc-chi" else np.exp(rng.uniform(np.log(12), np.log(45)))
    u = rng.random()
    if u < 0.35:
        dtype, level = "int16", np.exp(rng.uniform(np.log(150), np.log(2500)))
    elif u < 0.6:
        dtype, level = "uint16", np.exp(rng.uniform(np.log(300), np.log(6000)))
    elif u < 0.8:
        dtype, level = "float32", np.exp(rng.uniform(np.log(0.01), np.log(800)))
    else:
        dtype, level = "rescaled", np.exp(rng.uniform(np.log(100), np.log(2000)))
    slope = float(rng.uniform(0.2, 5.0)) if dtype == "rescaled" else 1.0
    intercept = float(rng.uniform(-0.03, 0.03) * level * slope) if dtype == "rescaled" and rng.random() < 0.3 else 0.0
    return Scanner(
        noise_model=model, coils=coils, snr=float(snr),
        bias_sd=float(rng.uniform(0.05, 0.25)), bias_mm=float(rng.uniform(80, 250)),
        texture=float(rng.uniform(0.01, 0.035)), prescan=float(rng.uniform(0.5, 1.0)) if rng.random() < 0.4 else 0.0,
        dtype=dtype, muscle_level=float(level), slope=slope, intercept=intercept,
    )


def _smooth_volume(rng, grid: Grid, corr_mm: float, coarse_mm: float) -> np.ndarray:
    """A smooth random field on a coarse copy of the grid (unit SD), not yet upsampled."""
    extent = np.array(grid.shape) * grid.spacing[::-1]
    coarse = np.maximum(np.ceil(extent / coarse_mm).astype(int) + 1, 2)
    return gaussian_field(rng, coarse, corr_mm / coarse_mm)


def apply_scanner(image: np.ndarray, grid: Grid, sc: Scanner, rng: np.random.Generator) -> np.ndarray:
    """Bias field, 3-D heterogeneity, noise of the coil combination, intensity normalisation, storage."""
    shape = image.shape
    # slow bias (coil sensitivity, B1) and a finer 3-D texture share one upsampling
    bias = _smooth_volume(rng, grid, sc.bias_mm / 2.5, 20.0)
    extent = np.array(shape) * grid.spacing[::-1]
    tex_shape = np.maximum(np.ceil(extent / 3.0).astype(int) + 1, 2)
    log_bias = upsample(bias, tex_shape) * np.float32(sc.bias_sd)
    texture = gaussian_field(rng, tex_shape, 1.2)
    gain_c = np.exp(log_bias) * (1 + np.float32(sc.texture) * texture)
    prescan_c = np.exp(-np.float32(sc.prescan) * log_bias) if sc.prescan else None
    gain = upsample(gain_c, shape)
    sigma = np.float32(1.0 / sc.snr)
    out = np.empty(shape, np.float32)
    chunk = max(1, 200_000 // (shape[1] * shape[2]))
    pre = upsample(prescan_c, shape) if prescan_c is not None else None
    for k0 in range(0, shape[0], chunk):
        s = image[k0:k0 + chunk] * gain[k0:k0 + chunk]
        n1 = rng.standard_normal(s.shape, dtype=np.float32) * sigma
        if sc.noise_model == "gaussian":
            m = np.maximum(s + n1, 0)
        else:
            n2 = rng.standard_normal(s.shape, dtype=np.float32) * sigma
            if sc.noise_model == "rician":
                m = np.hypot(s + n1, n2)
            else:   # sum of squares over coils: non-central chi with 2L degrees of freedom
                rest = rng.standard_gamma((2 * sc.coils - 2) / 2.0, s.shape, dtype=np.float32) * 2.0
                m = np.sqrt((s + n1) ** 2 + n2 ** 2 + rest * sigma * sigma)
        if pre is not None:
            m *= pre[k0:k0 + chunk]
        out[k0:k0 + chunk] = m
    return store(out, sc)


def store(m: np.ndarray, sc: Scanner) -> np.ndarray:
    """Scale (muscle at `muscle_level`) and store as the scanner writes it."""
    m *= np.float32(sc.muscle_level)
    if sc.dtype == "float32":
        return m
    if sc.dtype == "int16":
        return np.clip(np.rint(m), 0, 32767).astype(np.int16)
    if sc.dtype == "uint16":
        return np.clip(np.rint(m), 0, 65535).astype(np.uint16)
    q = np.clip(np.rint(m), 0, 65535)            # integer levels, read back through slope and intercept
    return (q * np.float32(sc.slope) + np.float32(sc.intercept)).astype(np.float32)
