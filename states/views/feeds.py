"""The calendar feeds as data: each network's and each service's events (deadlines, visits,
programme meetings), read from the database and described in words; ``notifications/ics.py``
renders them as iCalendar, and the entry points (``flows/site.py``) put the two together.

One feed per network and one per service (issue 7 item 3), regenerated from the database: a
calendar program that subscribes to the file re-reads it and updates each event by UID. A
deadline is one all-day event on its due date; when it closes (its item moved on) it stays in
the feed as CANCELLED, with a raised SEQUENCE, for PEERWATCH_FEED_CANCELLED_DAYS (issue 12
item 9), so a copy imported once (not subscribed) is cancelled too; the deadline that replaced
it is a new row, so a new event with a new UID. Every UID carries the installation id
(models/installation.py). A visit is one timed event from the first session to the last (the
sessions are listed in its description); a cancelled visit stays as CANCELLED. Programme
phases (the network's meetings and milestones) are all-day events over their window.
SEQUENCE is the item's version, which every transition (a clock stop included) increments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from models.cycle import ProgrammePhase
from models.installation import installation_id
from models.tables import OUTSTANDING, Deadline, DeadlineStatus, Network, Service, Visit
from models.types import is_row_id
from states.clock import LONDON, local_date
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec
from states.machines.visit import agenda
from states.roles import CONTACT_ROLES

_LONDON = ZoneInfo(LONDON)
CANCELLED_DAYS = 30  # default of PEERWATCH_FEED_CANCELLED_DAYS: closed deadlines stay this long as CANCELLED
PENDING = tuple(s.value for s in OUTSTANDING)  # still to be met (passed ones show as OVERDUE)
# Item references as the letters print them (each kind's letter_context).
REF_PREFIX = {"mssp": "MSSP", "perinatal": "PQS", "surveillance": "QNT", "selfassessment": "SA"}
CONFIRMED_VISIT = ("service_notified", "prepared", "held", "feedback_given", "closed")


@dataclass(frozen=True)
class FeedEvent:
    """One event: all day from ``start`` to ``end`` (dates, both included), or timed (naive
    Europe/London datetimes). ``key`` (what, row id) and the installation make its UID."""

    key: tuple[str, int]
    sequence: int
    start: date | datetime
    end: date | datetime
    summary: str
    description: str
    categories: tuple[str, ...]
    status: str  # CONFIRMED, TENTATIVE or CANCELLED
    location: str | None = None

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


@dataclass(frozen=True)
class Feed:
    """One calendar: its name, where it is published (path parts under the site folder), and its
    events in the order they are listed."""

    name: str
    path: tuple[str, ...]
    installation: str
    stamp: datetime  # DTSTAMP of every event: the instant the feed was made
    events: list[FeedEvent]


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
    networks: dict[int, Network] = {n.id: n for n in session.exec(net_q) if n.id is not None}
    services: dict[int, Service] = {
        s.id: s for s in session.exec(select(Service).order_by(col(Service.id))) if s.id is not None
    }
    first_service_of: dict[int, int] = {}
    for sid, s in services.items():
        first_service_of.setdefault(s.organisation_id, sid)

    pending = list(
        session.exec(
            select(Deadline).where(col(Deadline.status).in_(PENDING)).order_by(col(Deadline.due_on), col(Deadline.id))
        )
    )
    by_kind: dict[str, set[int]] = {}
    for d in pending:
        by_kind.setdefault(d.kind, set()).add(d.item_id)
    items: dict[tuple[str, int | None], Any] = {}
    for kind, ids in by_kind.items():
        model = get_spec(kind).model
        wanted = sorted(ids)
        for start in range(0, len(wanted), 900):
            for row in session.exec(select(model).where(col(model.id).in_(wanted[start : start + 900]))):
                items[(kind, row.id)] = row
    data = _FeedData(networks, services, iid)
    for d in pending:
        item = items.get((d.kind, d.item_id))
        where = _place(item, services, first_service_of) if item is not None else None
        if where is not None and where.network_id in networks:
            data.deadlines.setdefault((where.network_id, where.service_id), []).append((d, item))
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
    since = datetime.combine(today - timedelta(days=days), time(0), _LONDON).astimezone(UTC)
    closed = DeadlineStatus.CLOSED.value
    kinds = sorted(session.exec(select(Deadline.kind).where(Deadline.status == closed).distinct()))
    out: list[tuple[Deadline, Any]] = []
    for kind in kinds:
        model = get_spec(kind).model
        recent = {
            row.id: row
            for row in session.exec(select(model).where(col(model.updated_at) >= since))
            if row.id is not None
        }
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


def _deadline_event(d: Deadline, row: Any, where: tuple[int, int | None], data: _FeedData, today: date) -> FeedEvent:
    """All day on the due date; the summary says what is due from whom, the description how to act.

    A closed deadline is the same event (same UID) as CANCELLED: its SEQUENCE, the item's
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
    return FeedEvent(
        key=("deadline", d.id),  # type: ignore[arg-type]
        sequence=row.version,
        start=d.due_on,
        end=d.due_on,
        summary=f"{flag}{d.kind} {ref} {what} due - {owner} ({about})",
        description="\n".join(lines),
        categories=(d.kind,),
        status="CANCELLED" if closed else "TENTATIVE" if d.status == DeadlineStatus.PAUSED else "CONFIRMED",
    )


def _visit_event(v: Visit, data: _FeedData) -> FeedEvent:
    svc = data.services[v.service_id]
    sessions = agenda(v)
    mode = "virtual" if v.mode == "virtual" else "in person"
    program = [f"{s['start']:%H:%M}-{s['end']:%H:%M} {s['title']} ({s['who']})" for s in sessions]
    return FeedEvent(
        key=("visit", v.id),  # type: ignore[arg-type]
        sequence=v.version,
        start=sessions[0]["start"],
        end=sessions[-1]["end"],
        summary=f"{'CANCELLED: ' if v.state == 'cancelled' else ''}Peer review visit Visit-{v.id}: {svc.name} ({mode})",
        description="\n".join(
            [f"Visit-{v.id} ({v.state}), {mode}.", *program, f"Details: peerwatch visit show {v.id}"]
        ),
        categories=("visit",),
        status="CANCELLED" if v.state == "cancelled" else "CONFIRMED" if v.state in CONFIRMED_VISIT else "TENTATIVE",
        location="Virtual" if v.mode == "virtual" else svc.name,
    )


def _phase_event(p: ProgrammePhase, data: _FeedData) -> FeedEvent:
    net = data.networks[p.network_id]
    year = f"{p.programme_year}-{str(p.programme_year + 1)[2:]}"
    return FeedEvent(
        key=("phase", p.id),  # type: ignore[arg-type]
        sequence=p.version,
        start=p.opens_on,
        end=p.due_on,
        summary=f"{net.code} programme {year} {p.quarter}: {p.title}",
        description=(
            f"Phase-{p.id} ({p.state}) of the {net.name} programme year {year}, cycle year {p.cycle_year}: "
            f"{p.opens_on:%d %b %Y} to {p.due_on:%d %b %Y}.\nDetails: peerwatch phase show {p.id}"
        ),
        categories=("phase",),
        status="CONFIRMED",
    )


def _stamp(today: date) -> tuple[date, datetime]:
    """A clock's instant, or a bare date (stamped at its start in London): (local date, DTSTAMP)."""
    if isinstance(today, datetime):
        return local_date(today), today.astimezone(UTC)
    return today, datetime.combine(today, time(0), _LONDON).astimezone(UTC)


def _feed(data: _FeedData, network_id: int, today: date, service_id: int | None) -> Feed:
    """The feed of one network (service_id None) or of one of its services.

    A service's feed has that service's own deadlines and visits and the network's programme
    phases (its meetings concern every service), but not the network-level deadlines
    (complaints without a service, phases, Trust submissions): those are the network's work."""
    day, stamp = _stamp(today)
    net = data.networks[network_id]
    name = (
        f"peerwatch {net.code}: {data.services[service_id].name}" if service_id else f"peerwatch {net.code}: {net.name}"
    )
    events: list[tuple[date, str, FeedEvent]] = []
    for key in data.services_of(network_id) if service_id is None else [service_id]:
        for d, row in [*data.deadlines.get((network_id, key), []), *data.closed.get((network_id, key), [])]:
            events.append((d.due_on, f"deadline-{d.id:012d}", _deadline_event(d, row, (network_id, key), data, day)))
        for v in data.visits.get((network_id, key), []) if key is not None else []:
            events.append((v.visit_date, f"visit-{v.id:012d}", _visit_event(v, data)))  # type: ignore[arg-type]
    for p in data.phases.get(network_id, []):
        events.append((p.opens_on, f"phase-{p.id:012d}", _phase_event(p, data)))
    path = (net.code, "calendar.ics") if service_id is None else (net.code, "services", f"{service_id}.ics")
    return Feed(
        name=name,
        path=path,
        installation=data.installation,
        stamp=stamp,
        events=[ev for _, _, ev in sorted(events, key=lambda e: (e[0], e[1]))],
    )


def network_feed(session: Session, network_code: str, today: date, service_id: int | None = None) -> Feed:
    """The network's calendar (or one of its services'): pending deadlines, visits and meetings.

    ``today`` is a date or, to stamp events with the instant, a clock's ``now()``."""
    net = session.exec(select(Network).where(Network.code == network_code)).first()
    if net is None:
        raise NotFound(f"network {network_code!r} not found (peerwatch network list)")
    if service_id is not None:
        svc = session.get(Service, service_id) if is_row_id(service_id) else None
        if svc is None or svc.network_id != net.id:
            raise NotFound(f"service {service_id} not found in network {network_code} (peerwatch service list)")
    return _feed(_load(session, [net.id], _stamp(today)[0]), net.id, today, service_id)  # type: ignore[list-item,arg-type]


def all_feeds(session: Session, today: date, networks: set[str] | None = None) -> list[Feed]:
    """Every network's feed (or those whose code is in ``networks``) and each of its services',
    from one read of the database."""
    data = _load(session, None, _stamp(today)[0])
    feeds = []
    for net in data.networks.values():
        if networks is not None and net.code not in networks:
            continue
        feeds.append(_feed(data, net.id, today, None))  # type: ignore[arg-type]
        for svc in data.services.values():
            if svc.network_id == net.id:
                feeds.append(_feed(data, net.id, today, svc.id))
    return feeds
