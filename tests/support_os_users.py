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
import stat
import subprocess
import sys
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

    def run_plain(
        self, user: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``peerwatch ARGS`` as ``user`` holding no capability at all, so that what the user may
        not read stays unread (``run``'s setpriv keeps CAP_DAC_READ_SEARCH, which reads every
        file): ``runuser``, or, where the interpreter is out of the user's reach, ``runuser`` in
        a private mount namespace that lays open only the interpreter's own prefix (see
        ``_opened_interpreter``). ``env`` replaces the box's environment; ``cwd`` the box root."""
        environ = [f"{k}={v}" for k, v in (self.env if env is None else env).items()]
        command = ["runuser", "-u", user, "--", "/usr/bin/env", "-i", *environ, PEERWATCH, *args]
        if not self.runuser.setdefault(user, _runuser_works(user)):
            command = _opened_interpreter(self.root, command)
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd or self.root, check=False
        )
        if proc.returncode != 0 and proc.stderr.startswith(("unshare:", "mount:")):
            raise RuntimeError(
                f"cannot run as {user} without capabilities: runuser cannot reach the interpreter "
                f"({sys.base_prefix}) and a private mount namespace is refused: {proc.stderr.strip()}"
            )
        return proc


def _closed_ancestor(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that others may not search (as /root, 0700)."""
    for p in [*reversed(path.parents), path]:
        if p != Path("/") and not p.stat().st_mode & stat.S_IXOTH:
            return p
    return None


def _opened_interpreter(root: Path, command: list[str]) -> list[str]:
    """``command`` in a private mount namespace where the interpreter's prefix (under a
    directory others may not search) is reachable: a tmpfs (0755) over that directory, with
    only the prefix bound back into it. Nothing else of that directory is visible, and the
    namespace ends with the command; the host's mounts are untouched."""
    base = Path(sys.base_prefix).resolve()
    closed = _closed_ancestor(base)
    if closed is None:
        return command
    stage = root / ".interpreter"
    stage.mkdir(exist_ok=True)
    script = (
        'umask 022 && mount --bind "$1" "$2" && mount -t tmpfs -o mode=0755 tmpfs "$3" '
        '&& mkdir -p "$1" && mount --bind "$2" "$1" && shift 3 && exec "$@"'
    )
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", script, "sh", str(base), str(stage), str(closed), *command,
    ]  # fmt: skip


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
