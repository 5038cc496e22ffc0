"""The Network Manager's dashboard as files: one self-contained HTML page per network, with its
calendar feeds beside it (issue 7 items 2 and 3). Written by ``peerwatch dashboard`` and by the
``views`` flow (through ``flows/site.py``), from data the read models give: each network's page
(``states/views/dashboard.py``) and its feeds (``states/views/feeds.py``, rendered by
``notifications/ics.py``). Nothing here reads the database.

Layout of the folder (``PEERWATCH_SITE_DIR``, default ``var/site``)::

    index.html                       links every network's page
    <network>/index.html             the page
    <network>/calendar.ics           every deadline, visit and phase of the network
    <network>/services/<id>.ics      one service's
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from notifications.ics import Feed, write_feeds
from notifications.render import TEMPLATES

# Rows listed per table on a page: a network with thousands of open items still gets a page
# that opens quickly; the headline figures and charts count every row.
ROWS_SHOWN = 500


def site_dir() -> Path:
    return Path(os.environ.get("PEERWATCH_SITE_DIR") or "var/site")


def write_site(today: date, out: Path, pages: list[dict[str, Any]], feeds: Sequence[Feed]) -> list[dict[str, Any]]:
    """Render each network's page (``states.views.dashboard.network_page``), the index linking
    them and the networks' calendar feeds; returns each page's figures."""
    env = _environment()
    page, index = env.get_template("dashboard.html.j2"), env.get_template("dashboard_index.html.j2")
    written = []
    for whole in pages:
        data = {**whole, "rows_shown": ROWS_SHOWN, "more": {}}
        for table in ("register", "overdue", "upcoming", "received_late"):  # the figures and charts count every row
            data["more"][table] = len(data[table]) > ROWS_SHOWN
            data[table] = data[table][:ROWS_SHOWN]
        code, name = data["network"]["code"], data["network"]["name"]
        target = out / code / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        charts = {k: data[k] for k in ("network", "as_of", "figures", "open_by_state", "age_buckets", "compliance")}
        target.write_text(page.render(d=data, charts=charts), encoding="utf-8")
        written.append({"network": code, "name": name, "page": str(target), **data["figures"]})
    out.mkdir(parents=True, exist_ok=True)
    training = any(p.get("training") for p in pages)
    (out / "index.html").write_text(
        index.render(as_of=today.isoformat(), pages=written, training=training), encoding="utf-8"
    )
    write_feeds(out, feeds)
    return written


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["day"] = lambda iso: date.fromisoformat(iso).strftime("%a %d %b %Y") if iso else ""
    env.filters["words"] = lambda text: (text or "").replace("_", " ")
    return env
