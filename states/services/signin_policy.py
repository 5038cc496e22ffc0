"""The password policy, after the NCSC's guidance: length over complexity, and a deny-list.

- At least 12 characters (a default: ``PEERWATCH_PASSWORD_MIN_LENGTH``, 8 to 64), at most 256;
  counted after Unicode NFKC normalisation (what is hashed), so any script, spaces and
  emoji are welcome. No composition rules (no "one upper case, one digit").
- Refused if it is on the deny-list: ``states/passwords-denylist.txt`` (common passwords and
  keyboard patterns) and, if ``PEERWATCH_PASSWORD_DENYLIST`` names one, a file of the
  deployment's own, one a line; compared case-insensitively, also with spaces and leading or
  trailing digits and punctuation taken off ("Qwerty123!" is "qwerty").
- Refused if it is one or two characters repeated, or a run of the alphabet or digits.
- Refused if it is mostly context words: the person's name parts, their email's local part,
  "peerwatch", "nhs", "password": what is left without them must still be long enough.
Each refusal is one ``InvalidInput`` with one reason.
"""

from __future__ import annotations

import os
import re
import unicodedata
from functools import cache
from pathlib import Path

from states.errors import InvalidInput

MAX_LENGTH = 256
DENYLIST = Path(__file__).resolve().parent.parent / "passwords-denylist.txt"
CONTEXT_WORDS = ("peerwatch", "nhs", "password")
_EDGES = "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~£ "
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def normal(password: str) -> str:
    """The password as hashed and measured: Unicode NFKC (the same text typed on any device)."""
    return unicodedata.normalize("NFKC", password)


def min_length() -> int:
    """The minimum length in force (default 12, ``PEERWATCH_PASSWORD_MIN_LENGTH``)."""
    raw = os.environ.get("PEERWATCH_PASSWORD_MIN_LENGTH", "").strip()
    if not raw:
        return 12
    if not raw.isdigit() or not 8 <= int(raw) <= 64:
        raise InvalidInput(f"PEERWATCH_PASSWORD_MIN_LENGTH={raw!r}: give a whole number from 8 to 64")
    return int(raw)


@cache
def _read(path: str, _mtime: float) -> frozenset[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in (line.strip().lower() for line in lines) if w and not w.startswith("#"))


def denylist() -> frozenset[str]:
    """The deny-list in force: peerwatch's own and the deployment's (``PEERWATCH_PASSWORD_DENYLIST``)."""
    words = _read(str(DENYLIST), DENYLIST.stat().st_mtime)
    extra = os.environ.get("PEERWATCH_PASSWORD_DENYLIST", "").strip()
    if extra:
        path = Path(extra)
        try:
            words = words | _read(str(path), path.stat().st_mtime)
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(
                f"PEERWATCH_PASSWORD_DENYLIST={extra}: cannot read it ({e.__class__.__name__})"
            ) from None
    return words


def _forms(lowered: str) -> set[str]:
    """The password as compared with the deny-list: as typed, without spaces, without
    leading/trailing digits and punctuation."""
    squeezed = "".join(lowered.split())
    return {lowered, squeezed, lowered.strip(_EDGES), squeezed.strip(_EDGES), squeezed.rstrip(_EDGES)} - {""}


def _a_run(lowered: str) -> bool:
    """One or two characters repeated, or a stretch of the alphabet, digits or a keyboard row."""
    squeezed = "".join(lowered.split())
    if len(set(squeezed)) <= 2:
        return True
    for seq in _SEQUENCES:
        if squeezed in seq or squeezed in seq[::-1] or squeezed in seq * 3 or squeezed in seq[::-1] * 3:
            return True
    return False


def context_words(name: str | None, email: str | None) -> list[str]:
    """The words a password may not be made of: the person's, the email's and the service's."""
    words = list(CONTEXT_WORDS)
    parts = re.split(r"[\s.,'_\-+@]+", (name or "").lower())
    if email:
        local = email.lower().split("@", 1)[0]
        words.append(local)
        parts += re.split(r"[.,'_\-+]+", local)
    words += [p for p in parts if len(p) >= 3 and p not in {"dr", "mrs", "miss", "prof"}]
    return sorted(set(words), key=len, reverse=True)


def check_password_policy(password: str, *, name: str | None = None, email: str | None = None) -> None:
    """Refuse a password the policy does not accept, with one reason (``InvalidInput``)."""
    if not isinstance(password, str):
        raise InvalidInput("give the password as text")
    text = normal(password)
    least = min_length()
    if len(text) < least:
        raise InvalidInput(
            f"a password needs at least {least} characters (it has {len(text)}): a passphrase of three or four "
            "random words is long and easy to remember"
        )
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"a password may have at most {MAX_LENGTH} characters (it has {len(text)})")
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in text):
        raise InvalidInput("a password may not contain control characters (line breaks, tabs)")
    lowered = text.casefold()
    if _forms(lowered) & denylist() or _a_run(lowered):
        raise InvalidInput("that password is too common or too easy to guess: choose another (a passphrase)")
    rest = lowered
    for word in context_words(name, email):
        rest = rest.replace(word, "")
    if len(rest.strip(_EDGES)) < least:
        raise InvalidInput(
            "a password may not be mostly your name, your email or the service's name: choose a passphrase"
        )
