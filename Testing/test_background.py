"""The background process runner: progress lines, synchronous wait, cancel of the whole process tree."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from DVTStagingLib.slicer.background import BackgroundProcess, ProgressEvent, parse_progress

# A child that starts a grandchild (as torch data loaders or the CLI's workers would), reports both pids
# on stdout, then writes progress lines for a long time.
_LONG_CHILD = textwrap.dedent("""
    import subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(grandchild.pid, flush=True)
    for i in range(1, 10001):
        print(f"progress: work {i}/10000", file=sys.stderr, flush=True)
        time.sleep(0.02)
""")


def _alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(")")[-1].split()[0] not in ("Z", "X")
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_progress_lines_are_parsed():
    assert parse_progress("progress: staging 3/12") == ProgressEvent("staging", 3, 12)
    assert parse_progress("progress: slice pairs 5/5\n").fraction == 1.0
    assert parse_progress("progress: x 0/0").fraction == 0.0
    assert parse_progress("warning: ROI extends beyond the volume") is None
    assert parse_progress("progress: no numbers") is None


def test_wait_reports_progress_and_keeps_the_error_line():
    code = ("import sys\n"
            "for i in range(1, 4): print(f'progress: steps {i}/3', file=sys.stderr, flush=True)\n"
            "print('result on stdout'); print('dvt-staging: error: bad ROI', file=sys.stderr); sys.exit(2)")
    seen = []
    process = BackgroundProcess([sys.executable, "-c", code])
    assert process.wait(timeout=30, on_progress=seen.append) == 2
    assert [(e.done, e.total) for e in seen] == [(1, 3), (2, 3), (3, 3)]
    assert process.error_message() == "dvt-staging: error: bad ROI"
    assert list(process.stdout_tail) == ["result on stdout"]


@pytest.mark.skipif(sys.platform == "win32", reason="checks POSIX process groups")
def test_cancel_stops_the_process_tree_within_a_second():
    process = BackgroundProcess([sys.executable, "-c", _LONG_CHILD]).start()
    deadline = time.monotonic() + 20
    # stdout and stderr are read by separate threads, so the pid line may arrive after the first progress
    while (process.last_progress is None or not process.stdout_tail) and time.monotonic() < deadline:
        process.poll()
        time.sleep(0.02)
    assert process.last_progress is not None and process.stdout_tail and process.running
    grandchild = int(process.stdout_tail[0])
    assert _alive(grandchild)

    start = time.monotonic()
    assert process.cancel()
    elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    assert not process.running and process.cancelled
    deadline = time.monotonic() + 1.0
    while _alive(grandchild) and time.monotonic() < deadline:   # init reaps the orphan
        time.sleep(0.02)
    assert not _alive(grandchild), "the grandchild survived the cancel"


def test_a_process_that_ignores_sigterm_is_killed_too():
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    process = BackgroundProcess([sys.executable, "-c", code]).start()
    while not process.stdout_tail:
        process.poll()
        time.sleep(0.02)
    start = time.monotonic()
    assert process.cancel()
    assert time.monotonic() - start < 1.0
    assert not process.running


def test_wait_timeout_stops_the_process():
    process = BackgroundProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(TimeoutError):
        process.wait(timeout=0.5)
    assert not process.running
