"""SIGTERM (the Slicer panel's Cancel, a cluster's job stop) handled as Ctrl-C: the command's own clean-up runs."""

from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def sigterm_cancels():
    """Within this block SIGTERM raises KeyboardInterrupt in the main thread (elsewhere it is left alone)."""
    def handler(signum, frame):
        raise KeyboardInterrupt()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:      # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
