"""The dashboard site and the calendar feeds, written from the read models: what ``peerwatch
dashboard``, ``peerwatch feed`` and the ``views`` flow share. No Prefect here (the CLI imports
it): read the data (``states/views/``), hand it to the renderers (``notifications/``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import Session

from notifications import dashboard, ics
from states.views import feeds
from states.views.dashboard import network_page


def network_feed(session: Session, network_code: str, today: date, service_id: int | None = None) -> bytes:
    """One network's calendar feed (or one of its services'), as iCalendar."""
    return ics.render_feed(feeds.network_feed(session, network_code, today, service_id))


def write_feeds(session: Session, folder: Path, today: date, networks: set[str] | None = None) -> list[Path]:
    """Write every network's feed (or those whose code is in ``networks``) and its services' under ``folder``."""
    return ics.write_feeds(folder, feeds.all_feeds(session, today, networks))


def write_site(session: Session, today: date, out: Path, networks: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each network's page, the index linking them and their feeds; returns each page's figures."""
    pages = [network_page(session, today, code, name) for code, name in networks]
    return dashboard.write_site(today, out, pages, feeds.all_feeds(session, today, {code for code, _ in networks}))
