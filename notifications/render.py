"""Render a letter: ``templates/<name>.txt.j2`` (first line ``Subject: ...``) and ``<name>.html.j2``.

An outbox row holds its letter's context frozen as JSON (``states.engine.letters.freeze``, in
the transition's transaction); ``thaw`` gives it back, dates and times as such, and
``rendered`` turns a row into the letter it carries, as sent or as it will be sent.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, select_autoescape

from models.tables import OutboxMessage
from notifications.links import portal_context

TEMPLATES = Path(__file__).parent / "templates"


def _date(value: date | None) -> str:
    return value.strftime("%a %d %b %Y") if value else "not set"


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """Compiled templates kept beside the bank-holiday cache (``PEERWATCH_CACHE_DIR``, default
    ``var/cache``): a one-letter command skips compiling them. Jinja2 checks each entry against
    its template's source, so an edited template is compiled afresh."""
    folder = Path(os.environ.get("PEERWATCH_CACHE_DIR") or "var/cache") / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder))


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates do not change under a running process: no stat() per letter
        bytecode_cache=_bytecode_cache(),
    )
    env.filters["d"] = _date
    return env


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Return (subject, text, html) for a letter."""
    env = environment()
    text = env.get_template(f"{template}.txt.j2").render(**context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"template {template}.txt.j2 must start with a 'Subject: ' line")
    html = env.get_template(f"{template}.html.j2").render(**context)
    return first.removeprefix("Subject: ").strip(), body.lstrip("\n"), html


def render_layout(template: str, context: dict[str, Any]) -> str:
    """Render one of the layouts (``_digest.html.j2``): a whole document around letters already rendered."""
    return environment().get_template(template).render(**context)


def template_names() -> list[str]:
    return sorted(p.name.removesuffix(".txt.j2") for p in TEMPLATES.glob("*.txt.j2") if not p.name.startswith("_"))


# The tags ``states.engine.letters.freeze`` writes for dates and times (no letter's own data uses them).
_DATE, _DATETIME = "$peerwatch:date", "$peerwatch:datetime"


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _DATE in obj:
            return date.fromisoformat(obj[_DATE])
        if _DATETIME in obj:
            return datetime.fromisoformat(obj[_DATETIME])
    return obj


def thaw(frozen: str) -> dict[str, Any]:
    """A letter's frozen context, dates and times given back as such."""
    return json.loads(frozen, object_hook=_untag)


class Rendered(NamedTuple):
    subject: str
    body_text: str
    body_html: str


def rendered(message: OutboxMessage) -> Rendered:
    """The letter as sent (kept on the row), or as it will be sent (rendered now from its frozen
    context, with the item's portal page for a letter to a Trust: ``notifications.links``)."""
    if message.body_text is not None:
        return Rendered(message.subject or "", message.body_text, message.body_html or "")
    if message.context is None:
        raise ValueError(f"outbox message {message.id} has neither text nor context: nothing to render")
    context = thaw(message.context)
    context.update(portal_context(message.kind, message.item_id, message.to or [], message.cc or []))
    return Rendered(*render(message.template, context))
