"""Render a letter: ``templates/<name>.txt.j2`` (first line ``Subject: ...``) and ``<name>.html.j2``."""

from __future__ import annotations

import os
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, select_autoescape

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
