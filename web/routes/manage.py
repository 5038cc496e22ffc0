"""What the management pages share (create, outbox, contacts, admin, dashboard, reports): a
database session per request, reading a posted form's typed fields, and the status and
one-line message a refusal is shown with. No rule here: the use cases refuse, the pages say why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from sqlmodel import Session

from models.types import MAX_ROW_ID
from states.clock import parse_date
from states.errors import InvalidInput, NotFound, PeerwatchError
from states.services import web_manage
from web.deps import Who, engine_of, who
from web.errors import one_line, status_of

MAX_INT = MAX_ROW_ID  # every number a form takes (ids, scores, days) fits a database integer
# The signed-in person, as a route's parameter: ``me: Me``.
Me = Annotated[Who, Depends(who)]


def network_who(request: Request) -> Who:
    """The signed-in person, refused (403) unless on the network's side (states.services.web_manage)."""
    me = who(request)
    web_manage.require_network_side(me.principal, "these pages")
    return me


StaffMe = Annotated[Who, Depends(network_who)]


def message(exc: PeerwatchError) -> str:
    """The refusal's reason on one line."""
    return one_line(str(exc))


@contextmanager
def db(request: Request) -> Iterator[Session]:
    """A session on the application's database; the caller commits what it changed."""
    with Session(engine_of(request), expire_on_commit=False) as s:
        yield s


def opt(fields: dict[str, str], name: str) -> str | None:
    """A text field, stripped; None when empty or absent."""
    value = (fields.get(name) or "").strip()
    return value or None


def need(fields: dict[str, str], name: str, label: str) -> str:
    """A text field that must be given."""
    value = opt(fields, name)
    if value is None:
        raise InvalidInput(f"enter {label}")
    return value


def opt_int(fields: dict[str, str], name: str, label: str) -> int | None:
    """A whole number field; None when empty; InvalidInput naming the field otherwise."""
    value = opt(fields, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{label}: enter a whole number (got {value[:40]!r})") from None
    if not -MAX_INT <= number <= MAX_INT:
        raise InvalidInput(f"{label}: {value[:40]} is out of range")
    return number


def need_int(fields: dict[str, str], name: str, label: str) -> int:
    value = opt_int(fields, name, label)
    if value is None:
        raise InvalidInput(f"choose {label}")
    return value


def opt_date(fields: dict[str, str], name: str, label: str) -> date | None:
    """A date field (YYYY-MM-DD, as a date input sends it); None when empty."""
    value = opt(fields, name)
    return parse_date(value, label) if value is not None else None


def need_date(fields: dict[str, str], name: str, label: str) -> date:
    value = opt_date(fields, name, label)
    if value is None:
        raise InvalidInput(f"enter {label} (YYYY-MM-DD)")
    return value


def flag(fields: dict[str, str], name: str) -> bool:
    """A checkbox: ticked or not."""
    return (fields.get(name) or "").strip().lower() in ("yes", "on", "true", "1")


def errors_of(exc: PeerwatchError, field: str | None = None) -> list[dict[str, Any]]:
    """The error summary's rows for one refusal."""
    return [{"text": message(exc), "field": field}]


def summary_of(errors: Mapping[str, str] | None, problem: str | None = None) -> list[dict[str, str]]:
    """The error summary's rows: one problem about no one field first (if any), then each field's error."""
    summary = [{"field": k, "text": v} for k, v in (errors or {}).items()]
    if problem:
        summary.insert(0, {"field": "", "text": problem})
    return summary


_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,126}")


def download_type(content_type: str | None) -> str:
    """A stored file's media type as sent with it: a plain ``type/subtype``, else a byte stream."""
    value = (content_type or "").strip().lower()
    return value if _TYPE.fullmatch(value) else "application/octet-stream"


def disposition(filename: str | None, fallback: str = "attachment") -> str:
    """``Content-Disposition`` for a download: the name quoted safely (no CR, LF, quote or
    backslash reaches the header; RFC 6266's ``filename*`` carries the name in full, in UTF-8)."""
    name = "".join(c for c in str(filename or "") if c.isprintable() and c not in '\\/"\r\n').strip(" .")
    plain = "".join(c if c.isascii() and (c.isalnum() or c in " ._-()") else "_" for c in name).strip() or fallback
    return f"attachment; filename=\"{plain[:150]}\"; filename*=UTF-8''{quote(name[:150] or fallback, safe='')}"


def path_id(value: str) -> int:
    """An id from the path (kept a string in the route so any text is a 404, never a 422)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound("not found")
    return int(value)


__all__ = ["Me", "db", "disposition", "download_type", "errors_of", "flag", "message", "need", "need_date", "need_int", "opt", "opt_date", "opt_int",
           "path_id", "status_of", "summary_of"]  # fmt: skip
