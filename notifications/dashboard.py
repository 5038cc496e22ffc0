"""The Network Manager's dashboard as files: one self-contained HTML page per network, with its
calendar feeds beside it (issue 7 items 2 and 3). Written by ``peerwatch dashboard`` and by the
``views`` flow; the figures come from ``states/views/register.py``, the feeds from ``notifications/ics.py``.

Layout of the folder (``PEERWATCH_SITE_DIR``, default ``var/site``)::

    index.html                       links every network's page
    <network>/index.html             the page
    <network>/calendar.ics           every deadline, visit and phase of the network
    <network>/services/<id>.ics      one service's
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from notifications.render import TEMPLATES

# Rows listed per table on a page: a network with thousands of open items still gets a page
# that opens quickly; the headline figures and charts count every row.
ROWS_SHOWN = 500


def site_dir() -> Path:
    return Path(os.environ.get("PEERWATCH_SITE_DIR") or "var/site")


def write_site(session: Any, today: date, out: Path, networks: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Render each network's page, its calendar feeds and the index linking them; returns each page's figures."""
    from notifications.ics import write_feeds
    from states.machines.lateness import received_late
    from states.views.register import AGE_BUCKETS, UPCOMING_WORKING_DAYS, summary

    env = _environment()
    page, index = env.get_template("dashboard.html.j2"), env.get_template("dashboard_index.html.j2")
    written = []
    for code, name in networks:
        data = summary(session, today, code)
        data["received_late"] = received_late(
            session, code, since=today - timedelta(days=365)
        )  # as recorded at receipt
        data.update(
            {
                "network": {"code": code, "name": name},
                "age_buckets": [b for b, _ in AGE_BUCKETS],
                "working_days": UPCOMING_WORKING_DAYS,
                "rows_shown": ROWS_SHOWN,
                "more": {},
            }
        )
        for table in ("register", "overdue", "upcoming", "received_late"):  # the figures and charts count every row
            data["more"][table] = len(data[table]) > ROWS_SHOWN
            data[table] = data[table][:ROWS_SHOWN]
        target = out / code / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        charts = {k: data[k] for k in ("network", "as_of", "figures", "open_by_state", "age_buckets", "compliance")}
        target.write_text(page.render(d=data, charts=charts), encoding="utf-8")
        written.append({"network": code, "name": name, "page": str(target), **data["figures"]})
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(index.render(as_of=today.isoformat(), pages=written), encoding="utf-8")
    codes = {code for code, _ in networks}
    write_feeds(session, out, today, networks=codes)
    return written


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

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
