"""What the figures were measured on: CPU, cores, memory, Python, SQLite, OS, date, load."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from datetime import UTC, datetime


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def details() -> dict[str, str]:
    ram = _ram_gib()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    avg = load()
    return {
        "date": datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "ram": f"{ram:.1f} GiB" if ram else "unknown",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sqlite": sqlite3.sqlite_version,
        "os": platform.platform(),
        "load at start": " ".join(f"{x:.2f}" for x in avg) if avg else "unknown",
    }
