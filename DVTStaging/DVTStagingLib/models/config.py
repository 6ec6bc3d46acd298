"""Named model configurations: the paper's `vdpf-b16` and the small CPU one, from the same code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..core.errors import UserError
from ..imaging.planes import PLANES

FEATURES = ("global_self", "local_self", "cross")
FUSIONS = ("fffn", "coord", "none")
CROSS_ORDERS = ("local_to_global", "global_to_local")
ARCHITECTURES = ("vdpf", "resnet50", "vit", "efficientnet_b0")
# The local branch's input: the paper's I_L (the whole slice, outside the ROI box zeroed) or, beyond the
# paper, the box and its surroundings cropped and resized to the input size (the lesion at full resolution).
LOCAL_VIEWS = ("masked", "zoom")
# The ViT's patch embedding: the paper's linear patches, or (beyond the paper) a small convolutional stem
# with the same stride, which trains ViTs from scratch on small data far more reliably.
STEMS = ("patch", "conv")
# Training augmentation: the paper's set, or (beyond the paper) without the gamma and contrast changes,
# which alter the thrombus-to-muscle signal ratio that the stage is read from.
AUGMENTATIONS = ("paper", "ratio-preserving")


@dataclass(frozen=True)
class InputSpec:
    """How a study becomes model input; stored in the model card."""

    size: int = 112
    plane: str = "axial"
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    clip_max: float = 2.0
    local_view: str = "masked"        # see LOCAL_VIEWS
    zoom_context: float = 2.0         # zoom: window side = this x the box's larger side ...
    zoom_min_mm: float = 24.0         # ... and at least this many millimetres

    def __post_init__(self):
        if self.local_view not in LOCAL_VIEWS:
            raise UserError(f"unknown local view '{self.local_view}' (use {', '.join(LOCAL_VIEWS)})")
        if self.zoom_context < 1.0 or self.zoom_min_mm <= 0:
            raise UserError("zoom_context must be >= 1 and zoom_min_mm > 0")

    def to_dict(self) -> dict:
        data = {"size": self.size, "plane": self.plane, "low_percentile": self.low_percentile,
                "high_percentile": self.high_percentile, "clip_max": self.clip_max,
                "channels": 1, "scaling": "per-study percentiles: low -> 0, high -> 1, clipped to [0, clip_max]",
                "local_view": self.local_view}
        if self.local_view == "zoom":
            data.update(zoom_context=self.zoom_context, zoom_min_mm=self.zoom_min_mm)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        if data.get("plane", "axial") not in PLANES:
            raise UserError(f"unknown slice plane '{data.get('plane')}' (use {', '.join(PLANES)})")
        return cls(int(data.get("size", 112)), data.get("plane", "axial"), float(data.get("low_percentile", 1.0)),
                   float(data.get("high_percentile", 99.5)), float(data.get("clip_max", 2.0)),
                   str(data.get("local_view", "masked")), float(data.get("zoom_context", 2.0)),
                   float(data.get("zoom_min_mm", 24.0)))


@dataclass(frozen=True)
class ModelConfig:
    name: str
    architecture: str = "vdpf"
    # backbone (timm VisionTransformer, shared by the global and local branch)
    patch_size: int = 8
    stem: str = "patch"                        # see STEMS
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    # GLFM and its ablations (paper Tables 2-3)
    fusion_heads: int = 4
    fusion: str = "fffn"                       # fffn | coord (VDPF-CA) | none (VDPF-CAT)
    cross_order: str = "local_to_global"       # global_to_local = VDPF-SC (swapped)
    features: tuple[str, ...] = FEATURES       # subsets of F_G-S, F_L-S, F_Cross
    num_classes: int = 3
    input: InputSpec = field(default_factory=InputSpec)
    # baselines crop the lesion box (+ margin pixels) instead of using slice pairs
    crop_margin_px: int = 5
    # training recipe (paper: Adam 1e-4, wd 1e-6, batch 24, 10 warm-up epochs, cosine)
    lr: float = 1e-4
    weight_decay: float = 1e-6
    batch_size: int = 24
    epochs: int = 60
    warmup_epochs: int = 10
    patience: int = 15
    slices_per_roi: int = 8                    # slices drawn per ROI per epoch (all at evaluation)
    augmentation: str = "paper"                # see AUGMENTATIONS

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"config {self.name}: unknown architecture '{self.architecture}'")
        if self.augmentation not in AUGMENTATIONS:
            raise UserError(f"config {self.name}: augmentation must be one of {', '.join(AUGMENTATIONS)}")
        if self.stem not in STEMS:
            raise UserError(f"config {self.name}: stem must be one of {', '.join(STEMS)}")
        if self.stem == "conv" and self.patch_size not in (4, 8, 16):
            raise UserError(f"config {self.name}: a conv stem needs patch size 4, 8 or 16")
        if self.fusion not in FUSIONS:
            raise UserError(f"config {self.name}: fusion must be one of {', '.join(FUSIONS)}")
        if self.cross_order not in CROSS_ORDERS:
            raise UserError(f"config {self.name}: cross_order must be one of {', '.join(CROSS_ORDERS)}")
        if not self.features or any(f not in FEATURES for f in self.features):
            raise UserError(f"config {self.name}: features must be a non-empty subset of {', '.join(FEATURES)}")
        if self.input.size % self.patch_size:
            raise UserError(f"config {self.name}: input size {self.input.size} is not a multiple of the patch size")
        if self.embed_dim % self.num_heads or self.embed_dim % self.fusion_heads:
            raise UserError(f"config {self.name}: embed_dim must divide into the attention heads")

    @property
    def grid(self) -> int:
        return self.input.size // self.patch_size

    def to_dict(self) -> dict:
        data = asdict(self)
        data["features"] = list(self.features)
        data["input"] = self.input.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        values = dict(data)
        if "input" in values:
            values["input"] = InputSpec.from_dict(values["input"])
        if "features" in values:
            values["features"] = tuple(values["features"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise UserError(f"bad model config: {exc}") from None


VDPF_B16 = ModelConfig(
    name="vdpf-b16", patch_size=16, embed_dim=768, depth=12, num_heads=12, fusion_heads=12,
    input=InputSpec(size=224), epochs=100, patience=20, slices_per_roi=16,
)
# The bundled CPU model: the paper's recipe on a shorter schedule (warm-up scaled with it).
VDPF_SMALL = ModelConfig(name="vdpf-small", epochs=50, warmup_epochs=5, patience=12)
# A tiny network for tests and wiring checks (seconds on a CPU).
VDPF_TINY = ModelConfig(name="vdpf-tiny", patch_size=8, embed_dim=32, depth=1, num_heads=2, fusion_heads=2,
                        input=InputSpec(size=32), epochs=3, warmup_epochs=1, patience=3, slices_per_roi=4,
                        batch_size=8, lr=1e-3, drop_path=0.0)

# Paper Tables 2-3 (ablations) and Table 4 (baselines), as variants of a base config.
ABLATIONS = {
    "VDPF": {},
    "VDPF-CAT (no FFFN)": {"fusion": "none"},
    "VDPF-CA (coordinate attention)": {"fusion": "coord"},
    "VDPF-SC (swapped cross-attention)": {"cross_order": "global_to_local"},
    "F_G-S": {"features": ("global_self",)},
    "F_L-S": {"features": ("local_self",)},
    "F_Cross": {"features": ("cross",)},
    "F_G-S + F_Cross": {"features": ("global_self", "cross")},
    "F_L-S + F_Cross": {"features": ("local_self", "cross")},
    "F_G-S + F_L-S": {"features": ("global_self", "local_self")},
}
BASELINES = {"ResNet50": "resnet50", "ViT": "vit", "EfficientNet-b0": "efficientnet_b0"}

NAMED = {c.name: c for c in (VDPF_B16, VDPF_SMALL, VDPF_TINY)}


def variant(base: ModelConfig, label: str) -> ModelConfig:
    """The base config changed into one of the ablations or baselines, by table label."""
    if label in ABLATIONS:
        return replace(base, name=f"{base.name}:{label}", **ABLATIONS[label])
    if label in BASELINES:
        return replace(base, name=f"{base.name}:{label}", architecture=BASELINES[label])
    raise UserError(f"unknown variant '{label}'")


def load_config(name_or_path: str | Path) -> ModelConfig:
    """A named config or a JSON file holding a config (optionally {"base": NAME, ...overrides})."""
    if str(name_or_path) in NAMED:
        return NAMED[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise UserError(f"unknown config '{name_or_path}': use one of {', '.join(NAMED)} or a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a JSON object")
    base = data.pop("base", None)
    if base is not None:
        if base not in NAMED:
            raise UserError(f"{path}: unknown base config '{base}'")
        merged = NAMED[base].to_dict()
        merged.update(data)
        data = merged
    data.setdefault("name", path.stem)
    return ModelConfig.from_dict(data)
