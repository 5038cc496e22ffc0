"""The one entry rule for text that can reach a mail header, a file name or an ICS line.

Names of people and organisations, network and service names, titles, subjects and email
addresses are one line of printable text: a control character (C0, DEL, C1, NEL U+0085) or a
Unicode line or paragraph separator (U+2028, U+2029) in one of them is refused with one clear
error, and nothing is stored. Email addresses are parsed strictly by ``email-validator`` (no
DNS lookup).

The rule is enforced where every entry point meets: the ORM flush (``before_flush``, installed
on import of this module, which ``states.engine`` does). The command line, the demo seed, the
spreadsheet imports and the flows all add or change these rows through a session, so one bad
value refuses its transaction wherever it came from. ``scan`` finds rows stored before the rule
(``peerwatch check``).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from datetime import date
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Date, DateTime, event, inspect, or_, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import SQLModel

import models  # noqa: F401  (every table registered, for scan)
from states.errors import InvalidInput

# table -> (one-line text columns, email columns). Every column here can end up in a mail
# header (a subject quotes the title and the service), a file name or an ICS line.
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "network": (("code", "name"), ()),
    "organisation": (("name",), ()),
    "service": (("name", "kind", "pathway"), ()),
    "contact": (("role", "name"), ("email",)),
    "reviewer": (("name", "discipline"), ("email",)),
    "risk": (("title", "standard_ref"), ()),
    "milestone": (("text",), ()),
    "complaint": (("complainant_name",), ("complainant_email",)),
    "programmephase": (("title",), ()),
    "submission": (("doc_type",), ()),
    "submissionfile": (("filename",), ()),
    "perinatalconcern": (("title",), ()),
    "standardset": (("name",), ()),
    "action_plan": (("title",), ()),
    "plan_action": (("owner_name", "owner_role"), ()),
    "upload": (("filename", "content_type"), ()),
    "recommendation": (("standard_ref",), ()),
}

SEPARATORS = {"\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR", "\u0085": "NEXT LINE"}
RESERVED_TLDS_ENV = "PEERWATCH_EMAIL_RESERVED_TLDS"
RESERVED_TLDS_DEFAULT = "invalid"


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F (NEL U+0085 among them).
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def problem(value: str) -> str | None:
    """What is wrong with ``value`` as one line of text, or None."""
    found = _BAD.search(value)
    if found is None:
        return None
    ch, at = found.group(), found.start() + 1
    if ch in SEPARATORS:
        return f"contains U+{ord(ch):04X} {SEPARATORS[ch]} at character {at}"
    assert unicodedata.category(ch) == "Cc"
    return f"contains the control character U+{ord(ch):04X} ({_control_name(ch)}) at character {at}"


def _control_name(ch: str) -> str:
    return {"\n": "line feed", "\r": "carriage return", "\t": "tab", "\x00": "NUL", "\x7f": "DEL"}.get(ch, "control")


MAX_PARAGRAPHS = 20_000  # characters of a free-text statement (a response, an inaccuracy, an appeal)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # text that reorders what follows


def clean_paragraphs(value: Any, what: str, limit: int = MAX_PARAGRAPHS) -> str:
    """A statement as people type it: line endings made ``\\n``, trimmed; 1 to ``limit``
    characters; no control character but a line break or a tab (no NUL), no bidirectional
    override; else ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    text = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = text.strip()
    if not text:
        raise InvalidInput(f"{what} is empty")
    if len(text) > limit:
        raise InvalidInput(f"{what} has {len(text):,} characters: at most {limit:,} are accepted (attach a file)")
    for ch in text:
        if ch not in "\n\t" and (unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI):
            raise InvalidInput(f"{what} contains a control character (U+{ord(ch):04X}): remove it and send again")
    return text


def check_text(value: Any, what: str) -> Any:
    """``value`` unchanged if it is one line of printable text (or None); else ``InvalidInput``."""
    if value is None or not isinstance(value, str):
        return value
    found = problem(value)
    if found:
        raise InvalidInput(
            f"{what} {_shown(value)} {found}: names, titles and addresses must be one line of "
            "printable text (no control characters or line separators); nothing was changed"
        )
    return value


@lru_cache(maxsize=4)
def _reserved(setting: str) -> frozenset[str]:
    return frozenset(t.strip().lower().lstrip(".") for t in setting.split(",") if t.strip())


def email_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an email address (strict syntax, no DNS), or None.

    Reserved top-level domains named in ``PEERWATCH_EMAIL_RESERVED_TLDS`` (default ``invalid``,
    RFC 2606: never delivered, used by the simulation and tests) are accepted as syntax."""
    from email_validator import EmailNotValidError, validate_email  # lazy: start-up time (about 60 ms)

    if not value or not value.strip():
        return "is empty"
    found = problem(value)
    if found:
        return found
    address = value
    local, at, domain = value.rpartition("@")
    tld = domain.rsplit(".", 1)[-1].lower()
    if at and "." in domain and tld in _reserved(os.environ.get(RESERVED_TLDS_ENV, RESERVED_TLDS_DEFAULT)):
        address = f"{local}@{domain[: -len(tld)]}example"  # the same syntax checks on a deliverable-looking name
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"is not a valid email address ({exc})"
    return None


def check_email(value: Any, what: str) -> Any:
    if value is None:
        return value
    found = email_problem(value) if isinstance(value, str) else "is not text"
    if found:
        raise InvalidInput(f"{what} {_shown(value)} {found}; nothing was changed")
    return value


def _shown(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def check_row(obj: Any, only: set[str] | None = None) -> None:
    """Check one ORM row's registered columns (``only``: just these, e.g. the changed ones)."""
    table = getattr(getattr(obj, "__table__", None), "name", None)
    spec = FIELDS.get(table) if table else None
    if spec is None:
        return
    texts, emails = spec
    for name in texts:
        if only is None or name in only:
            check_text(getattr(obj, name, None), f"{table} {name.replace('_', ' ')}")
    for name in emails:
        if only is None or name in only:
            check_email(getattr(obj, name, None), f"{table} {name.replace('_', ' ')}")


# The dates peerwatch records: a date outside them is a typing error (0001-01-01, 9999-12-31),
# refused with one line, and would otherwise cost every page that counts working days to it.
DATE_FLOOR, DATE_CEILING = date(2000, 1, 1), date(2100, 12, 31)


@cache
def _date_columns(table: Any) -> tuple[str, ...]:
    """The columns of a table that hold a calendar date (not a timestamp)."""
    return tuple(c.key for c in table.columns if isinstance(c.type, Date) and not isinstance(c.type, DateTime))


def check_dates(obj: Any, only: set[str] | None = None) -> None:
    """Refuse a date outside DATE_FLOOR..DATE_CEILING in one ORM row (``only``: just these columns)."""
    table = getattr(obj, "__table__", None)
    if table is None:
        return
    for name in _date_columns(table):
        if only is not None and name not in only:
            continue
        value = getattr(obj, name, None)
        if isinstance(value, date) and not DATE_FLOOR <= value <= DATE_CEILING:
            raise InvalidInput(
                f"{table.name} {name.replace('_', ' ')} {value.isoformat()}: give a date from "
                f"{DATE_FLOOR.isoformat()} to {DATE_CEILING.isoformat()}"
            )


def _before_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Every new row, and every changed column of a loaded row, before anything is written."""
    for obj in session.new:
        check_row(obj)
        check_dates(obj)
    for obj in session.dirty:
        table = getattr(obj, "__table__", None)
        if table is None or (table.name not in FIELDS and not _date_columns(table)):
            continue
        state = inspect(obj)
        changed = {a.key for a in state.attrs if a.history.has_changes()}
        if changed:
            check_row(obj, changed)
            check_dates(obj, changed)


if not event.contains(OrmSession, "before_flush", _before_flush):
    event.listen(OrmSession, "before_flush", _before_flush)


def scan(session: OrmSession, today: date | None = None, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Rows already stored with a value the rule refuses: table, id, field, problem, value.
    Contacts no longer in force on ``today`` (replaced or retired: kept as history) are skipped."""
    tables = SQLModel.metadata.tables
    for name, (texts, emails) in FIELDS.items():
        table = tables.get(name)
        if table is None:
            continue
        cols = [c for c in (*texts, *emails) if c in table.c]
        last = 0
        while True:
            q = select(table.c.id, *(table.c[c] for c in cols)).where(table.c.id > last)
            if today is not None and "valid_until" in table.c:
                q = q.where(or_(table.c.valid_until.is_(None), table.c.valid_until > today))
            rows = session.execute(q.order_by(table.c.id).limit(batch)).all()
            if not rows:
                break
            for row in rows:
                last = row[0]
                for c, value in zip(cols, row[1:]):
                    if not isinstance(value, str):
                        continue
                    found = email_problem(value) if c in emails else problem(value)
                    if found:
                        yield {"table": name, "id": row[0], "field": c, "problem": found, "value": ascii(value)}
