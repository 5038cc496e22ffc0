"""The visit day: feedback raising risks, the agenda and the calendar invitation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import icalendar
import pytest
from sqlmodel import Session, col, func, select

from models import AuditEvent, Risk
from models.tables import Report, Visit
from notifications.ics import visit_calendar
from states import engine
from states.clock import FixedClock
from states.engine.letters import resolve
from states.errors import GuardRefused, InvalidInput, PermissionDenied
from states.machines.visit import agenda
from states.machines.visit import panel as _panel
from states.scope import recipient_scope
from tests.factories import person
from tests.support_visits import CAL, MRH, NM, OFFICE, RL, T0, VISIT, fire, held, notified, propose, row_counts

# --------------------------------------------------------------------------- high level feedback

FOUND = [
    {"level": "IR", "title": "No resuscitation trolley check", "impact": 4, "likelihood": 4, "standard_ref": "T-1.2"},
    {"level": "SC", "title": "Rehabilitation prescriptions missing", "standard_ref": "T-3.1"},
]


@pytest.mark.parametrize(
    ("visit_day", "formal_due", "report_due"),
    [
        (date(2026, 11, 12), date(2026, 11, 19), date(2027, 1, 7)),  # Thu -> Thu; + 8 weeks
        # Fri 18 Dec 2026: 21, 22, 23, 24 Dec, then 25 (Christmas) and 28 (Boxing Day substitute) skipped -> Tue 29 Dec
        (date(2026, 12, 18), date(2026, 12, 29), date(2027, 2, 12)),
    ],
)
def test_feedback_raises_the_risks_found_and_starts_the_report(
    session: Session, services: dict[str, int], visit_day: date, formal_due: date, report_due: date
) -> None:
    visit = held(session, services, visit_day)
    out = fire(session, visit.id, "give_feedback", visit_day, role=RL, risks=FOUND)
    assert out.row.state == "feedback_given"
    risks = list(session.exec(select(Risk).order_by(col(Risk.id))))
    assert [(r.level, r.title, r.visit_id, r.state, r.visit_date, r.identified_on) for r in risks] == [
        ("IR", FOUND[0]["title"], visit.id, "identified", visit_day, visit_day),
        ("SC", FOUND[1]["title"], visit.id, "identified", visit_day, visit_day),
    ]
    assert CAL.add_working_days(visit_day, 5) == formal_due
    for r in risks:
        assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "risk", r.id)] == [
            ("formal_notification", formal_due)
        ]
    (report,) = session.exec(select(Report)).all()
    assert (report.state, report.visit_id, report.basis_date, report.service_id) == (
        "drafting",
        visit.id,
        visit_day,
        visit.service_id,
    )
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "report", report.id)] == [
        ("report_due", report_due)
    ]
    assert report_due - visit_day == timedelta(weeks=8)
    raised = [e for e in session.exec(select(AuditEvent).where(AuditEvent.kind == "risk"))]
    assert {e.role for e in raised} == {RL} and all(f"visit {visit.id}" in (e.note or "") for e in raised)


def test_feedback_with_an_invalid_level_creates_nothing(session: Session, services: dict[str, int]) -> None:
    visit = held(session, services)
    version, counts = visit.version, row_counts(session)
    with pytest.raises(InvalidInput, match="risk level 'XX'"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "give_feedback",
            principal=person("t", NM),
            clock=FixedClock(VISIT),
            params={"risks": [FOUND[0], {"level": "XX", "title": "?"}]},
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version) == ("held", version)
    assert row_counts(session) == counts
    assert session.exec(select(func.count()).select_from(Risk)).one() == 0
    assert session.exec(select(func.count()).select_from(Report)).one() == 0


def test_feedback_is_for_the_network_leads(session: Session, services: dict[str, int]) -> None:
    visit = held(session, services)
    with pytest.raises(PermissionDenied):
        engine.fire(
            session,
            "visit",
            visit.id,
            "give_feedback",
            principal=person("t", OFFICE),
            clock=FixedClock(VISIT),
            params={"risks": []},
        )


# --------------------------------------------------------------------------- the day: agenda and calendar


def test_in_person_agenda_follows_the_sop_day(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=T0)
    sessions = agenda(visit)
    assert len(sessions) == 7
    assert sessions[0]["start"] == datetime.combine(VISIT, time(9, 0))
    assert sessions[-1]["end"] == datetime.combine(VISIT, time(17, 0))
    assert [s["title"] for s in sessions][1] == "Unit walk-around"
    assert all(a["end"] == b["start"] for a, b in zip(sessions, sessions[1:], strict=False))
    assert [s["title"] for s in sessions if s["who"] == "reviewers only"] == [
        "Review of standards against evidence",
        "Preparing high level feedback",
    ]


def test_virtual_agenda_drops_the_walk_around(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=T0, mode="virtual")
    sessions = agenda(visit)
    assert len(sessions) == 6
    assert "Unit walk-around" not in [s["title"] for s in sessions]
    assert (sessions[0]["start"].time(), sessions[-1]["end"].time()) == (time(9, 0), time(17, 0))


def test_agenda_needs_a_date(session: Session, services: dict[str, int]) -> None:
    with pytest.raises(GuardRefused, match="no date yet"):
        agenda(propose(session, services))


@pytest.mark.parametrize(("visit_day", "utc_hour"), [(date(2027, 6, 17), 8), (VISIT, 9)])  # BST, then GMT
def test_visit_calendar_has_one_event_per_session(
    session: Session, services: dict[str, int], visit_day: date, utc_hour: int
) -> None:
    visit = notified(session, services, visit_day, start=visit_day - timedelta(weeks=5))
    panel = [{"name": r.name, "email": r.email, "group": "panel"} for _, r in _panel(session, visit.id)]
    scope = recipient_scope(session, visit)
    staff = [
        {"name": c.name, "email": c.email, "group": "service"}
        for role in ("service-lead", "chief-executive")
        for c in resolve(session, role, scope)
    ]
    sessions = agenda(visit)
    data = visit_calendar(
        f"Visit-{visit.id}", MRH, "West Midlands Trauma Network", sessions, panel + staff, FixedClock(T0).now()
    )
    cal = icalendar.Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    assert len(events) == len(sessions) == 7
    panel_emails = sorted(f"mailto:{p['email']}" for p in panel)
    everyone = sorted(f"mailto:{p['email']}" for p in panel + staff)
    assert len(panel_emails) == 3 and len(everyone) == 5
    for ev, s in zip(events, sessions, strict=True):
        start = ev["dtstart"].dt
        assert ev["dtstart"].params["TZID"] == "Europe/London"
        assert str(start.tzinfo) == "Europe/London"
        assert start.replace(tzinfo=None) == s["start"]
        assert s["title"] in str(ev["summary"])
        attendees = sorted(str(a) for a in ev.get("attendee"))
        if s["who"] == "reviewers only":
            assert attendees == panel_emails, s["title"]
        elif s["who"] == "panel and service":
            assert attendees == everyone, s["title"]
        else:  # lunch: the panel at least
            assert set(panel_emails) <= set(attendees), s["title"]
    first = events[0]["dtstart"].dt
    assert (first.hour, first.astimezone(UTC).hour) == (9, utc_hour)


def test_visit_calendar_defines_its_time_zone(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, VISIT, start=T0)
    data = visit_calendar("Visit-1", MRH, "WMTN", agenda(visit), [], FixedClock(T0).now())
    zones = [str(z["tzid"]) for z in icalendar.Calendar.from_ical(data).walk("VTIMEZONE")]
    assert zones == ["Europe/London"]
