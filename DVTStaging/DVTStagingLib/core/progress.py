"""Progress and status lines on stderr.

Lines look like ``progress: <task> <done>/<total>``, so the Slicer module
(and any other caller) can parse them from a background process.  A server
running several jobs in threads sends each job's lines to that job instead
(`redirected`): the redirection holds for the calling thread (a context
variable), so concurrent jobs never mix their lines.
"""

from __future__ import annotations

import contextvars
import re
import sys
import time
from contextlib import contextmanager
from typing import Callable

PROGRESS_LINE = re.compile(r"^progress:\s+(?P<task>.+?)\s+(?P<done>\d+)/(?P<total>\d+)\s*$")
_sink: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("dvt_staging_line_sink",
                                                                                      default=None)


@contextmanager
def redirected(sink: Callable[[str], None]):
    """Within this block, in this thread, progress and status lines go to `sink(line)` instead of stderr."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def _emit(line: str, stream=None) -> None:
    sink = _sink.get()
    if sink is not None and stream is None:
        sink(line)
    else:
        print(line, file=stream or sys.stderr, flush=True)


class Progress:
    def __init__(self, task: str, total: int, stream=None, min_interval: float = 0.5, enabled: bool = True):
        self.task = task
        self.total = max(int(total), 1)
        self.stream = stream          # None: stderr (or the job's sink, see `redirected`)
        self.min_interval = min_interval
        self.enabled = enabled
        self._last = 0.0
        self.done = 0

    def update(self, done: int | None = None, force: bool = False):
        self.done = self.done + 1 if done is None else int(done)
        now = time.monotonic()
        if self.enabled and (force or self.done >= self.total or now - self._last >= self.min_interval):
            self._last = now
            _emit(f"progress: {self.task} {self.done}/{self.total}", self.stream)


def status(message: str, stream=None):
    _emit(message, stream)


def parse_progress_line(line: str) -> tuple[str, int, int] | None:
    """(task, done, total) of a `progress: <task> <done>/<total>` line, else None."""
    match = PROGRESS_LINE.match(line.strip())
    return (match["task"], int(match["done"]), int(match["total"])) if match else None
