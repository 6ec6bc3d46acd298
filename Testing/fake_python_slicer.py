"""A stand-in for Slicer's `PythonSlicer` executable, for tests of installing Python packages.

    fake_python_slicer.py -m pip install REQ...              (what slicer.packaging / our pip run do)
    fake_python_slicer.py -m light_the_torch install REQ...  (what PyTorchUtils-style torch installs do)

"Installs" by writing `<name>-<version>.dist-info/METADATA` into $FAKE_SITE_PACKAGES (the test puts
that folder first on sys.path, so importlib.metadata sees the new version; an older dist-info of the
same name there is removed, as pip uninstalls the old version), choosing the lowest version the
requirement allows.  Every call is appended to $FAKE_PYTHON_STATE (JSON lines: argv, tool,
requirements, returncode).  $FAKE_PIP_FAIL: comma-separated names (or "*") whose install fails the
way pip does (message on stderr, exit status 1).  $FAKE_PIP_SECONDS: time one install takes.
`-m light_the_torch` fails like Python does ("No module named light_the_torch") until light-the-torch
is installed.  Any other command line runs the real Python (this interpreter) with it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _record(entry: dict) -> None:
    state = os.environ.get("FAKE_PYTHON_STATE")
    if state:
        with open(state, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def _version_for(req: Requirement) -> str:
    """The lowest version the requirement allows: its tightest lower bound (1.0 without one)."""
    bounds = [spec.version for spec in req.specifier if spec.operator in (">=", "==", "~=", "===")]
    bounds += [f"{spec.version}.1" for spec in req.specifier if spec.operator == ">"]
    candidates = [max(bounds, key=Version)] if bounds else ["1.0"]
    for version in candidates + ["99.0"]:
        if req.specifier.contains(version, prereleases=True):
            return version
    raise SystemExit(f"ERROR: fake pip cannot pick a version for {req}")


def _installed(site: Path, name: str) -> list[Path]:
    return [p for p in site.glob("*.dist-info")
            if _canonical(p.name[:-len(".dist-info")].rsplit("-", 1)[0]) == _canonical(name)]


def _install(tool: str, argv: list[str], requirements: list[str]) -> int:
    site = Path(os.environ["FAKE_SITE_PACKAGES"])
    failing = {_canonical(n) for n in os.environ.get("FAKE_PIP_FAIL", "").split(",") if n}
    seconds = float(os.environ.get("FAKE_PIP_SECONDS", "0"))
    reqs = [Requirement(r) for r in requirements]
    for req in reqs:
        print(f"Collecting {req}", flush=True)
        steps = max(int(seconds / 0.05), 0)
        for step in range(steps):
            time.sleep(seconds / steps)
            print(f"Downloading {req.name} ({step + 1}/{steps})", flush=True)
        if "*" in failing or _canonical(req.name) in failing:
            print(f"ERROR: Could not find a version that satisfies the requirement {req}", file=sys.stderr)
            print(f"ERROR: No matching distribution found for {req.name}", file=sys.stderr, flush=True)
            _record({"argv": argv, "tool": tool, "requirements": requirements, "returncode": 1})
            return 1
    done = []
    for req in reqs:
        version = _version_for(req)
        for old in _installed(site, req.name):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        folder = site / f"{_canonical(req.name).replace('-', '_')}-{version}.dist-info"
        folder.mkdir(parents=True)
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {req.name}\nVersion: {version}\n",
                                         encoding="utf-8")
        (folder / "INSTALLER").write_text("fake-pip\n", encoding="utf-8")
        done.append(f"{req.name}-{version}")
    print(f"Successfully installed {' '.join(done)}", flush=True)
    _record({"argv": argv, "tool": tool, "requirements": requirements, "returncode": 0})
    return 0


def main(argv: list[str]) -> int:
    if argv[:3] == ["-m", "pip", "install"]:
        return _install("pip", argv, [a for a in argv[3:] if not a.startswith("-")])
    if argv[:3] == ["-m", "light_the_torch", "install"]:
        site = Path(os.environ["FAKE_SITE_PACKAGES"])
        if not _installed(site, "light-the-torch"):
            print(f"{sys.executable}: No module named light_the_torch", file=sys.stderr)
            _record({"argv": argv, "tool": "light_the_torch", "requirements": argv[3:], "returncode": 1})
            return 1
        return _install("light_the_torch", argv, [a for a in argv[3:] if not a.startswith("-")])
    os.execv(sys.executable, [sys.executable, *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
