"""A user model catalogue for tests: copies of the bundled models (weights and card) under other ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from DVTStagingLib.models.catalog import DEFAULT_IDS, bundled_dir


def catalogue_copy(folder: Path, kind: str, new_id: str) -> Path:
    """The bundled staging model or detector (`kind`) as `<folder>/<new_id>.json` with its weights beside it,
    sha256 unchanged (a valid catalogue entry); returns the card's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = bundled_dir() / f"{DEFAULT_IDS[kind]}.json"
    card = json.loads(source.read_text(encoding="utf-8"))
    shutil.copyfile(source.parent / card["weights"], folder / f"{new_id}.safetensors")
    card.update(id=new_id, weights=f"{new_id}.safetensors")
    path = folder / f"{new_id}.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    return path
