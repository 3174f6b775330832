"""The raw record every benchmark commits: command, date, machine, versions, every repeat."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
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
