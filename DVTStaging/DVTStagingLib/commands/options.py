"""Options shared by several subcommands: each is defined here once."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import UserError
from ..models.devices import DEVICES


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def add_device(p):
    p.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs (default: auto)")


def add_model(p, what: str = "staging model"):
    p.add_argument("--model", default=None, help=f"{what}: catalogue id or model card JSON (default: bundled)")


def add_detector(p, what: str = "thrombus detector", model_alias: bool = False):
    """--detector ID/CARD (`detect` also keeps its older name --model, which names the same option)."""
    names = ("--detector", "--model") if model_alias else ("--detector",)
    p.add_argument(*names, dest="detector", default=None, metavar="ID/CARD",
                   help=f"{what}: catalogue id or model card JSON (default: bundled)"
                        + ("; --model is its older name" if model_alias else ""))


def add_output(p, default_out=None, required: bool = False, help_text: str | None = None):
    """--out (a folder) and --overwrite; without a default --out is required."""
    if default_out is None:
        p.add_argument("--out", type=Path, required=True, help=help_text or "output folder")
    else:
        p.add_argument("--out", type=Path, default=Path(default_out),
                       help=help_text or f"output folder (default: {default_out})")
    p.add_argument("--overwrite", action="store_true", help="replace results already in the output folder")


def add_input(p):
    p.add_argument("input", type=Path, help="volume file (NRRD, NIfTI, MHA, ...) or DICOM series folder")


def add_data(p, required: bool = True, help_text: str = "dataset folder (dataset.json)"):
    p.add_argument("--data", type=Path, required=required, default=None, help=help_text)


def add_seed(p, default: int = 0):
    p.add_argument("--seed", type=int, default=default)


def add_json(p):
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_server(p):
    p.add_argument("--server", metavar="URL", default=None,
                   help="run the model on a staging server (dvt-staging serve), e.g. http://127.0.0.1:8787")
    p.add_argument("--token-file", type=Path, default=None, help="file holding the server's token (with --server)")
    p.add_argument("--wait-for-server", type=float, default=0.0, metavar="SECONDS",
                   help="with --server: keep trying to reach a server that is still starting")


def run_on_server(args, kind: str, outputs) -> int | None:
    """Run `stage`/`detect` on the server of --server; None when there is none (run here)."""
    if args.server is None:
        if args.token_file is not None:
            raise UserError("--token-file goes with --server")
        return None
    from ..service.client import run_remote

    return run_remote(kind, args, outputs)
