"""Calendar files (RFC 5545, the icalendar package): the visit day for the panel and the service,
and the calendar feeds of every network and service (deadlines, visits, programme meetings)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress, vText
from sqlmodel import Session, col, select

from models.cycle import ProgrammePhase
from models.installation import installation_id
from models.tables import OUTSTANDING, Deadline, DeadlineStatus, Network, Service, Visit
from states.clock import local_date
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec
from states.roles import CONTACT_ROLES

LONDON = ZoneInfo("Europe/London")


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
        ev.add("organizer", boss, encode=0)
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
    return cal.to_ical()  # type: ignore[no-any-return]


# ------------------------------------------------------------------ the network's calendar feed
#
# One feed per network and one per service (issue 7 item 3), regenerated from the database:
# a calendar program that subscribes to the file (Outlook "Add calendar > From internet")
# re-reads it and updates each event by UID. A deadline is one all-day event on its due date;
# when it closes (its item moved on) it stays in the feed as STATUS:CANCELLED, with a raised
# SEQUENCE, for PEERWATCH_FEED_CANCELLED_DAYS (issue 12 item 9), so a copy imported once (not
# subscribed) is cancelled too; the deadline that replaced it is a new row, so a new event
# with a new UID. Every UID carries the installation id (models/installation.py), so two
# installations never share one. Every feed has the Europe/London VTIMEZONE, so a network with
# nothing pending is still a valid calendar (RFC 5545 forbids an empty VCALENDAR). A
# visit is one timed event from the first session to the last (the sessions are listed in
# its description); a cancelled visit stays as STATUS:CANCELLED so a copy imported once can
# be updated too. Programme phases (the network's meetings and milestones, e.g. the
# quarterly clinical group update) are all-day events over their window. SEQUENCE is the
# item's version, which every transition (a clock stop included) increments.

UID_DOMAIN = "peerwatch"
CANCELLED_DAYS = 30  # default of PEERWATCH_FEED_CANCELLED_DAYS: closed deadlines stay this long as CANCELLED


def cancelled_days() -> int:
    """How many days a closed deadline stays in the feeds as CANCELLED (local policy, default 30)."""
    raw = os.environ.get("PEERWATCH_FEED_CANCELLED_DAYS")
    if raw is None:
        return CANCELLED_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise InvalidInput(f"PEERWATCH_FEED_CANCELLED_DAYS={raw!r} is not a whole number of days (0 or more)")
    return days


def uid(prefix: str, row_id: int | None, installation: str) -> str:
    """A UID unique in the world and stable for the row: ``deadline-12-<installation id>@peerwatch``."""
    return f"{prefix}{'' if row_id is None else f'-{row_id}'}-{installation}@{UID_DOMAIN}"


def _mail_from() -> str:
    from email.utils import parseaddr

    from notifications.transports import DEFAULT_SENDER

    return parseaddr(os.environ.get("PEERWATCH_MAIL_FROM", DEFAULT_SENDER))[1] or "peerwatch@network.nhs.invalid"


PENDING = tuple(s.value for s in OUTSTANDING)  # still to be met (passed ones show as OVERDUE)
# Item references as the letters print them (each kind's letter_context).
REF_PREFIX = {"mssp": "MSSP", "perinatal": "PQS", "surveillance": "QNT", "selfassessment": "SA"}
CONFIRMED_VISIT = ("service_notified", "prepared", "held", "feedback_given", "closed")


@dataclass(frozen=True)
class _Place:
    """Where an item sits: its network and, for a service's own items, the service."""

    network_id: int
    service_id: int | None


@dataclass
class _FeedData:
    """Everything the feeds need, read with a handful of queries for all networks at once, and
    grouped by network and by service so that writing every feed stays linear."""

    networks: dict[int, Network]
    services: dict[int, Service]
    installation: str
    # (network id, service id or None for a network-level item) -> [(deadline, its item)]
    deadlines: dict[tuple[int, int | None], list[tuple[Deadline, Any]]] = field(default_factory=dict)
    visits: dict[tuple[int, int], list[Visit]] = field(default_factory=dict)
    phases: dict[int, list[ProgrammePhase]] = field(default_factory=dict)
    # closed deadlines still published as CANCELLED, keyed like ``deadlines``
    closed: dict[tuple[int, int | None], list[tuple[Deadline, Any]]] = field(default_factory=dict)

    def services_of(self, network_id: int) -> list[int | None]:
        """The keys of a network's feed: its own level and each of its services."""
        return [None, *(s.id for s in self.services.values() if s.network_id == network_id)]


def ref_of(kind: str, row: Any) -> str:
    """The reference people see in letters: SC-12, Visit-3, PQS-4..."""
    if kind == "risk":
        return f"{row.level}-{row.id}"
    return f"{REF_PREFIX.get(kind, kind.capitalize())}-{row.id}"


def _place(row: Any, services: dict[int, Service], first_service_of: dict[int, int]) -> _Place | None:
    """An item's network and service, from whichever of service, network or Trust it names.

    A Trust-level item (an MSSP case with no service) belongs to the network of the Trust's
    first service, as its letters do (states/machines/mssp.py)."""
    service_id = getattr(row, "service_id", None)
    if service_id is not None and service_id in services:
        return _Place(services[service_id].network_id, service_id)
    network_id = getattr(row, "network_id", None)
    if network_id is not None:
        return _Place(network_id, None)
    first = first_service_of.get(getattr(row, "organisation_id", None) or -1)
    return _Place(services[first].network_id, None) if first is not None else None


def _load(session: Session, network_ids: list[int] | None = None, today: date | None = None) -> _FeedData:
    """One query each for networks, services, pending deadlines, dated visits and phases, plus
    one IN query per kind (per 900 ids) for the items the deadlines belong to; and, for the
    closed deadlines still published as CANCELLED, one query for their kinds and two per kind.

    A closed deadline is published while its item changed within the period: the item's last
    change is at or after the transition that closed the deadline, so every closed deadline is
    published as CANCELLED for at least the period after it closed."""
    iid = installation_id(session)
    net_q = select(Network).order_by(col(Network.id))
    if network_ids is not None:
        net_q = net_q.where(col(Network.id).in_(network_ids))
    networks = {n.id: n for n in session.exec(net_q)}
    services = {s.id: s for s in session.exec(select(Service).order_by(col(Service.id)))}
    first_service_of: dict[int, int] = {}
    for s in services.values():
        first_service_of.setdefault(s.organisation_id, s.id)  # type: ignore[arg-type]

    pending = list(
        session.exec(
            select(Deadline).where(col(Deadline.status).in_(PENDING)).order_by(col(Deadline.due_on), col(Deadline.id))
        )
    )
    by_kind: dict[str, set[int]] = {}
    for d in pending:
        by_kind.setdefault(d.kind, set()).add(d.item_id)
    items: dict[tuple[str, int], Any] = {}
    for kind, ids in by_kind.items():
        model = get_spec(kind).model
        wanted = sorted(ids)
        for start in range(0, len(wanted), 900):
            for row in session.exec(select(model).where(col(model.id).in_(wanted[start : start + 900]))):
                items[(kind, row.id)] = row
    data = _FeedData(networks, services, iid)
    for d in pending:
        row = items.get((d.kind, d.item_id))
        where = _place(row, services, first_service_of) if row is not None else None
        if where is not None and where.network_id in networks:
            data.deadlines.setdefault((where.network_id, where.service_id), []).append((d, row))
    if today is not None:
        for d, row in _recently_closed(session, today):
            where = _place(row, services, first_service_of)
            if where is not None and where.network_id in networks:
                data.closed.setdefault((where.network_id, where.service_id), []).append((d, row))
    for v in session.exec(
        select(Visit).where(col(Visit.visit_date).is_not(None)).order_by(col(Visit.visit_date), col(Visit.id))
    ):
        net_id = services[v.service_id].network_id
        if net_id in networks:
            data.visits.setdefault((net_id, v.service_id), []).append(v)
    for p in session.exec(select(ProgrammePhase).order_by(col(ProgrammePhase.opens_on), col(ProgrammePhase.id))):
        if p.network_id in networks:
            data.phases.setdefault(p.network_id, []).append(p)
    return data


def _recently_closed(session: Session, today: date) -> list[tuple[Deadline, Any]]:
    """Closed deadlines whose item last changed within the period, with their items."""
    days = cancelled_days()
    if days == 0:
        return []
    since = datetime.combine(today - timedelta(days=days), time(0), LONDON).astimezone(UTC)
    closed = DeadlineStatus.CLOSED.value
    kinds = sorted(session.exec(select(Deadline.kind).where(Deadline.status == closed).distinct()))
    out: list[tuple[Deadline, Any]] = []
    for kind in kinds:
        model = get_spec(kind).model
        recent = {row.id: row for row in session.exec(select(model).where(col(model.updated_at) >= since))}
        wanted = sorted(recent)
        for start in range(0, len(wanted), 900):
            for d in session.exec(
                select(Deadline).where(
                    Deadline.status == closed,
                    Deadline.kind == kind,
                    col(Deadline.item_id).in_(wanted[start : start + 900]),
                )
            ):
                out.append((d, recent[d.item_id]))
    out.sort(key=lambda e: (e[0].due_on, e[0].id))
    return out


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


def _all_day(uid: str, first: date, last: date, stamp: datetime, sequence: int) -> Event:
    """An all-day event (DTSTART;VALUE=DATE, DTEND the day after its last day), free time."""
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", stamp)
    ev.add("sequence", sequence)
    ev.add("dtstart", first)
    ev.add("dtend", last + timedelta(days=1))
    ev.add("transp", "TRANSPARENT")
    return ev


def _deadline_event(
    d: Deadline, row: Any, where: tuple[int, int | None], data: _FeedData, today: date, stamp: datetime
) -> Event:
    """All day on the due date; the summary says what is due from whom, the description how to act.

    A closed deadline is the same event (same UID) as STATUS:CANCELLED: its SEQUENCE, the item's
    version, is above any it was published with, since closing it was a transition."""
    spec = get_spec(d.kind)
    rule = spec.deadline_rules.get(d.name)
    owner = CONTACT_ROLES.get(rule.owner, rule.owner) if rule else "network office"
    what = d.name.replace("_", " ")
    ref = ref_of(d.kind, row)
    network_id, service_id = where
    about = data.services[service_id].name if service_id else data.networks[network_id].code
    closed = d.status == DeadlineStatus.CLOSED
    flag = (
        "CANCELLED: "
        if closed
        else "PAUSED: "
        if d.status == DeadlineStatus.PAUSED
        else "OVERDUE: "
        if d.due_on < today
        else ""
    )
    ev = _all_day(uid("deadline", d.id, data.installation), d.due_on, d.due_on, stamp, row.version)
    ev.add("summary", f"{flag}{d.kind} {ref} {what} due - {owner} ({about})")
    lines = [
        f"{ref} ({d.kind}, {row.state}) at {about}: {getattr(row, 'title', None) or spec.describe}.",
        f"Deadline: {what}, due {d.due_on:%a %d %b %Y}. {owner} must act: {rule.step if rule else what}.",
    ]
    if closed:
        lines.append(f"No longer due: {ref} moved on (now {row.state}); this deadline is closed.")
    elif d.status == DeadlineStatus.PAUSED:
        lines.append(f"The clock is stopped: {d.paused_remaining} working day(s) will remain when it restarts.")
    elif rule and rule.on_due:
        lines.append(f"If it passes, peerwatch fires {rule.on_due}.")
    if spec.next_step.get(row.state):
        lines.append(f"Next step: {spec.next_step[row.state]}.")
    lines.append(f"Details: peerwatch {d.kind} show {row.id}")
    ev.add("description", "\n".join(lines))
    ev.add("categories", [d.kind])
    ev.add("status", "CANCELLED" if closed else "TENTATIVE" if d.status == DeadlineStatus.PAUSED else "CONFIRMED")
    return ev


def _visit_event(v: Visit, data: _FeedData, stamp: datetime) -> Event:
    from states.machines.visit import agenda

    svc = data.services[v.service_id]
    sessions = agenda(v)
    ev = Event()
    ev.add("uid", uid("visit", v.id, data.installation))
    ev.add("dtstamp", stamp)
    ev.add("sequence", v.version)
    ev.add("dtstart", sessions[0]["start"].replace(tzinfo=LONDON))
    ev.add("dtend", sessions[-1]["end"].replace(tzinfo=LONDON))
    mode = "virtual" if v.mode == "virtual" else "in person"
    ev.add(
        "summary",
        f"{'CANCELLED: ' if v.state == 'cancelled' else ''}Peer review visit Visit-{v.id}: {svc.name} ({mode})",
    )
    program = [f"{s['start']:%H:%M}-{s['end']:%H:%M} {s['title']} ({s['who']})" for s in sessions]
    ev.add(
        "description",
        "\n".join([f"Visit-{v.id} ({v.state}), {mode}.", *program, f"Details: peerwatch visit show {v.id}"]),
    )
    ev["location"] = vText("Virtual" if v.mode == "virtual" else svc.name)
    ev.add("categories", ["visit"])
    ev.add(
        "status", "CANCELLED" if v.state == "cancelled" else "CONFIRMED" if v.state in CONFIRMED_VISIT else "TENTATIVE"
    )
    return ev


def _phase_event(p: ProgrammePhase, data: _FeedData, stamp: datetime) -> Event:
    net = data.networks[p.network_id]
    year = f"{p.programme_year}-{str(p.programme_year + 1)[2:]}"
    ev = _all_day(uid("phase", p.id, data.installation), p.opens_on, p.due_on, stamp, p.version)
    ev.add("summary", f"{net.code} programme {year} {p.quarter}: {p.title}")
    ev.add(
        "description",
        f"Phase-{p.id} ({p.state}) of the {net.name} programme year {year}, cycle year {p.cycle_year}: "
        f"{p.opens_on:%d %b %Y} to {p.due_on:%d %b %Y}.\nDetails: peerwatch phase show {p.id}",
    )
    ev.add("categories", ["phase"])
    ev.add("status", "CONFIRMED")
    return ev


def _stamp(today: date) -> tuple[date, datetime]:
    """A clock's instant, or a bare date (stamped at its start in London): (local date, DTSTAMP)."""
    if isinstance(today, datetime):
        return local_date(today), today.astimezone(UTC)
    return today, datetime.combine(today, time(0), LONDON).astimezone(UTC)


def _feed(data: _FeedData, network_id: int, today: date, service_id: int | None) -> bytes:
    """The feed of one network (service_id None) or of one of its services.

    A service's feed has that service's own deadlines and visits and the network's programme
    phases (its meetings concern every service), but not the network-level deadlines
    (complaints without a service, phases, Trust submissions): those are the network's work."""
    day, stamp = _stamp(today)
    net = data.networks[network_id]
    name = (
        f"peerwatch {net.code}: {data.services[service_id].name}" if service_id else f"peerwatch {net.code}: {net.name}"
    )
    cal = _calendar(name)
    events: list[tuple[date, str, Event]] = []
    for key in data.services_of(network_id) if service_id is None else [service_id]:
        for d, row in [*data.deadlines.get((network_id, key), []), *data.closed.get((network_id, key), [])]:
            events.append(
                (d.due_on, f"deadline-{d.id:012d}", _deadline_event(d, row, (network_id, key), data, day, stamp))
            )
        for v in data.visits.get((network_id, key), []) if key is not None else []:
            events.append((v.visit_date, f"visit-{v.id:012d}", _visit_event(v, data, stamp)))  # type: ignore[arg-type]
    for p in data.phases.get(network_id, []):
        events.append((p.opens_on, f"phase-{p.id:012d}", _phase_event(p, data, stamp)))
    # Always: it defines the TZID the timed events use, and it keeps a feed with nothing in it
    # a valid calendar (RFC 5545: at least one component; icalendar's validate() refuses none).
    cal.add_component(london_vtimezone())
    for _, _, ev in sorted(events, key=lambda e: (e[0], e[1])):
        cal.add_component(ev)
    return cal.to_ical()  # type: ignore[no-any-return]


def london_vtimezone() -> Timezone:
    """Europe/London as two yearly rules (BST from 01:00 UTC on the last Sunday of March to
    01:00 UTC on the last Sunday of October, the UK's rule since 1996): the compact
    RRULE form Outlook and Google write themselves, rather than a list of dated transitions
    that ends in 2038. tests/test_feeds.py checks it against the tz database."""
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


def network_feed(session: Session, network_code: str, today: date, service_id: int | None = None) -> bytes:
    """The network's calendar (or one of its services'): pending deadlines, visits and meetings.

    ``today`` is a date or, to stamp events with the instant, a clock's ``now()``."""
    net = session.exec(select(Network).where(Network.code == network_code)).first()
    if net is None:
        raise NotFound(f"network {network_code!r} not found (peerwatch network list)")
    if service_id is not None:
        svc = session.get(Service, service_id)
        if svc is None or svc.network_id != net.id:
            raise NotFound(f"service {service_id} not found in network {network_code} (peerwatch service list)")
    return _feed(_load(session, [net.id], _stamp(today)[0]), net.id, today, service_id)  # type: ignore[list-item,arg-type]


def write_feeds(session: Session, folder: Path, today: date, networks: set[str] | None = None) -> list[Path]:
    """Write <folder>/<network>/calendar.ics and <folder>/<network>/services/<id>.ics for every
    network (or those whose code is in ``networks``) and its services, from one read of the
    database. Each file is replaced atomically, so a subscriber polling it never reads half a
    calendar."""
    data = _load(session, None, _stamp(today)[0])
    written = []
    for net in data.networks.values():
        if networks is not None and net.code not in networks:
            continue
        base = folder / net.code
        written.append(_replace(base / "calendar.ics", _feed(data, net.id, today, None)))  # type: ignore[arg-type]
        for svc in data.services.values():
            if svc.network_id == net.id:
                written.append(_replace(base / "services" / f"{svc.id}.ics", _feed(data, net.id, today, svc.id)))  # type: ignore[arg-type]
    return written


def _replace(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return path
