"""Reading the project's JSON files with one-line errors instead of tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputFileError


def read_json(path, missing: str | None = None, name: str | None = None):
    """The parsed content of `path`; a missing or unparsable file is an InputFileError (exit 2).

    `missing` replaces the message for an absent file; `name` is how the file is called in messages.
    """
    path = Path(path)
    name = name or str(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(missing or f"{name} does not exist") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{name} is not readable JSON ({exc})") from None
