"""Helpers of the staging service tests: a real `dvt-staging serve` process on loopback (port 0, its port read
from --port-file, start-up bounded in time) and the CLI run as a child process, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTUP_S = 180.0     # torch import and model load on a busy 2-core machine


def cli_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "DVTStaging"), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("DVT_STAGING_DEBUG", None)
    env.update(extra or {})
    return env


def run_cli(*args, timeout: float = 600, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "DVTStagingLib", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(env), cwd=cwd)


def start_cli(*args, env: dict | None = None, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "DVTStagingLib", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(env), cwd=cwd)


class Server:
    """`dvt-staging serve --port 0` in a child process; `stop()` ends it gracefully, `kill()` does not."""

    def __init__(self, folder: Path, *args, env: dict | None = None, cwd=None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port_file = folder / "port"
        self.port_file.unlink(missing_ok=True)
        self.log_path = folder / "serve.log"
        self._log = open(self.log_path, "w", encoding="utf-8")
        argv = [sys.executable, "-m", "DVTStagingLib", "serve", "--port", "0", "--port-file", str(self.port_file),
                "--device", "cpu", *map(str, args)]
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=cli_env(env), cwd=cwd)
        deadline = time.monotonic() + STARTUP_S
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the server did not start within {STARTUP_S:g} s:\n{self.log()}")
            time.sleep(0.1)
        self.port = int(self.port_file.read_text().strip())
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()
