"""Progress and status lines on stderr.

Lines look like ``progress: <task> <done>/<total>``, so the Slicer module
(and any other caller) can parse them from a background process.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, task: str, total: int, stream=None, min_interval: float = 0.5, enabled: bool = True):
        self.task = task
        self.total = max(int(total), 1)
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self.enabled = enabled
        self._last = 0.0
        self.done = 0

    def update(self, done: int | None = None, force: bool = False):
        self.done = self.done + 1 if done is None else int(done)
        now = time.monotonic()
        if self.enabled and (force or self.done >= self.total or now - self._last >= self.min_interval):
            self._last = now
            print(f"progress: {self.task} {self.done}/{self.total}", file=self.stream, flush=True)


def status(message: str, stream=None):
    print(message, file=stream or sys.stderr, flush=True)
