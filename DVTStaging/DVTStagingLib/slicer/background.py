"""Runs a long command (the `dvt-staging` CLI) in a background process.

The GUI must never freeze and Cancel must work, so the work runs in its own
process: reader threads collect its output, the owner drains it from its own
thread with `poll()` (Slicer: a Qt timer; tests: `wait()`), and `cancel()`
kills the whole process tree.  Nothing here touches Qt or MRML: callbacks run
on the thread that calls `poll()`/`wait()`, never on a reader thread.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..core.progress import parse_progress_line



@dataclass(frozen=True)
class ProgressEvent:
    task: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return min(max(self.done / self.total, 0.0), 1.0) if self.total > 0 else 0.0


def parse_progress(line: str) -> ProgressEvent | None:
    """`progress: <task> <done>/<total>` (as `progress.Progress` writes it), else None."""
    parsed = parse_progress_line(line)
    return ProgressEvent(*parsed) if parsed else None


class BackgroundProcess:
    """One command in its own process group, with progress parsing and tree-wide cancel."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None, keep_lines: int = 200):
        self.argv = [str(a) for a in argv]
        self.env = env
        self.cwd = cwd
        self.cancelled = False
        self.last_progress: ProgressEvent | None = None
        self.stderr_tail: deque[str] = deque(maxlen=keep_lines)
        self.stdout_tail: deque[str] = deque(maxlen=keep_lines)
        self._events: queue.Queue = queue.Queue()
        self._process: subprocess.Popen | None = None
        self._readers: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> "BackgroundProcess":
        if self._process is not None:
            raise RuntimeError("this background process was already started")
        kwargs = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True   # own process group: cancel reaches grandchildren too
        self._process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs)
        for stream, name in ((self._process.stderr, "stderr"), (self._process.stdout, "stdout")):
            reader = threading.Thread(target=self._read, args=(stream, name), daemon=True,
                                      name=f"dvt-staging-{name}-reader")
            reader.start()
            self._readers.append(reader)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    @property
    def finished(self) -> bool:
        """The process has ended and all its output has been read."""
        return (self._process is not None and self._process.poll() is not None
                and not any(r.is_alive() for r in self._readers))

    # -- output --------------------------------------------------------------------------
    def _read(self, stream, name: str) -> None:
        for line in iter(stream.readline, ""):
            self._events.put((name, line.rstrip("\r\n")))
        stream.close()

    def poll(self, on_progress=None, on_line=None) -> list[ProgressEvent]:
        """Handle the output gathered since the last call; returns its progress events."""
        events = []
        while True:
            try:
                name, line = self._events.get_nowait()
            except queue.Empty:
                break
            progress = parse_progress(line) if name == "stderr" else None
            if progress is not None:
                self.last_progress = progress
                events.append(progress)
                if on_progress:
                    on_progress(progress)
                continue
            (self.stderr_tail if name == "stderr" else self.stdout_tail).append(line)
            if on_line:
                on_line(name, line)
        return events

    def error_message(self) -> str:
        """The process's last words on stderr (the CLI's one-line error), or its exit status."""
        for line in reversed(self.stderr_tail):
            if line.strip() and not line.startswith(("warning:", "Warning:")):
                return line.strip()
        return f"exited with status {self.returncode}"

    def wait(self, timeout: float | None = None, on_progress=None, on_line=None, interval: float = 0.05) -> int:
        """Run to the end (the synchronous path); on timeout the process tree is killed."""
        if self._process is None:
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            self.poll(on_progress, on_line)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"{self.argv[0]} did not finish within {timeout:g} s; it was stopped")
            time.sleep(interval)
        self.poll(on_progress, on_line)
        return self._process.returncode

    # -- cancel --------------------------------------------------------------------------
    def cancel(self, grace: float = 0.3, timeout: float = 1.0) -> bool:
        """Stop the process and everything it started; True when it is gone within `timeout` s."""
        self.cancelled = True
        process = self._process
        if process is None or process.poll() is not None:
            self._kill_group(signal.SIGKILL if sys.platform != "win32" else None)  # stray grandchildren
            return True
        start = time.monotonic()
        self._kill_group(signal.SIGTERM if sys.platform != "win32" else None)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._kill_group(signal.SIGKILL if sys.platform != "win32" else None)  # whatever ignored SIGTERM
        try:
            process.wait(timeout=max(timeout - (time.monotonic() - start), 0.05))
        except subprocess.TimeoutExpired:
            return False
        return True

    def _kill_group(self, sig) -> None:
        process = self._process
        if process is None:
            return
        if sys.platform == "win32":
            if process.poll() is None:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            return
        try:
            os.killpg(process.pid, sig)   # the group id is the child's pid (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass
