"""Calendar feeds (issue 7 item 3, issue 12 item 9): every pending deadline, visit and programme
meeting of a network or a service, as iCalendar that Outlook accepts, regenerated as states
change; every feed valid for icalendar's validate(), vobject and ``ics``; UIDs unique between
installations; closed deadlines published as CANCELLED for a period.

Items are created through the engine; what the feed must hold is read back from the engine
(``engine.pending_deadlines``) and the rows, never typed in by hand.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from flows.site import network_feed
from models import Network, Risk, Visit
from models.cycle import ProgrammePhase
from states import engine
from states.errors import NotFound
from states.machines.spec import get_spec
from states.roles import CONTACT_ROLES
from tests.factories import person
from tests.support_feeds import (
    CLOCK,
    DAY,
    MERSEY,
    MRH,
    VISIT_DAY,
    deadline_uids,
    events_by_uid,
    fire,
    network_items,
    parse_feed,
    pending_uids,
    uid_of,
    world,  # noqa: F401 (pytest fixtures)
)

# --------------------------------------------------------------------------- what is in it


def test_network_feed_holds_exactly_the_pending_deadlines(session: Session, world: dict[str, Any]) -> None:
    cal = parse_feed(network_feed(session, "WMTN", DAY))
    expected = pending_uids(session, "WMTN")
    assert {"risk", "visit", "phase"} <= {
        k for k, row in network_items(session, "WMTN") if engine.pending_deadlines(session, k, row.id)
    }
    assert deadline_uids(cal) == expected
    other = pending_uids(session, "CMMTN")
    assert other and not other & set(events_by_uid(cal))  # nothing of Cheshire & Mersey


def test_each_deadline_names_kind_ref_due_date_owner_and_the_show_command(
    session: Session, world: dict[str, Any]
) -> None:
    events = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))
    for kind, row in network_items(session, "WMTN"):
        spec = get_spec(kind)
        for d in engine.pending_deadlines(session, kind, row.id):
            ev = events[uid_of(session, "deadline", d.id)]
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
    ev = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))[uid_of(session, "visit", visit.id)]
    sessions = agenda(visit)
    london = ZoneInfo("Europe/London")
    assert ev.decoded("dtstart") == sessions[0]["start"].replace(tzinfo=london)
    assert ev.decoded("dtend") == sessions[-1]["end"].replace(tzinfo=london)
    assert all(s["title"] in str(ev["description"]) for s in sessions)
    assert str(ev["status"]) == "CONFIRMED"  # the service has been notified
    assert int(ev["sequence"]) == visit.version


def test_programme_phases_are_the_networks_meetings(session: Session, world: dict[str, Any]) -> None:
    events = events_by_uid(parse_feed(network_feed(session, "CMMTN", DAY)))
    net = session.exec(select(Network).where(Network.code == "CMMTN")).one()
    phases = session.exec(select(ProgrammePhase).where(ProgrammePhase.network_id == net.id)).all()
    assert any("clinical group" in p.title for p in phases)
    for p in phases:
        ev = events[uid_of(session, "phase", p.id)]
        assert (ev.decoded("dtstart"), ev.decoded("dtend")) == (p.opens_on, p.due_on + timedelta(days=1))
        assert p.title in str(ev["summary"])


# --------------------------------------------------------------------------- as states change


def test_a_transition_replaces_the_closed_deadline_and_keeps_the_other_uids(
    session: Session, world: dict[str, Any]
) -> None:
    sc: Risk = world["sc"]
    before = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))
    old = {uid_of(session, "deadline", d.id) for d in engine.pending_deadlines(session, "risk", sc.id)}  # type: ignore[arg-type]
    fire(session, "risk", sc.id, "send_formal_notification", date(2026, 12, 16))  # type: ignore[arg-type]
    after = events_by_uid(parse_feed(network_feed(session, "WMTN", date(2026, 12, 16))))
    new = {uid_of(session, "deadline", d.id) for d in engine.pending_deadlines(session, "risk", sc.id)}  # type: ignore[arg-type]

    assert old and new and not old & new
    assert old <= set(before) and old <= set(after)  # the closed deadline stays, cancelled (issue 12 item 9)
    assert all(
        str(after[o]["status"]) == "CANCELLED" and str(after[o]["summary"]).startswith("CANCELLED: ") for o in old
    )
    assert all(int(after[o]["sequence"]) > int(before[o]["sequence"]) for o in old)  # so a stored copy is replaced
    assert new <= set(after) and not new & set(before)  # its successor is there
    assert set(before) == set(after) - new  # every other event keeps its UID
    assert all(int(after[u]["sequence"]) > int(before[o]["sequence"]) for u in new for o in old)
    assert deadline_uids(parse_feed(network_feed(session, "WMTN", date(2026, 12, 16)))) == pending_uids(session, "WMTN")


def test_a_moved_deadline_and_a_postponed_visit_keep_their_uid_and_raise_sequence(
    session: Session, world: dict[str, Any]
) -> None:
    sc, visit = world["sc"], world["visit"]
    (deadline,) = engine.pending_deadlines(session, "risk", sc.id)
    uid, visit_uid = uid_of(session, "deadline", deadline.id), uid_of(session, "visit", visit.id)  # type: ignore[arg-type]
    before = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))
    fire(session, "risk", sc.id, "extend_deadline", note="agreed", params={"days": 3})
    new_day = VISIT_DAY + timedelta(days=7)
    fire(session, "visit", visit.id, "postpone", note="lead on leave", params={"date": new_day.isoformat()})
    after = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))

    session.refresh(deadline)
    assert after[uid].decoded("dtstart") == deadline.due_on > before[uid].decoded("dtstart")
    assert int(after[uid]["sequence"]) > int(before[uid]["sequence"])
    assert after[visit_uid].decoded("dtstart").date() == new_day
    assert int(after[visit_uid]["sequence"]) > int(before[visit_uid]["sequence"])


def test_a_cancelled_visit_stays_in_the_feed_as_cancelled(session: Session, world: dict[str, Any]) -> None:
    visit = world["visit"]
    uid = uid_of(session, "visit", visit.id)
    before = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))[uid]
    engine.fire(
        session,
        "visit",
        visit.id,
        "cancel",
        principal=person("Sam Lee", "regional-lead"),
        clock=CLOCK,
        note="service reconfigured",
    )
    session.commit()
    events = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))
    assert str(events[uid]["status"]) == "CANCELLED"
    assert int(events[uid]["sequence"]) > int(before["sequence"])
    assert not {u for u in events if u.startswith("deadline-")} & {
        uid_of(session, "deadline", d.id) for d in engine.pending_deadlines(session, "visit", visit.id)
    }
    assert deadline_uids(parse_feed(network_feed(session, "WMTN", DAY))) == pending_uids(session, "WMTN")


def test_a_paused_deadline_is_shown_as_paused(session: Session, world: dict[str, Any]) -> None:
    sc = world["sc"]
    fire(session, "risk", sc.id, "pause_clock", note="Trust asked for time: inquest")
    (d,) = engine.pending_deadlines(session, "risk", sc.id)
    ev = events_by_uid(parse_feed(network_feed(session, "WMTN", DAY)))[uid_of(session, "deadline", d.id)]
    assert d.status == "paused"
    assert str(ev["summary"]).startswith("PAUSED: ") and str(ev["status"]) == "TENTATIVE"


# --------------------------------------------------------------------------- per service


def test_service_feed_has_only_that_services_items(
    session: Session, services: dict[str, int], world: dict[str, Any]
) -> None:
    mrh = services[MRH]
    cal = parse_feed(network_feed(session, "WMTN", DAY, service_id=mrh))
    events = events_by_uid(cal)
    assert deadline_uids(cal) == pending_uids(session, "WMTN", mrh)
    gc = world["gc"]  # Severnside's, same network
    assert not {uid_of(session, "deadline", d.id) for d in engine.pending_deadlines(session, "risk", gc.id)} & set(
        events
    )  # type: ignore[arg-type]
    assert uid_of(session, "visit", world["visit"].id) in events
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
