"""The audit chain's keys: each event's hash is an HMAC-SHA-256 under a key kept outside the
database, named by a key id so the key can be rotated.

Where the keys are (the first that is set):
- ``PEERWATCH_AUDIT_KEY``: ``ID:HEX[,ID:HEX...]``, for a secrets manager that sets the
  environment of the service;
- ``PEERWATCH_AUDIT_KEY_FILE`` (default ``var/audit.key``): one ``ID HEX`` line per key, the
  file readable by its owner only (mode 0600; a file others can read is refused).
The last key listed signs new events; every key listed verifies. ``peerwatch init`` makes the
file when there is none; ``peerwatch audit rotate-key`` appends a new key.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from states.errors import PeerwatchError

DEFAULT_KEY_FILE = Path("var") / "audit.key"


class NoAuditKey(PeerwatchError):
    """No key to sign or verify the audit chain with."""


@dataclass(frozen=True)
class Keys:
    keys: dict[str, bytes]
    current: str
    where: str

    def signing(self) -> tuple[str, bytes]:
        return self.current, self.keys[self.current]


def key_file() -> Path:
    return Path(os.environ.get("PEERWATCH_AUDIT_KEY_FILE") or DEFAULT_KEY_FILE)


def _parse(pairs: list[tuple[str, str]], where: str) -> Keys:
    keys: dict[str, bytes] = {}
    for kid, hexkey in pairs:
        try:
            secret = bytes.fromhex(hexkey)
        except ValueError:
            raise NoAuditKey(f"{where}: key {kid!r} is not hexadecimal") from None
        if len(secret) < 32 or not kid.isascii() or not kid.replace("-", "").isalnum():
            raise NoAuditKey(f"{where}: key {kid!r} must be a plain id and at least 32 bytes")
        keys[kid] = secret
    if not keys:
        raise NoAuditKey(f"{where} holds no key")
    return Keys(keys, list(keys)[-1], where)


_cache: dict[tuple[str, str, int, int, int], Keys] = {}


def load(required: bool = True) -> Keys | None:
    """The keys in force, or None (``required=False``) when none is configured."""
    env = os.environ.get("PEERWATCH_AUDIT_KEY", "")
    if env:
        hit = _cache.get(("env", env, 0, 0, 0))
        if hit is None:
            pairs = [tuple(p.strip().split(":", 1)) for p in env.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise NoAuditKey("PEERWATCH_AUDIT_KEY: expected ID:HEX[,ID:HEX...]")
            hit = _cache[("env", env, 0, 0, 0)] = _parse(pairs, "PEERWATCH_AUDIT_KEY")  # type: ignore[arg-type]
        return hit
    path = key_file()
    try:
        st = path.stat()
    except PermissionError:
        raise NoAuditKey(
            f"cannot reach the audit key {path} (permission denied): run peerwatch as the service account "
            "that holds it (through sudo, docs/security.md)"
        ) from None
    except OSError:
        if not required:
            return None
        raise NoAuditKey(
            f"no audit key at {path} (and PEERWATCH_AUDIT_KEY is not set): the audit chain cannot be "
            "signed; run peerwatch init, or point PEERWATCH_AUDIT_KEY_FILE at the key"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NoAuditKey(f"{path} can be read by others (mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it")
    stamp = ("file", str(path), st.st_mtime_ns, st.st_size, st.st_ino)  # a rotation appends: the size changes
    hit = _cache.get(stamp)
    if hit is None:
        try:
            lines = path.read_text().split("\n")
        except OSError as exc:
            raise NoAuditKey(f"cannot read the audit key {path}: {exc.strerror}") from None
        pairs = [tuple(line.split()) for line in lines if line.strip() and not line.startswith("#")]
        if any(len(p) != 2 for p in pairs):
            raise NoAuditKey(f"{path}: expected one 'ID HEX' line per key")
        hit = _cache[stamp] = _parse(pairs, str(path))  # type: ignore[arg-type]
    return hit


def new_key_line() -> str:
    kid = "k" + datetime.now(UTC).strftime("%Y%m%d") + "-" + secrets.token_hex(3)
    return f"{kid} {secrets.token_hex(32)}\n"


def create_key_file(path: Path | None = None) -> Path | None:
    """Make the key file (mode 0600) if there is none and no key is set in the environment;
    returns the path made, or None."""
    if os.environ.get("PEERWATCH_AUDIT_KEY"):
        return None
    path = path or key_file()
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# peerwatch audit keys: the last line signs; keep a copy in your secrets store\n")
        f.write(new_key_line())
    return path


def rotate(path: Path | None = None) -> str:
    """Append a new key to the key file; it signs from now on. Returns its id."""
    if os.environ.get("PEERWATCH_AUDIT_KEY"):
        raise NoAuditKey("the keys come from PEERWATCH_AUDIT_KEY: rotate them in your secrets store")
    path = path or key_file()
    load()  # refuses a missing or readable-by-others file
    line = new_key_line()
    text = path.read_text()
    with open(path, "a") as f:  # appended in place: the file keeps its mode, the old keys their lines
        f.write(line if not text or text.endswith("\n") else "\n" + line)
    return line.split()[0]
