"""Calendar files (RFC 5545, the icalendar package) for the visit day, for the panel and the service."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

LONDON = ZoneInfo("Europe/London")


def visit_calendar(visit_ref: str, service: str, network: str, sessions: list[dict[str, Any]],
                   attendees: list[dict[str, str]], stamp: datetime) -> bytes:
    """One VEVENT per session of the visit day, times in Europe/London."""
    cal = Calendar()
    cal.add("prodid", "-//peerwatch//peer review visit//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"{visit_ref}: {service}")
    for n, s in enumerate(sessions, start=1):
        ev = Event()
        ev.add("uid", f"{visit_ref.lower()}-{n}@peerwatch.invalid")
        ev.add("dtstamp", stamp)
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
            ev.add("attendee", person, encode=0)
        cal.add_component(ev)
    cal.add_missing_timezones()  # RFC 5545: a VTIMEZONE for every TZID used
    return cal.to_ical()  # type: ignore[no-any-return]
