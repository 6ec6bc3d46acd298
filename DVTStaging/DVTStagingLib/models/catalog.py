"""Model catalogue: safetensors weights + model card JSON, checked by sha256 before use.

A model card names its weights file relative to itself.  Cards are found in
the bundled folder (`Resources/Models` of the DVTStaging module) and in the user folder
(`$DVT_STAGING_MODELS`, else `$XDG_DATA_HOME/dvt-staging/models`), where
`train` publishes new models, so they appear without manual edits.
Weights are only ever read with safetensors: nothing is unpickled.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ChecksumError, UserError
from ..core.files import sha256_of, write_json_atomic
from ..core.json_files import read_json

CARD_SCHEMA = "dvt-staging/model-card@1"
KINDS = ("staging", "detector")
NOT_FOR_CLINICAL_USE = "Research use only. Not for clinical use: trained on a synthetic phantom, not on patients."
DEFAULT_IDS = {"staging": "vdpf-small-phantom", "detector": "detector-phantom"}


def bundled_dir() -> Path:
    """The one folder of bundled models: `Resources/Models` of the DVTStaging module.

    In the source tree and in Slicer the package sits beside DVTStaging.py and its Resources; a wheel has no
    module folder, so `pip install` puts the same files inside the package.
    """
    package = Path(__file__).resolve().parents[1]
    if (package.parent / "DVTStaging.py").is_file():
        return package.parent / "Resources" / "Models"
    return package / "Resources" / "Models"


def user_dir() -> Path:
    if os.environ.get("DVT_STAGING_MODELS"):
        return Path(os.environ["DVT_STAGING_MODELS"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "dvt-staging" / "models"


@dataclass
class ModelEntry:
    card: dict
    card_path: Path
    source: str          # "bundled" or "user" or "file"

    @property
    def id(self) -> str:
        return self.card["id"]

    @property
    def kind(self) -> str:
        return self.card.get("kind", "staging")

    @property
    def weights_path(self) -> Path:
        return self.card_path.parent / self.card["weights"]


def read_card(path: Path, source: str = "file") -> ModelEntry:
    card = read_json(path, name=f"model card {path}")
    if not isinstance(card, dict) or card.get("schema") != CARD_SCHEMA:
        raise UserError(f"{path} is not a DVTStaging model card (schema {CARD_SCHEMA})")
    for key in ("id", "kind", "weights", "sha256", "config"):
        if key not in card:
            raise UserError(f"model card {path} lacks '{key}'")
    if card["kind"] not in KINDS:
        raise UserError(f"model card {path}: unknown kind '{card['kind']}'")
    weights = Path(card["weights"])
    if weights.is_absolute() or ".." in weights.parts:
        raise UserError(f"model card {path}: the weights file must sit beside the card")
    return ModelEntry(card, Path(path).resolve(), source)


def list_models(kind: str | None = None) -> list[ModelEntry]:
    entries: dict[str, ModelEntry] = {}
    for source, folder in (("bundled", bundled_dir()), ("user", user_dir())):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                entry = read_card(path, source)
            except UserError:
                continue      # a stray JSON file is not a model; `resolve` reports bad cards by path
            if kind is None or entry.kind == kind:
                entries.setdefault(entry.id, entry)   # bundled ids cannot be shadowed
    return list(entries.values())


def resolve(model: str | os.PathLike | None, kind: str = "staging") -> ModelEntry:
    """A catalogue id, a path to a model card, or None for the default model of the kind."""
    if model is None:
        model = DEFAULT_IDS[kind]
    text = str(model)
    if text.endswith(".json") or os.sep in text or Path(text).is_file():
        entry = read_card(Path(text))
    else:
        found = [e for e in list_models() if e.id == text]
        if not found:
            known = ", ".join(e.id for e in list_models(kind)) or "none"
            raise UserError(f"no model '{text}' in the catalogue (available {kind} models: {known})")
        entry = found[0]
    if entry.kind != kind:
        raise UserError(f"model '{entry.id}' is a {entry.kind} model, not a {kind} model")
    return entry


def verify_weights(entry: ModelEntry) -> Path:
    """The weights file of a catalogue entry, present and matching its card's sha256 (torch-free: a command
    refuses a tampered or missing file before it loads any model library)."""
    path = entry.weights_path
    if not path.is_file():
        raise UserError(f"weights file {path} named by model card {entry.card_path} is missing")
    actual = sha256_of(path)
    if actual != entry.card["sha256"]:
        raise ChecksumError(f"weights file {path} fails its sha256 checksum (card {entry.card['sha256'][:12]}…, "
                            f"file {actual[:12]}…): refusing to load it")
    return path


def load_weights(entry: ModelEntry) -> dict:
    """The checked state dict of a catalogue entry."""
    path = verify_weights(entry)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"weights file {path} is not valid safetensors ({exc})") from None


def save_model(state_dict: dict, card: dict, folder: Path, model_id: str, stem: str | None = None) -> ModelEntry:
    """Write `<stem>.safetensors` and `<stem>.json` (card with sha256; stem: the id), each atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or model_id
    weights = folder / f"{stem}.safetensors"
    tmp = weights.with_name(f".{weights.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(tmp))
    os.replace(tmp, weights)
    card = dict(card, schema=CARD_SCHEMA, id=model_id, weights=weights.name, sha256=sha256_of(weights))
    card.setdefault("intended_use", NOT_FOR_CLINICAL_USE)
    card_path = folder / f"{stem}.json"
    write_json_atomic(card_path, card)
    return ModelEntry(card, card_path.resolve(), "file")


def parent_record(entry: ModelEntry) -> dict:
    """What a fine-tuned model's card records of the model it started from (no machine path)."""
    return {"id": entry.id, "sha256": entry.card.get("sha256"), "version": str(entry.card.get("version", "")),
            "source": entry.source}


def register_copy(card_path: Path, model_id: str) -> ModelEntry:
    """Copy a saved model (card and weights beside it) into the user catalogue as `<id>.json`, checked first."""
    entry = read_card(Path(card_path))
    source = verify_weights(entry)
    folder = user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{model_id}.safetensors"
    tmp = weights.with_name(f".{weights.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, weights)
    copied = dict(entry.card, id=model_id, weights=weights.name)
    write_json_atomic(folder / f"{model_id}.json", copied)
    return ModelEntry(copied, (folder / f"{model_id}.json").resolve(), "user")
