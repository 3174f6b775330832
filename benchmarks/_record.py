"""The raw record every benchmark commits: command, date, machine, versions, every repeat."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("bayesgmm", "numpy", "scipy", "scikit-learn", "pymc", "pytensor", "nutpie",
            "numba", "arviz")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state() -> dict:
    """HEAD commit and the files modified in the working tree (call it when a run starts)."""
    root = Path(__file__).resolve().parents[1]

    def run(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True,
                              text=True).stdout.strip()

    return {"head": run("rev-parse", "HEAD"),
            "modified": run("status", "--porcelain", "--untracked-files=no").splitlines()}


def write_record(path: str, results: dict[str, Any]) -> None:
    """Write ``results`` with the command line, date, machine and package versions."""
    record = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_end": list(os.getloadavg())},
        "versions": _versions(),
        **results,
    }
    with open(path, "w") as handle:
        json.dump(record, handle, indent=1, default=float)
    print(f"raw results written to {path}")
