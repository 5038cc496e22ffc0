"""Helpers shared by the test_cli test files (split from one module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.databases import snapshot as snapshot_tables

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))
TIMEOUT = 120


# ---------------------------------------------------------------- helpers


def cli_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for a subprocess: the caller's, made deterministic.

    ``COLUMNS``/``LINES`` are dropped so Rich uses its default width (80) exactly as it would
    when output is piped to a file or a log; ``PEERWATCH_AS_OF`` is dropped so only
    ``--as-of`` sets the date.
    """
    env = dict(os.environ if base is None else base)
    for name in ("COLUMNS", "LINES", "PEERWATCH_AS_OF", "PEERWATCH_MAIL"):
        env.pop(name, None)
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PEERWATCH, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the command succeeded cleanly; return its stdout."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc))


SNAPSHOT_TABLES = ("risk", "auditevent", "outboxmessage", "deadline", "contact", "service", "organisation")


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a refused command must not touch, read through a private
    connection (SQLModel names the audit_event and outbox_message tables ``auditevent``/``outboxmessage``)."""
    return snapshot_tables(url, SNAPSHOT_TABLES)
