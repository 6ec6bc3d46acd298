"""`dvt-staging` command line (docs/cli.md).

Exit status: 0 success, 2 bad input or usage (one line on stderr, no
traceback), 130 cancelled, 1 internal error (here or on a staging server),
3 staging server unreachable or connection lost.  Heavy imports (torch)
happen inside the commands that need them, so `phantom`, `dataset` and the
`--server` client start fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__, commands
from .core.errors import Cancelled, ServerError, ServiceUnreachable, UserError

PROG = "dvt-staging"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage on several lines; we want one line
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Stage deep vein thrombosis on black-blood MR thrombus imaging. "
                                            "Research software, not for clinical use.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in commands.ALL:
        p = sub.add_parser(command.NAME, help=command.HELP)
        if hasattr(command, "run"):
            command.add_arguments(p)
            p.set_defaults(handler=command.run)
        else:   # a command with actions of its own (dataset)
            command.add_arguments(p, _Parser)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print(f"{PROG}: cancelled", file=sys.stderr)
        return 130
    except ServiceUnreachable as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 3
    except ServerError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line; the traceback on request
        if os.environ.get("DVT_STAGING_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set DVT_STAGING_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":   # `python -m DVTStagingLib.cli` as well as `python -m DVTStagingLib`
    sys.exit(main())
