"""The calendar feeds as files: what Outlook needs, three independent parsers, writing them and the command."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from flows.site import network_feed, write_feeds
from models import Network, Organisation, Risk, Service
from models.installation import installation_id
from notifications.ics import london_vtimezone, uid
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput
from tests.support_feeds import (
    CLOCK,
    DAY,
    SEVERNSIDE,
    cancelled_uids,
    deadline_uids,
    events_by_uid,
    fire,
    parse_feed,
    pending_uids,
    raise_risk_row,
    uid_of,
    world,  # noqa: F401 (pytest fixtures)
)

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
    cal = parse_feed(data)
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
    assert len(deadline_starts) >= len(pending_uids(session, "WMTN"))


def test_an_independent_parser_reads_the_same_calendar(session: Session, world: dict[str, Any]) -> None:
    """vobject (the parser behind the Radicale calendar server), not the library that wrote the
    feed, reads every event with its UID, summary, dates and time zone, and re-serialises it
    with validation on: what a calendar program importing the file would do."""
    import vobject

    data = network_feed(session, "WMTN", CLOCK.now())
    (parsed,) = list(vobject.readComponents(data.decode()))
    theirs = {str(e.uid.value): e for e in parsed.vevent_list}
    ours = events_by_uid(parse_feed(data))
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
    cal = parse_feed(data)
    assert [str(z["tzid"]) for z in cal.walk("VTIMEZONE")] == ["Europe/London"]
    assert deadline_uids(cal)  # its GC review is there
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
        raise_risk_row(session, svc.id, "SC", f"concern {n}")  # type: ignore[arg-type]
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

    cal = parse_feed(data)
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
    fire(
        session, "risk", world["sc"].id, "send_formal_notification", date(2026, 12, 16)
    )  # a closed deadline: CANCELLED
    paths = write_feeds(session, tmp_path, date(2026, 12, 16))
    counts = [_three_parsers(p.read_bytes()) for p in paths]
    assert sum(counts) > 10
    assert cancelled_uids(parse_feed((tmp_path / "WMTN" / "calendar.ics").read_bytes()))


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
    events = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))
    assert events and all(u.endswith(f"-{mine}@peerwatch") for u in events)
    assert f"visit-{world['visit'].id}-{mine}@peerwatch" in events
    assert events_by_uid(parse_feed(network_feed(session, "WMTN", DAY))).keys() == events.keys()  # stable

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
    old_uid = uid_of(session, "deadline", old.id)  # type: ignore[arg-type]
    imported = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))[old_uid]  # what a calendar imported once
    moved = date(2026, 12, 16)
    fire(session, "risk", sc.id, "send_formal_notification", moved)  # type: ignore[arg-type]

    def feed(day: date) -> dict[str, Any]:
        return events_by_uid(parse_feed(network_feed(session, "WMTN", day)))

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
    cal = parse_feed(data)
    assert len(cal.walk("VTIMEZONE")) == 1
    office = session.exec(select(Contact).where(Contact.role == "network-office")).all()
    assert office
    for ev in cal.walk("VEVENT"):
        assert str(ev["organizer"]).lower() in {f"mailto:{c.email}".lower() for c in office}
        assert str(ev["uid"]).endswith(f"-{installation_id(session)}@peerwatch")
        assert int(ev["sequence"]) == visit.version  # a re-sent agenda replaces the older one
