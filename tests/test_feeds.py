"""Calendar feeds (issue 7 item 3, issue 12 item 9): every pending deadline, visit and programme
meeting of a network or a service, as iCalendar that Outlook accepts, regenerated as states
change; every feed valid for icalendar's validate(), vobject and ``ics``; UIDs unique between
installations; closed deadlines published as CANCELLED for a period.

Items are created through the engine; what the feed must hold is read back from the engine
(``engine.pending_deadlines``) and the rows, never typed in by hand."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from flows.site import network_feed, write_feeds
from models import Network, Organisation, Risk, Service, Visit
from models.cycle import ProgrammePhase
from models.installation import installation_id
from notifications.ics import london_vtimezone, uid
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec
from states.roles import CONTACT_ROLES
from states.services.cycle import plan_year

MRH = "Midland Royal Major Trauma Centre"
SEVERNSIDE = "Severnside Trauma Unit"
MERSEY = "Mersey Harbour Major Trauma Centre"
NM = "network-manager"
DAY = date(2026, 12, 11)  # Fri: the visit that found the risks
VISIT_DAY = date(2027, 1, 14)  # Thu: the next visit to Midland Royal
CLOCK = FixedClock(DAY)


# --------------------------------------------------------------------------- the world


def _raise(session: Session, service_id: int, level: str, title: str) -> Risk:
    row = Risk(service_id=service_id, level=level, title=title, identified_on=DAY, visit_date=DAY, state="new")
    out = engine.create(session, "risk", row, "raise", actor="Jo Smith", role=NM, clock=CLOCK)
    session.commit()
    return out.row  # type: ignore[return-value]


def _fire(session: Session, kind: str, item_id: int, trigger: str, day: date = DAY, **kw: Any) -> None:
    engine.fire(session, kind, item_id, trigger, actor="Jo Smith", role=NM, clock=FixedClock(day), **kw)
    session.commit()


@pytest.fixture
def world(session: Session, services: dict[str, int]) -> dict[str, Any]:
    """WMTN: an SC at Midland Royal, a GC at Severnside, a visit to Midland Royal with the
    service notified, the programme year planned; CMMTN: an IR at Mersey Harbour."""
    sc = _raise(session, services[MRH], "SC", "Trauma team not consultant-led")
    gc = _raise(session, services[SEVERNSIDE], "GC", "Leaflets out of date")
    ir = _raise(session, services[MERSEY], "IR", "No paediatric cover at night")
    visit = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        actor="Office",
        role="network-office",
        clock=CLOCK,
        note="weighting",
    ).row
    _fire(session, "visit", visit.id, "schedule", params={"date": VISIT_DAY.isoformat()})  # type: ignore[arg-type]
    _fire(session, "visit", visit.id, "notify_service")  # type: ignore[arg-type]
    for code in ("WMTN", "CMMTN"):
        net = session.exec(select(Network).where(Network.code == code)).one()
        plan_year(session, net, 2026, CLOCK)
    session.commit()
    return {"sc": sc, "gc": gc, "ir": ir, "visit": visit}


def _parse(data: bytes) -> Calendar:
    return Calendar.from_ical(data)


def _events(cal: Calendar) -> dict[str, Any]:
    return {str(e["uid"]): e for e in cal.walk("VEVENT")}


def _network_items(session: Session, code: str, service_id: int | None = None) -> list[tuple[str, Any]]:
    """Every item of a network (or of one service), read from the rows."""
    net = session.exec(select(Network).where(Network.code == code)).one()
    svc_ids = [
        s.id
        for s in session.exec(select(Service).where(Service.network_id == net.id))
        if service_id is None or s.id == service_id
    ]
    items: list[tuple[str, Any]] = []
    for kind, model in (("risk", Risk), ("visit", Visit)):
        items += [(kind, r) for r in session.exec(select(model).where(model.service_id.in_(svc_ids)))]  # type: ignore[attr-defined]
    if service_id is None:
        items += [("phase", p) for p in session.exec(select(ProgrammePhase).where(ProgrammePhase.network_id == net.id))]
    return items


def _uid(session: Session, prefix: str, row_id: int) -> str:
    return uid(prefix, row_id, installation_id(session))


def _pending_uids(session: Session, code: str, service_id: int | None = None) -> set[str]:
    return {
        _uid(session, "deadline", d.id)
        for kind, row in _network_items(session, code, service_id)  # type: ignore[arg-type]
        for d in engine.pending_deadlines(session, kind, row.id)
    }


def _deadline_uids(cal: Calendar) -> set[str]:
    """The deadlines still due (closed ones are there too, as CANCELLED)."""
    return {u for u, e in _events(cal).items() if u.startswith("deadline-") and str(e["status"]) != "CANCELLED"}


def _cancelled_uids(cal: Calendar) -> set[str]:
    return {u for u, e in _events(cal).items() if u.startswith("deadline-") and str(e["status"]) == "CANCELLED"}


# --------------------------------------------------------------------------- what is in it


def test_network_feed_holds_exactly_the_pending_deadlines(session: Session, world: dict[str, Any]) -> None:
    cal = _parse(network_feed(session, "WMTN", DAY))
    expected = _pending_uids(session, "WMTN")
    assert {"risk", "visit", "phase"} <= {
        k for k, row in _network_items(session, "WMTN") if engine.pending_deadlines(session, k, row.id)
    }
    assert _deadline_uids(cal) == expected
    other = _pending_uids(session, "CMMTN")
    assert other and not other & set(_events(cal))  # nothing of Cheshire & Mersey


def test_each_deadline_names_kind_ref_due_date_owner_and_the_show_command(
    session: Session, world: dict[str, Any]
) -> None:
    events = _events(_parse(network_feed(session, "WMTN", DAY)))
    for kind, row in _network_items(session, "WMTN"):
        spec = get_spec(kind)
        for d in engine.pending_deadlines(session, kind, row.id):
            ev = events[_uid(session, "deadline", d.id)]
            summary, description = str(ev["summary"]), str(ev["description"])
            ref = spec.letter_context(session, row)["item"]["ref"]  # as the letters name it
            assert f"{kind} {ref} " in summary
            assert d.name.replace("_", " ") in summary
            assert CONTACT_ROLES[spec.deadline_rules[d.name].owner] in summary
            assert ev.decoded("dtstart") == d.due_on
            assert spec.deadline_rules[d.name].step in description
            assert f"peerwatch {kind} show {row.id}" in description
            assert int(ev["sequence"]) == row.version


def test_visit_is_one_timed_event_with_its_sessions(session: Session, world: dict[str, Any]) -> None:
    from states.machines.visit import agenda

    visit: Visit = world["visit"]
    session.refresh(visit)
    ev = _events(_parse(network_feed(session, "WMTN", DAY)))[_uid(session, "visit", visit.id)]
    sessions = agenda(visit)
    london = ZoneInfo("Europe/London")
    assert ev.decoded("dtstart") == sessions[0]["start"].replace(tzinfo=london)
    assert ev.decoded("dtend") == sessions[-1]["end"].replace(tzinfo=london)
    assert all(s["title"] in str(ev["description"]) for s in sessions)
    assert str(ev["status"]) == "CONFIRMED"  # the service has been notified
    assert int(ev["sequence"]) == visit.version


def test_programme_phases_are_the_networks_meetings(session: Session, world: dict[str, Any]) -> None:
    events = _events(_parse(network_feed(session, "CMMTN", DAY)))
    net = session.exec(select(Network).where(Network.code == "CMMTN")).one()
    phases = session.exec(select(ProgrammePhase).where(ProgrammePhase.network_id == net.id)).all()
    assert any("clinical group" in p.title for p in phases)
    for p in phases:
        ev = events[_uid(session, "phase", p.id)]
        assert (ev.decoded("dtstart"), ev.decoded("dtend")) == (p.opens_on, p.due_on + timedelta(days=1))
        assert p.title in str(ev["summary"])


# --------------------------------------------------------------------------- as states change


def test_a_transition_replaces_the_closed_deadline_and_keeps_the_other_uids(
    session: Session, world: dict[str, Any]
) -> None:
    sc: Risk = world["sc"]
    before = _events(_parse(network_feed(session, "WMTN", DAY)))
    old = {_uid(session, "deadline", d.id) for d in engine.pending_deadlines(session, "risk", sc.id)}  # type: ignore[arg-type]
    _fire(session, "risk", sc.id, "send_formal_notification", date(2026, 12, 16))  # type: ignore[arg-type]
    after = _events(_parse(network_feed(session, "WMTN", date(2026, 12, 16))))
    new = {_uid(session, "deadline", d.id) for d in engine.pending_deadlines(session, "risk", sc.id)}  # type: ignore[arg-type]

    assert old and new and not old & new
    assert old <= set(before) and old <= set(after)  # the closed deadline stays, cancelled (issue 12 item 9)
    assert all(
        str(after[o]["status"]) == "CANCELLED" and str(after[o]["summary"]).startswith("CANCELLED: ") for o in old
    )
    assert all(int(after[o]["sequence"]) > int(before[o]["sequence"]) for o in old)  # so a stored copy is replaced
    assert new <= set(after) and not new & set(before)  # its successor is there
    assert set(before) == set(after) - new  # every other event keeps its UID
    assert all(int(after[u]["sequence"]) > int(before[o]["sequence"]) for u in new for o in old)
    assert _deadline_uids(_parse(network_feed(session, "WMTN", date(2026, 12, 16)))) == _pending_uids(session, "WMTN")


def test_a_moved_deadline_and_a_postponed_visit_keep_their_uid_and_raise_sequence(
    session: Session, world: dict[str, Any]
) -> None:
    sc, visit = world["sc"], world["visit"]
    (deadline,) = engine.pending_deadlines(session, "risk", sc.id)
    uid, visit_uid = _uid(session, "deadline", deadline.id), _uid(session, "visit", visit.id)  # type: ignore[arg-type]
    before = _events(_parse(network_feed(session, "WMTN", DAY)))
    _fire(session, "risk", sc.id, "extend_deadline", note="agreed", params={"days": 3})
    new_day = VISIT_DAY + timedelta(days=7)
    _fire(session, "visit", visit.id, "postpone", note="lead on leave", params={"date": new_day.isoformat()})
    after = _events(_parse(network_feed(session, "WMTN", DAY)))

    session.refresh(deadline)
    assert after[uid].decoded("dtstart") == deadline.due_on > before[uid].decoded("dtstart")
    assert int(after[uid]["sequence"]) > int(before[uid]["sequence"])
    assert after[visit_uid].decoded("dtstart").date() == new_day
    assert int(after[visit_uid]["sequence"]) > int(before[visit_uid]["sequence"])


def test_a_cancelled_visit_stays_in_the_feed_as_cancelled(session: Session, world: dict[str, Any]) -> None:
    visit = world["visit"]
    uid = _uid(session, "visit", visit.id)
    before = _events(_parse(network_feed(session, "WMTN", DAY)))[uid]
    engine.fire(
        session,
        "visit",
        visit.id,
        "cancel",
        actor="Sam Lee",
        role="regional-lead",
        clock=CLOCK,
        note="service reconfigured",
    )
    session.commit()
    events = _events(_parse(network_feed(session, "WMTN", DAY)))
    assert str(events[uid]["status"]) == "CANCELLED"
    assert int(events[uid]["sequence"]) > int(before["sequence"])
    assert not {u for u in events if u.startswith("deadline-")} & {
        _uid(session, "deadline", d.id) for d in engine.pending_deadlines(session, "visit", visit.id)
    }
    assert _deadline_uids(_parse(network_feed(session, "WMTN", DAY))) == _pending_uids(session, "WMTN")


def test_a_paused_deadline_is_shown_as_paused(session: Session, world: dict[str, Any]) -> None:
    sc = world["sc"]
    _fire(session, "risk", sc.id, "pause_clock", note="Trust asked for time: inquest")
    (d,) = engine.pending_deadlines(session, "risk", sc.id)
    ev = _events(_parse(network_feed(session, "WMTN", DAY)))[_uid(session, "deadline", d.id)]
    assert d.status == "paused"
    assert str(ev["summary"]).startswith("PAUSED: ") and str(ev["status"]) == "TENTATIVE"


# --------------------------------------------------------------------------- per service


def test_service_feed_has_only_that_services_items(
    session: Session, services: dict[str, int], world: dict[str, Any]
) -> None:
    mrh = services[MRH]
    cal = _parse(network_feed(session, "WMTN", DAY, service_id=mrh))
    events = _events(cal)
    assert _deadline_uids(cal) == _pending_uids(session, "WMTN", mrh)
    gc = world["gc"]  # Severnside's, same network
    assert not {_uid(session, "deadline", d.id) for d in engine.pending_deadlines(session, "risk", gc.id)} & set(events)  # type: ignore[arg-type]
    assert _uid(session, "visit", world["visit"].id) in events
    assert MRH in str(cal["x-wr-calname"])
    deadline_summaries = [str(e["summary"]) for u, e in events.items() if u.startswith("deadline-")]
    assert deadline_summaries and all(MRH in s for s in deadline_summaries)


def test_service_of_another_network_is_refused(
    session: Session, services: dict[str, int], world: dict[str, Any]
) -> None:
    with pytest.raises(NotFound, match="not found in network WMTN"):
        network_feed(session, "WMTN", DAY, service_id=services[MERSEY])
    with pytest.raises(NotFound, match="network 'NOPE'"):
        network_feed(session, "NOPE", DAY)


# --------------------------------------------------------------------------- Outlook


def _raw_lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b""), "every line ends in CRLF"
    return data.split(b"\r\n")[:-1]


def test_feed_meets_what_outlook_needs(session: Session, world: dict[str, Any]) -> None:
    now = CLOCK.now()
    data = network_feed(session, "WMTN", now)
    lines = _raw_lines(data)
    assert max(len(line) for line in lines) <= 75  # folded at 75 octets
    for required in (b"VERSION:2.0", b"METHOD:PUBLISH", b"CALSCALE:GREGORIAN", b"X-WR-TIMEZONE:Europe/London"):
        assert required in lines
    assert any(line.startswith(b"PRODID:") for line in lines) and any(
        line.startswith(b"X-WR-CALNAME:") for line in lines
    )
    assert lines.count(b"BEGIN:VTIMEZONE") == 1 and b"TZID:Europe/London" in lines  # a visit is timed
    cal = _parse(data)
    stamp = now.astimezone(UTC)
    for ev in cal.walk("VEVENT"):
        assert ev.decoded("dtstamp") == stamp  # from the clock
        assert "uid" in ev and "sequence" in ev
        start = ev.decoded("dtstart")
        if not isinstance(start, datetime):  # all day: DATE values, DTEND the next day at least
            assert ev["dtstart"].params.get("VALUE") in (None, "DATE") and not isinstance(ev.decoded("dtend"), datetime)
            assert ev.decoded("dtend") > start
        else:
            assert start.tzinfo is not None and ev["dtstart"].params["TZID"] == "Europe/London"
    deadline_starts = [line for line in lines if line.startswith(b"DTSTART;VALUE=DATE:")]
    assert len(deadline_starts) >= len(_pending_uids(session, "WMTN"))


def test_an_independent_parser_reads_the_same_calendar(session: Session, world: dict[str, Any]) -> None:
    """vobject (the parser behind the Radicale calendar server), not the library that wrote the
    feed, reads every event with its UID, summary, dates and time zone, and re-serialises it
    with validation on: what a calendar program importing the file would do."""
    import vobject

    data = network_feed(session, "WMTN", CLOCK.now())
    (parsed,) = list(vobject.readComponents(data.decode()))
    theirs = {str(e.uid.value): e for e in parsed.vevent_list}
    ours = _events(_parse(data))
    assert set(theirs) == set(ours) and len(theirs) >= 4
    for key, ev in theirs.items():
        assert ev.summary.value == str(ours[key]["summary"])
        start = ev.dtstart.value
        assert start == ours[key].decoded("dtstart")
        if isinstance(start, datetime):
            assert (
                start.utcoffset() == start.astimezone(ZoneInfo("Europe/London")).utcoffset()
            )  # its VTIMEZONE understood
    parsed.serialize(validate=True)


def test_the_vtimezone_is_there_without_a_timed_event(
    session: Session, services: dict[str, int], world: dict[str, Any]
) -> None:
    """Always written (issue 12 item 9): a feed with nothing timed, or nothing at all, is still
    a valid calendar."""
    data = network_feed(session, "WMTN", DAY, service_id=services[SEVERNSIDE])  # no visit there
    cal = _parse(data)
    assert [str(z["tzid"]) for z in cal.walk("VTIMEZONE")] == ["Europe/London"]
    assert _deadline_uids(cal)  # its GC review is there
    assert not any(isinstance(e.decoded("dtstart"), datetime) for e in cal.walk("VEVENT"))


def test_london_vtimezone_agrees_with_the_tz_database() -> None:
    """Checked on every hour of the weeks the clocks change, and at noon every day, 2024-2037."""
    ours = london_vtimezone().to_tz(lookup_tzid=False)  # built from our rules, not looked up by name
    london = ZoneInfo("Europe/London")
    instants = []
    for year in range(2024, 2038):
        day = datetime(year, 1, 1, 12, tzinfo=UTC)
        instants += [day + timedelta(days=n) for n in range(365)]
        for month in (3, 10):
            start = datetime(year, month, 24, tzinfo=UTC)
            instants += [start + timedelta(hours=h) for h in range(8 * 24)]
    wrong = [i for i in instants if i.astimezone(ours).utcoffset() != i.astimezone(london).utcoffset()]
    assert not wrong, wrong[:3]


# --------------------------------------------------------------------------- writing them all


def test_write_feeds_writes_every_network_and_service(session: Session, world: dict[str, Any], tmp_path: Path) -> None:
    paths = write_feeds(session, tmp_path, DAY)
    nets = session.exec(select(Network)).all()
    svcs = session.exec(select(Service)).all()
    code = {n.id: n.code for n in nets}
    expected = {tmp_path / n.code / "calendar.ics" for n in nets} | {
        tmp_path / code[s.network_id] / "services" / f"{s.id}.ics" for s in svcs
    }
    assert set(paths) == expected and len(paths) == len(expected)
    for n in nets:
        assert (tmp_path / n.code / "calendar.ics").read_bytes() == network_feed(session, n.code, DAY)
    for s in svcs:
        assert (tmp_path / code[s.network_id] / "services" / f"{s.id}.ics").read_bytes() == network_feed(
            session, code[s.network_id], DAY, s.id
        )
    assert not list(tmp_path.rglob(".*.tmp"))


def _statements(db: Engine, session: Session, tmp_path: Path) -> int:
    seen: list[str] = []

    def count(*_: Any) -> None:
        seen.append("")

    event.listen(db, "before_cursor_execute", count)
    try:
        write_feeds(session, tmp_path, DAY)
    finally:
        event.remove(db, "before_cursor_execute", count)
    return len(seen)


def test_write_feeds_reads_the_same_few_queries_however_many_services(
    db: Engine, session: Session, services: dict[str, int], world: dict[str, Any], tmp_path: Path
) -> None:
    installation_id(session)  # made once per database, the first time anything asks
    first = _statements(db, session, tmp_path / "a")
    net = session.exec(select(Network).where(Network.code == "WMTN")).one()
    org = session.exec(select(Organisation)).first()
    for n in range(20):
        svc = Service(name=f"Extra service {n}", kind="Trauma Unit", organisation_id=org.id, network_id=net.id)  # type: ignore[union-attr,arg-type]
        session.add(svc)
        session.commit()
        _raise(session, svc.id, "SC", f"concern {n}")  # type: ignore[arg-type]
    session.expunge_all()
    assert _statements(db, session, tmp_path / "b") == first
    assert (
        len(list((tmp_path / "b" / "WMTN" / "services").glob("*.ics")))
        == len(list((tmp_path / "a" / "WMTN" / "services").glob("*.ics"))) + 20
    )


# --------------------------------------------------------------------------- the command line


def test_cli_feed_show_and_write(db_url: str, session: Session, world: dict[str, Any], tmp_path: Path) -> None:
    peerwatch = str(Path(sys.executable).with_name("peerwatch"))
    shown = subprocess.run(
        [peerwatch, "--as-of", DAY.isoformat(), "feed", "show", "--network", "WMTN"],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == network_feed(session, "WMTN", FixedClock(DAY).now())  # --as-of is the clock
    out = tmp_path / "site"
    written = subprocess.run(
        [peerwatch, "--as-of", DAY.isoformat(), "--json", "feed", "write", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert written.returncode == 0, written.stderr
    assert (out / "WMTN" / "calendar.ics").read_bytes() == shown.stdout
    refused = subprocess.run(
        [peerwatch, "feed", "show", "--network", "NOPE"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert refused.returncode == 2 and refused.stderr.startswith("error: network 'NOPE' not found")


# --------------------------------------------------------------------------- issue 12 item 9: what real programs accept


def _three_parsers(data: bytes) -> int:
    """icalendar's validate(), vobject (validating re-serialisation) and the ``ics`` package each
    accept the file; they agree on the number of events, which is returned."""
    import ics
    import vobject

    cal = _parse(data)
    cal.validate()  # RFC 5545: PRODID, VERSION and at least one component
    for ev in cal.walk("VEVENT"):
        assert "uid" in ev and "dtstamp" in ev and "dtstart" in ev
    (theirs,) = list(vobject.readComponents(data.decode()))
    theirs.serialize(validate=True)
    n = len(cal.walk("VEVENT"))
    assert len(getattr(theirs, "vevent_list", [])) == n
    assert len(ics.Calendar(data.decode()).events) == n
    return n


def test_every_feed_is_accepted_by_icalendar_vobject_and_ics_even_with_nothing_in_it(
    session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    """Before any item or programme exists every feed is empty: each is still a calendar (the
    VTIMEZONE), which icalendar's validate() refused when it was an empty VCALENDAR."""
    paths = write_feeds(session, tmp_path, DAY)
    assert len(paths) == len(session.exec(select(Service)).all()) + len(session.exec(select(Network)).all())
    assert all(_three_parsers(p.read_bytes()) == 0 for p in paths)


def test_every_feed_of_a_busy_network_is_accepted_by_all_three(
    session: Session, world: dict[str, Any], tmp_path: Path
) -> None:
    _fire(
        session, "risk", world["sc"].id, "send_formal_notification", date(2026, 12, 16)
    )  # a closed deadline: CANCELLED
    paths = write_feeds(session, tmp_path, date(2026, 12, 16))
    counts = [_three_parsers(p.read_bytes()) for p in paths]
    assert sum(counts) > 10
    assert _cancelled_uids(_parse((tmp_path / "WMTN" / "calendar.ics").read_bytes()))


def test_uids_carry_the_installation_id_stable_here_and_different_elsewhere(
    db_url: str, session: Session, world: dict[str, Any], tmp_path: Path
) -> None:
    import threading

    from models.db import dispose_engine, init_db
    from tests.databases import drop, fresh_url

    mine = installation_id(session)
    uuid_form = mine.split("-")
    assert [len(x) for x in uuid_form] == [8, 4, 4, 4, 12]
    with Session(session.get_bind()) as again:
        assert installation_id(again) == mine  # stored: the same for every reader of this database
    events = _events(_parse(network_feed(session, "WMTN", DAY)))
    assert events and all(u.endswith(f"-{mine}@peerwatch") for u in events)
    assert f"visit-{world['visit'].id}-{mine}@peerwatch" in events
    assert _events(_parse(network_feed(session, "WMTN", DAY))).keys() == events.keys()  # stable

    other_url = fresh_url(tmp_path)  # a second installation, as a second network office would run it
    try:
        other = init_db(other_url)
        seen: list[str] = []

        def ask() -> None:
            with Session(other) as s:
                seen.append(installation_id(s))

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(seen)) == 1 and len(seen) == 4  # made once, even when asked for at once
        assert seen[0] != mine
        assert uid("visit", world["visit"].id, seen[0]) != uid("visit", world["visit"].id, mine)
    finally:
        dispose_engine(other_url)
        drop(other_url)


def test_a_closed_deadline_is_cancelled_for_the_period_then_leaves(
    session: Session, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sc: Risk = world["sc"]
    (old,) = engine.pending_deadlines(session, "risk", sc.id)  # type: ignore[arg-type]
    old_uid = _uid(session, "deadline", old.id)  # type: ignore[arg-type]
    imported = _events(_parse(network_feed(session, "WMTN", DAY)))[old_uid]  # what a calendar imported once
    moved = date(2026, 12, 16)
    _fire(session, "risk", sc.id, "send_formal_notification", moved)  # type: ignore[arg-type]

    def feed(day: date) -> dict[str, Any]:
        return _events(_parse(network_feed(session, "WMTN", day)))

    for day in (moved, moved + timedelta(days=30)):  # the default period: 30 days
        ev = feed(day)[old_uid]
        assert str(ev["status"]) == "CANCELLED" and int(ev["sequence"]) > int(imported["sequence"])
        assert ev.decoded("dtstart") == imported.decoded("dtstart")
        assert "No longer due" in str(ev["description"])
    assert old_uid not in feed(moved + timedelta(days=31))
    monkeypatch.setenv("PEERWATCH_FEED_CANCELLED_DAYS", "5")
    assert old_uid in feed(moved + timedelta(days=5)) and old_uid not in feed(moved + timedelta(days=6))
    monkeypatch.setenv("PEERWATCH_FEED_CANCELLED_DAYS", "0")
    assert old_uid not in feed(moved)
    monkeypatch.setenv("PEERWATCH_FEED_CANCELLED_DAYS", "a month")
    with pytest.raises(InvalidInput, match="PEERWATCH_FEED_CANCELLED_DAYS='a month'"):
        feed(moved)


def test_visit_agenda_ics_has_the_feeds_time_zone_and_an_organizer(
    db_url: str, session: Session, world: dict[str, Any], tmp_path: Path
) -> None:
    """``peerwatch visit agenda --ics``: the same VTIMEZONE block as the feeds, an ORGANIZER (the
    network office), UIDs with the installation id, and all three parsers accept it."""
    from models import Contact

    visit = world["visit"]
    session.refresh(visit)
    peerwatch = str(Path(sys.executable).with_name("peerwatch"))
    out = tmp_path / "agenda.ics"
    run = subprocess.run(
        [peerwatch, "--as-of", DAY.isoformat(), "visit", "agenda", str(visit.id), "--ics", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    assert _three_parsers(data) == 7
    feed_tz = london_vtimezone().to_ical()
    assert feed_tz in data  # byte for byte the feeds' block
    cal = _parse(data)
    assert len(cal.walk("VTIMEZONE")) == 1
    office = session.exec(select(Contact).where(Contact.role == "network-office")).all()
    assert office
    for ev in cal.walk("VEVENT"):
        assert str(ev["organizer"]).lower() in {f"mailto:{c.email}".lower() for c in office}
        assert str(ev["uid"]).endswith(f"-{installation_id(session)}@peerwatch")
        assert int(ev["sequence"]) == visit.version  # a re-sent agenda replaces the older one
