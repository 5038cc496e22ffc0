"""Calendar files (RFC 5545, the icalendar package): the visit day for the panel and the service,
and the calendar feeds of every network and service, rendered from data the read models give
(``states/views/feeds.py``: each feed's events, in words); nothing here reads the database.

Every feed has the Europe/London VTIMEZONE, so a network with nothing pending is still a valid
calendar (RFC 5545 forbids an empty VCALENDAR), and each file is replaced atomically, so a
subscriber polling it never reads half a calendar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress, vText

from notifications.transports import DEFAULT_SENDER

LONDON = ZoneInfo("Europe/London")
UID_DOMAIN = "peerwatch"


class FeedEvent(Protocol):
    """An event as ``states.views.feeds.FeedEvent`` describes it."""

    @property
    def key(self) -> tuple[str, int]: ...
    @property
    def sequence(self) -> int: ...
    @property
    def start(self) -> date | datetime: ...
    @property
    def end(self) -> date | datetime: ...
    @property
    def summary(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def status(self) -> str: ...
    @property
    def location(self) -> str | None: ...


class Feed(Protocol):
    """A calendar as ``states.views.feeds.Feed`` describes it."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> tuple[str, ...]: ...
    @property
    def installation(self) -> str: ...
    @property
    def stamp(self) -> datetime: ...
    @property
    def events(self) -> list[Any]: ...


def visit_calendar(
    visit_ref: str,
    service: str,
    network: str,
    sessions: list[dict[str, Any]],
    attendees: list[dict[str, str]],
    stamp: datetime,
    *,
    installation: str | None = None,
    organizer: dict[str, str] | None = None,
    sequence: int = 0,
) -> bytes:
    """One VEVENT per session of the visit day, times in Europe/London, with the same VTIMEZONE
    as the feeds. ``organizer`` (name, email) is who sends the invitation: the network office
    (default: the network, at PEERWATCH_MAIL_FROM's address). ``installation`` (the stored
    installation id) makes the UIDs unique between installations; ``sequence`` is the visit's
    version, so a re-sent agenda replaces the older one."""
    cal = Calendar()
    cal.add("prodid", "-//peerwatch//peer review visit//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"{visit_ref}: {service}")
    cal.add("x-wr-timezone", "Europe/London")
    cal.add_component(london_vtimezone())  # RFC 5545: every TZID used is defined; the feeds' block
    who = organizer or {"name": network, "email": _mail_from()}
    for n, s in enumerate(sessions, start=1):
        ev = Event()
        ref = visit_ref.lower()
        ev.add("uid", uid(f"{ref}-{n}", None, installation) if installation else f"{ref}-{n}@{UID_DOMAIN}.invalid")
        ev.add("dtstamp", stamp)
        ev.add("sequence", sequence)
        boss = vCalAddress(f"mailto:{who['email']}")
        boss.params["cn"] = vText(who["name"])
        ev.add("organizer", boss, encode=False)
        ev.add("dtstart", s["start"].replace(tzinfo=LONDON))
        ev.add("dtend", s["end"].replace(tzinfo=LONDON))
        ev.add("summary", f"{s['title']} - peer review of {service}")
        ev.add("description", f"{network} peer review visit {visit_ref}. Attending: {s['who']}.")
        ev["location"] = vText(service)
        for a in attendees:
            if s["who"] == "reviewers only" and a.get("group") != "panel":
                continue
            person = vCalAddress(f"mailto:{a['email']}")
            person.params["cn"] = vText(a["name"])
            person.params["role"] = vText("REQ-PARTICIPANT")
            ev.add("attendee", person, encode=False)
        cal.add_component(ev)
    return cal.to_ical()


def uid(prefix: str, row_id: int | None, installation: str) -> str:
    """A UID unique in the world and stable for the row: ``deadline-12-<installation id>@peerwatch``."""
    return f"{prefix}{'' if row_id is None else f'-{row_id}'}-{installation}@{UID_DOMAIN}"


def _mail_from() -> str:
    return parseaddr(os.environ.get("PEERWATCH_MAIL_FROM", DEFAULT_SENDER))[1] or "peerwatch@network.nhs.invalid"


def _calendar(name: str) -> Calendar:
    """The calendar properties Outlook and Google need to subscribe to a published feed."""
    cal = Calendar()
    cal.add("prodid", "-//peerwatch//network calendar feed//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", "Europe/London")
    cal.add("x-published-ttl", "PT1H")  # how often a subscriber should fetch it again
    return cal


def _event(ev: FeedEvent, installation: str, stamp: datetime) -> Event:
    """One VEVENT: all day (DTSTART;VALUE=DATE, DTEND the day after its last day, free time),
    or timed in Europe/London."""
    out = Event()
    out.add("uid", uid(ev.key[0], ev.key[1], installation))
    out.add("dtstamp", stamp)
    out.add("sequence", ev.sequence)
    if isinstance(ev.start, datetime) and isinstance(ev.end, datetime):
        out.add("dtstart", ev.start.replace(tzinfo=LONDON))
        out.add("dtend", ev.end.replace(tzinfo=LONDON))
    else:
        out.add("dtstart", ev.start)
        out.add("dtend", ev.end + timedelta(days=1))
        out.add("transp", "TRANSPARENT")
    out.add("summary", ev.summary)
    out.add("description", ev.description)
    if ev.location is not None:
        out["location"] = vText(ev.location)
    out.add("categories", list(ev.categories))
    out.add("status", ev.status)
    return out


def render_feed(feed: Feed) -> bytes:
    """The feed as an iCalendar file (CRLF line endings)."""
    cal = _calendar(feed.name)
    # Always: it defines the TZID the timed events use, and it keeps a feed with nothing in it
    # a valid calendar (RFC 5545: at least one component; icalendar's validate() refuses none).
    cal.add_component(london_vtimezone())
    for ev in feed.events:
        cal.add_component(_event(ev, feed.installation, feed.stamp))
    return cal.to_ical()


def write_feeds(folder: Path, feeds: Sequence[Feed]) -> list[Path]:
    """Write each feed under ``folder`` at its path (<network>/calendar.ics,
    <network>/services/<id>.ics), each file replaced atomically."""
    return [_replace(folder.joinpath(*feed.path), render_feed(feed)) for feed in feeds]


def london_vtimezone() -> Timezone:
    """Europe/London as two yearly rules (BST from 01:00 UTC on the last Sunday of March to
    01:00 UTC on the last Sunday of October, the UK's rule since 1996): the compact
    RRULE form Outlook and Google write themselves, rather than a list of dated transitions
    that ends in 2038. tests/test_feed_format.py checks it against the tz database."""
    tz = Timezone()
    tz.add("tzid", "Europe/London")
    for part, name, start, offset_from, offset_to, month in (
        (TimezoneDaylight(), "BST", datetime(1996, 3, 31, 1), timedelta(0), timedelta(hours=1), 3),
        (TimezoneStandard(), "GMT", datetime(1996, 10, 27, 2), timedelta(hours=1), timedelta(0), 10),
    ):
        part.add("tzname", name)
        part.add("dtstart", start)
        part.add("tzoffsetfrom", offset_from)
        part.add("tzoffsetto", offset_to)
        part.add("rrule", {"freq": "yearly", "bymonth": month, "byday": "-1su"})
        tz.add_component(part)
    return tz


def _replace(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return path
