"""OS accounts made for a test, and ``peerwatch`` run as them: the command line's peer
authentication (the effective uid's login name maps to a peerwatch account) tested for real.

Needs root (CI runs as root): ``useradd`` makes the accounts, ``userdel`` removes them. A
command runs as one of them with ``runuser -u NAME``, or, where that user may not reach the
interpreter (a Python installed under /root, mode 0700, as on some development machines),
with ``setpriv`` keeping only the capability to read and search directories
(``CAP_DAC_READ_SEARCH``): the effective uid, and so the login name peerwatch sees, is the
test user's either way, and writing still needs the test user's own permissions.

The database is shared between root (the test's own checks) and those users: a SQLite file
made by the test, mode 0666, in a world-writable directory under /tmp (SQLite gives the WAL
and shared-memory files the database file's mode; umask 0 while the box lives); or, with
``PEERWATCH_TEST_DATABASE``, a PostgreSQL schema.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.databases import drop, fresh_url, snapshot
from tests.support_cli import PEERWATCH, TIMEOUT

PYTHON = str(Path(PEERWATCH).with_name("python"))
# What a refused command must leave as it was: the items, the audit chain and the accounts.
WATCHED = (
    "risk",
    "auditevent",
    "outboxmessage",
    "deadline",
    "account",
    "role_grant",
    "permission_rule",
    "access_token",
)


def make_os_user(prefix: str) -> str:
    """A new OS account (no home directory, no login shell) with a name of its own."""
    name = f"pw{prefix}{secrets.token_hex(3)}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return name


def remove_os_user(name: str) -> None:
    subprocess.run(["userdel", name], check=False, capture_output=True, timeout=30)


def _runuser_works(name: str) -> bool:
    proc = subprocess.run(
        ["runuser", "-u", name, "--", PYTHON, "-c", "pass"], capture_output=True, timeout=TIMEOUT, check=False
    )
    return proc.returncode == 0


@dataclass
class Box:
    """A shared directory and database, and the way to run ``peerwatch`` as an OS user there."""

    root: Path
    url: str
    env: dict[str, str]
    runuser: dict[str, bool] = field(default_factory=dict)

    def command(self, user: str) -> list[str]:
        if self.runuser.setdefault(user, _runuser_works(user)):
            return ["runuser", "-u", user, "--"]
        return [
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        ]

    def run(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``peerwatch ARGS`` as the OS user ``user``, with exactly this box's environment."""
        env = [f"{k}={v}" for k, v in self.env.items()]
        return subprocess.run(
            [*self.command(user), "/usr/bin/env", "-i", *env, PEERWATCH, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=self.root,
            check=False,
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return snapshot(self.url, WATCHED)


def box() -> Iterator[Box]:
    """A box for one test (a generator for a fixture): made with umask 0, removed afterwards."""
    old = os.umask(0)
    root = Path(tempfile.mkdtemp(prefix="peerwatch-os-users-"))
    root.chmod(0o777)
    url = fresh_url(root)
    if url.startswith("sqlite:///"):  # made here, writable by all: SQLite gives its WAL files the same mode
        db_file = Path(url.removeprefix("sqlite:///"))
        db_file.touch()
        db_file.chmod(0o666)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(root),
        "PREFECT_HOME": str(root / "prefect"),
        "DO_NOT_TRACK": "1",
        "PEERWATCH_DATABASE_URL": url,
        "PEERWATCH_OUTBOX_DIR": str(root / "outbox"),
        "PEERWATCH_AUDIT_KEY": os.environ["PEERWATCH_AUDIT_KEY"],
    }
    try:
        yield Box(root, url, env)
    finally:
        drop(url)
        os.umask(old)
        shutil.rmtree(root, ignore_errors=True)
