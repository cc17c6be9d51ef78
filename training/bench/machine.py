"""Where a benchmark ran: the machine, its load and the versions of what was measured."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("numpy", "scipy", "scikit-learn", "numba", "grpcio", "redis")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, Any]:
    """Cores, CPU, memory, Python and package versions, and the load average now."""
    cpuinfo = Path("/proc/cpuinfo")
    info = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")),
               platform.processor())  # fmt: skip
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(pages / 2**30, 1),
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def describe(info: dict[str, Any]) -> str:
    """One line for a report."""
    versions = ", ".join(f"{p} {info[p]}" for p in PACKAGES if p in info)
    return (
        f"{info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB, Python {info['python']}"
        f", {versions}; load average before the run {info['load_before'][0]:.2f}"
    )
