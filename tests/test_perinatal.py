"""The perinatal escalation ladder (seed 004), table-driven: every allowed (state, trigger),
every refused one, the monthly board review by the sweep, and the configurable level names."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from cli.diagram import documented
from models import AuditEvent, Contact, Deadline, OutboxMessage, Service
from models.perinatal import PerinatalConcern
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, PermissionDenied
from states.machines.perinatal import ADDRESSEES, PerinatalPolicy, PerinatalState, board_review_due
from states.machines.spec import CLOCK_TRIGGERS, get_spec

S = PerinatalState
NM = "network-manager"
SPEC = get_spec("perinatal")
MRH = "Midland Royal Major Trauma Centre"
RAISED = date(2026, 12, 11)  # Fri; the December board review is due Thu 31 Dec, reminded Tue 22 Dec
LEVEL_ROLES = ("lms-lead", "regional-chief-midwife", "regional-lead-obstetrician", "regional-chief-nurse")


@pytest.fixture
def maternity(session: Session, services: dict[str, int]) -> int:
    """A maternity service in Midland Royal's Trust and network, with the perinatal contacts."""
    trauma = session.get(Service, services[MRH])
    assert trauma is not None
    svc = Service(
        name="Midland Royal Maternity",
        kind="Maternity",
        organisation_id=trauma.organisation_id,
        network_id=trauma.network_id,
    )
    session.add(svc)
    session.flush()
    session.add(
        Contact(
            role="service-lead",
            name="Ms Mae Midwife",
            email="mae.midwife@mrh.nhs.example",
            service_id=svc.id,
            organisation_id=trauma.organisation_id,
        )
    )
    for role in LEVEL_ROLES:
        session.add(
            Contact(role=role, name=f"{role} person", email=f"{role}@region.nhs.example", network_id=trauma.network_id)
        )
    for role in ("msscg", "jsog"):
        session.add(Contact(role=role, name=f"{role.upper()} secretariat", email=f"{role}@england.nhs.example"))
    session.commit()
    assert svc.id is not None
    return svc.id


@pytest.fixture
def raise_concern(session: Session, maternity: int) -> Callable[..., PerinatalConcern]:
    def make(day: date = RAISED, **fields: Any) -> PerinatalConcern:
        row = PerinatalConcern(
            service_id=maternity, title="Rising stillbirth rate on the dashboard", raised_on=day, state="new", **fields
        )
        out = engine.create(session, "perinatal", row, "raise", actor="nm", role=NM, clock=FixedClock(day))
        session.commit()
        return out.row  # type: ignore[return-value]

    return make


def _counts(session: Session) -> tuple[int, int, int]:
    return tuple(session.exec(select(func.count()).select_from(t)).one() for t in (AuditEvent, OutboxMessage, Deadline))  # type: ignore[return-value]


def _put_in(session: Session, row: PerinatalConcern, state: str) -> PerinatalConcern:
    """Test setup shortcut: place a raised concern at a level."""
    row.state = str(state)
    session.add(row)
    session.commit()
    return row


def _templates(session: Session, item_id: int, since: int = 0) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template)
            .where(OutboxMessage.kind == "perinatal", OutboxMessage.item_id == item_id, OutboxMessage.id > since)
            .order_by(OutboxMessage.id)
        ).all()
    )


def _last_outbox_id(session: Session) -> int:
    return session.exec(select(func.max(OutboxMessage.id))).one() or 0


LATER = date(2026, 12, 21)
AFTER_DUE = date(2027, 1, 4)  # the December board review (due 31 Dec) has passed
OPEN = [S.PROVIDER, S.LMS_ICS, S.REGIONAL, S.NATIONAL]
# What the receiving forum decided, as the office records it (DOMAIN.md: the forum decides escalation)
LQSG = {"decided_on": "2026-12-18"}
RQC = {"decided_on": "2026-12-18", "agreed_with": "Ms Rae Chief-Nurse, regional chief nurse"}
# (source, trigger, role, setup, expected destination, letters queued)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (
        S.PROVIDER,
        "escalate",
        NM,
        {"note": "action plan not delivering", "params": LQSG},
        S.LMS_ICS,
        {"perinatal_escalation"},
    ),
    (
        S.LMS_ICS,
        "escalate",
        "network-office",
        {"note": "no improvement", "params": RQC},
        S.REGIONAL,
        {"perinatal_escalation"},
    ),
    (
        S.REGIONAL,
        "escalate",
        "regional-lead",
        {"note": "needs national support", "params": LQSG},
        S.NATIONAL,
        {"perinatal_escalation"},
    ),
    (S.LMS_ICS, "deescalate", NM, {"note": "improving"}, S.PROVIDER, {"perinatal_deescalation"}),
    (S.REGIONAL, "deescalate", NM, {"note": "improving"}, S.LMS_ICS, {"perinatal_deescalation"}),
    (S.NATIONAL, "deescalate", "operator", {"note": "support agreed locally"}, S.REGIONAL, {"perinatal_deescalation"}),
    (
        S.REGIONAL,
        "refer_to_jsog",
        NM,
        {"note": "system-wide issue", "params": RQC},
        S.REGIONAL,
        {"perinatal_regional_referral"},
    ),
    (
        S.REGIONAL,
        "request_cqc_inspection",
        NM,
        {"note": "triangulated data", "params": RQC},
        S.REGIONAL,
        {"perinatal_regional_referral"},
    ),
    *[
        (
            s,
            "record_forum_decision",
            "network-office",
            {"params": {**LQSG, "forum": "lms_ics", "decision": "not to escalate"}},
            s,
            set(),
        )
        for s in OPEN
    ],
    *[(s, "record_board_review", "network-office", {"params": {"reviewed_on": "2026-12-17"}}, s, set()) for s in OPEN],
    *[(s, "board_review_missed", "system", {"day": AFTER_DUE}, s, {"perinatal_board_review_overdue"}) for s in OPEN],
    *[(s, "close", NM, {"note": "assured by the board"}, S.CLOSED, {"perinatal_closed"}) for s in OPEN],
]


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    session: Session,
    raise_concern: Callable[..., PerinatalConcern],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    row = _put_in(session, raise_concern(), source)
    version, since = row.version, _last_outbox_id(session)
    out = engine.fire(
        session,
        "perinatal",
        row.id,
        trigger,
        actor="tester",
        role=role,
        clock=FixedClock(setup.get("day", LATER)),
        note=setup.get("note"),
        params=setup.get("params"),
    )
    session.commit()
    assert out.row.state == dest and out.row.version == version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor) == (
        source,
        dest,
        trigger,
        "tester",
    )
    assert set(_templates(session, row.id, since)) == letters
    pending = engine.pending_deadlines(session, "perinatal", row.id)
    # an open concern always has exactly one board review ahead; a closed one has none
    assert [d.name for d in pending] == ([] if dest == S.CLOSED else ["board_review"])


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE} | {(S.NEW.value, "raise")}
ALLOWED |= {(s.value, t) for s in OPEN for t in CLOCK_TRIGGERS}
REFUSED = [(s.value, t) for s in S for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    assert {(s.value, t) for s in S for t in SPEC.allowed_from(s.value)} == ALLOWED


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(
    session: Session, raise_concern: Callable[..., PerinatalConcern], state: str, trigger: str
) -> None:
    row = _put_in(session, raise_concern(), state)
    version, counts = row.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(session, "perinatal", row.id, trigger, actor="tester", role=NM, clock=FixedClock(LATER), note="n")
    session.rollback()
    fresh = session.get(PerinatalConcern, row.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


def test_a_concern_must_be_about_a_maternity_or_neonatal_service(session: Session, services: dict[str, int]) -> None:
    row = PerinatalConcern(service_id=services[MRH], title="t", raised_on=RAISED, state="new")
    with pytest.raises(GuardRefused, match="is_perinatal_service"):
        engine.create(session, "perinatal", row, "raise", actor="nm", role=NM, clock=FixedClock(RAISED))


def test_escalation_needs_a_reason_and_a_staff_role(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(session, "perinatal", row.id, "escalate", actor="nm", role=NM, clock=FixedClock(LATER))
    with pytest.raises(PermissionDenied, match="may not fire 'close'"):
        engine.fire(
            session, "perinatal", row.id, "close", actor="o", role="network-office", clock=FixedClock(LATER), note="x"
        )
    with pytest.raises(GuardRefused, match="has_board_review_overdue"):  # December's review is not due yet
        engine.fire(session, "perinatal", row.id, "board_review_missed", actor="nm", role=NM, clock=FixedClock(LATER))


def test_each_level_writes_to_its_people_with_the_seeds_actions(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    marks = {
        S.PROVIDER: "action plan is agreed as a priority",
        S.LMS_ICS: "MatNeoSIP",
        S.REGIONAL: "unannounced CQC inspection",
        S.NATIONAL: "entry into the Maternity Safety Support Programme",
    }
    for level in OPEN:
        if level != S.PROVIDER:
            engine.fire(
                session,
                "perinatal",
                row.id,
                "escalate",
                actor="nm",
                role=NM,
                clock=FixedClock(LATER),
                note=f"to {level}",
                params=RQC,
            )
        session.commit()
        letter = session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind == "perinatal",
                OutboxMessage.template == "perinatal_escalation",
                OutboxMessage.category == "letter",
            )
            .order_by(OutboxMessage.id.desc())
        ).first()  # type: ignore[union-attr]
        assert letter is not None
        assert marks[level] in " ".join(rendered(letter).body_text.split()), level
        assert {p["role"] for p in letter.to} == set(ADDRESSEES[level][0]), level
    history = session.get(PerinatalConcern, row.id).level_history  # type: ignore[union-attr]
    assert [h["level"] for h in history] == ["provider", "lms_ics", "regional", "national"]
    assert [h["note"] for h in history][1:] == ["to lms_ics", "to regional", "to national"]


def _sweep_days(
    db: Engine, start: date, end: date, on: dict[date, Callable[[], None]] | None = None
) -> dict[date, list[str]]:
    """Sweep every calendar day from start to end, twice a day; return each day's first-run actions."""
    seen: dict[date, list[str]] = {}
    day = start
    while day <= end:
        first = run_sweep(db, FixedClock(day))
        again = run_sweep(db, FixedClock(day))
        assert again.actions == [], day  # a second sweep on the same day does nothing more
        if first.actions:
            seen[day] = [a["action"] for a in first.actions]
        if on and day in on:
            on[day]()
        day = date.fromordinal(day.toordinal() + 1)
    return seen


def test_monthly_board_review_is_reminded_once_and_opens_next_month(
    db: Engine, session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    (d,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert (d.due_on, d.remind_on) == (date(2026, 12, 31), date(2026, 12, 22))

    def record() -> None:
        with Session(db) as s:
            engine.fire(
                s,
                "perinatal",
                row.id,
                "record_board_review",
                actor="office",
                role="network-office",
                clock=FixedClock(date(2026, 12, 30)),
                note="board paper 12/26",
            )
            s.commit()

    # December's review is recorded on 30 Dec; January's is not recorded at all.
    seen = _sweep_days(db, RAISED, date(2027, 2, 20), on={date(2026, 12, 30): record})
    assert seen == {
        date(2026, 12, 22): ["reminded"],  # December: 5 working days before Thu 31 Dec
        date(2027, 1, 22): ["reminded"],  # January: due Fri 29 Jan
        date(2027, 1, 30): ["board_review_missed"],  # the day after January's passed
        date(2027, 2, 19): ["reminded"],  # February: due Fri 26 Feb
    }
    letters = _templates(session, row.id)
    assert letters.count("perinatal_board_review_due") == 6  # 3 months x (Service Lead, Chief Executive)
    assert letters.count("perinatal_board_review_overdue") == 3  # Chief Executive, Service Lead, copied to the LMS lead
    session.expire_all()
    fresh = session.get(PerinatalConcern, row.id)
    assert fresh is not None and (fresh.board_reviews, fresh.last_board_review_on) == (1, date(2026, 12, 30))
    (nxt,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert nxt.due_on == date(2027, 2, 26)
    reminder = session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "perinatal_board_review_due").order_by(OutboxMessage.id)
    ).first()
    assert reminder is not None and {p["role"] for p in reminder.to} <= {"service-lead", "chief-executive"}
    assert "Thu 31 Dec 2026" in rendered(reminder).subject


def test_escalating_carries_the_months_review_without_a_second_reminder(
    db: Engine, session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()

    def escalate() -> None:
        with Session(db) as s:
            engine.fire(
                s,
                "perinatal",
                row.id,
                "escalate",
                actor="nm",
                role=NM,
                clock=FixedClock(date(2026, 12, 23)),
                note="worse",
                params=LQSG,
            )
            s.commit()

    seen = _sweep_days(db, RAISED, date(2026, 12, 31), on={date(2026, 12, 23): escalate})
    assert seen == {date(2026, 12, 22): ["reminded"]}
    (d,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert d.due_on == date(2026, 12, 31)
    assert _templates(session, row.id).count("perinatal_board_review_due") == 2


def test_a_late_review_of_an_earlier_month_keeps_this_months_deadline(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    engine.fire(
        session,
        "perinatal",
        row.id,
        "board_review_missed",
        actor="sweeper",
        role="system",
        clock=FixedClock(date(2027, 1, 1)),
    )
    engine.fire(
        session,
        "perinatal",
        row.id,
        "record_board_review",
        actor="o",
        role="network-office",
        clock=FixedClock(date(2027, 1, 4)),
        params={"reviewed_on": "2026-12-31"},
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "perinatal", row.id)
    assert d.due_on == date(2027, 1, 29) and row.board_reviews == 1
    with pytest.raises(InvalidInput, match="after today"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "record_board_review",
            actor="o",
            role="network-office",
            clock=FixedClock(date(2027, 1, 4)),
            params={"reviewed_on": "2027-01-05"},
        )


@pytest.mark.parametrize(
    ("month_of", "today", "due"),
    [
        (
            date(2026, 12, 11),
            date(2026, 12, 11),
            date(2026, 12, 31),
        ),  # 25, 28 Dec are bank holidays; 31 Dec is a Thursday
        (date(2027, 1, 1), date(2027, 1, 1), date(2027, 1, 29)),
        (date(2027, 7, 5), date(2027, 7, 5), date(2027, 7, 30)),  # Sat 31 Jul -> Fri 30 Jul
        (date(2027, 8, 2), date(2027, 8, 2), date(2027, 8, 31)),  # summer bank holiday is Mon 30 Aug
        (date(2026, 12, 1), date(2027, 1, 15), date(2027, 1, 29)),  # a past month rolls on to this one
    ],
)
def test_board_review_is_due_on_the_last_working_day_of_the_month(month_of: date, today: date, due: date) -> None:
    assert board_review_due(calendar_for("ENG"), month_of, today) == due


def _escalation_letter(session: Session) -> OutboxMessage:
    m = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.template == "perinatal_escalation", OutboxMessage.category == "letter")
        .order_by(OutboxMessage.id.desc())
    ).first()  # type: ignore[union-attr]
    assert m is not None
    return m


def test_configured_level_names_appear_in_letters_show_and_diagram(
    session: Session, raise_concern: Callable[..., PerinatalConcern], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERWATCH_PERINATAL_LEVELS", '{"lms_ics": "LMNS/ICB"}')
    monkeypatch.setenv("PEERWATCH_PERINATAL_FORUMS", '{"lms_ics": "ICB system quality group"}')
    row = raise_concern()
    raised = _escalation_letter(session)
    assert "LMNS/ICB to support implementation of the action plan" in " ".join(rendered(raised).body_text.split())
    engine.fire(
        session,
        "perinatal",
        row.id,
        "escalate",
        actor="nm",
        role=NM,
        clock=FixedClock(LATER),
        note="no improvement",
        params=LQSG,
    )
    session.commit()
    letter = _escalation_letter(session)
    assert rendered(letter).subject.endswith("escalated to LMNS/ICB level")
    assert "The ICB system quality group has decided to take the perinatal" in " ".join(
        rendered(letter).body_text.split()
    )
    assert "LMNS/ICB" in rendered(letter).body_html and "LMS/ICS" not in rendered(letter).body_text
    assert SPEC.next_step.get("lms_ics").startswith("LMNS/ICB (ICB system quality group)")
    assert SPEC.next_step.get("regional").endswith("de-escalate to LMNS/ICB")
    assert row.level_history[-1]["name"] == "LMNS/ICB"
    assert 'state "LMNS/ICB: ICB system quality group" as lms_ics' in documented("perinatal")
    monkeypatch.delenv("PEERWATCH_PERINATAL_LEVELS")
    assert SPEC.next_step.get("lms_ics").startswith("LMS/ICS ")  # read when shown, not frozen at import


def test_level_names_load_from_a_json_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "levels.json"
    path.write_text(json.dumps({"national": "National (MSSCG)", "regional": "Regional (NHSE region)"}))
    monkeypatch.setenv("PEERWATCH_PERINATAL_LEVELS", str(path))
    pol = PerinatalPolicy.from_env()
    assert dict(pol.levels) == {
        "provider": "Provider",
        "lms_ics": "LMS/ICS",
        "regional": "Regional (NHSE region)",
        "national": "National (MSSCG)",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"lms": "LMNS"}', "unknown level"),
        ('{"lms_ics": ', "not valid JSON"),
        ('{"lms_ics": ""}', "non-empty text"),
        ('["LMNS"]', "is neither a JSON object"),
        ("/no/such/file.json", "is neither a JSON object"),
    ],
)
def test_bad_level_configuration_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("PEERWATCH_PERINATAL_LEVELS", value)
    with pytest.raises(InvalidInput, match=message):
        PerinatalPolicy.from_env()


def test_cli_raise_and_escalate(
    db_url: str, session: Session, maternity: int, services: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    def run(*args: str) -> Any:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-12-11", "--json", *args])
        out = capsys.readouterr()
        return exit_.value.code, out

    code, out = run("perinatal", "raise", "--service", str(maternity), "--title", "Staffing gaps", "--actor", "Nia")
    assert code == 0, out.err
    created = json.loads(out.out)
    assert created["state"] == "provider" and created["deadlines"][0]["due_on"] == "2026-12-31"
    code, out = run(
        "perinatal",
        "fire",
        str(created["id"]),
        "escalate",
        "--actor",
        "Nia",
        "--role",
        NM,
        "--note",
        "no plan",
        "--param",
        "decided_on=2026-12-11",
    )
    assert code == 0 and json.loads(out.out)["state"] == "lms_ics"
    code, out = run("perinatal", "raise", "--service", str(services[MRH]), "--title", "x", "--actor", "Nia")
    assert code == 2 and "is a Major Trauma Centre service" in out.err


# ---------------------------------------------------------------- the forum decides, the office records (DOMAIN.md, issue 12 item 15)


def test_escalation_is_the_receiving_forums_decision_recorded_as_such(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    counts = _counts(session)
    with pytest.raises(InvalidInput, match="the local quality surveillance group decides this, not the network office"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            note="no improvement",
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="decided_on 2026-12-22 is after today"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            note="no improvement",
            params={"decided_on": "2026-12-22"},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="before the concern was raised"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            note="no improvement",
            params={"decided_on": "2026-12-01"},
        )
    session.rollback()
    assert _counts(session) == counts and session.get(PerinatalConcern, row.id).state == S.PROVIDER  # type: ignore[union-attr]
    out = engine.fire(
        session,
        "perinatal",
        row.id,
        "escalate",
        actor="office",
        role="network-office",
        clock=FixedClock(LATER),
        note="no improvement",
        params={"decided_on": "2026-12-17"},
    )
    session.commit()
    assert out.row.state == S.LMS_ICS
    assert out.row.forum_decisions == [
        {
            "level": "lms_ics",
            "forum": "local quality surveillance group",
            "decision": "escalate to LMS/ICS level",
            "decided_on": "2026-12-17",
            "agreed_with": None,
            "recorded_by": "office",
            "recorded_role": "network-office",
            "recorded_on": "2026-12-21",
            "note": "no improvement",
        }
    ]
    assert out.event.data["params"] == {"decided_on": "2026-12-17"}
    # the regional quality committee decides, with the regional chief nurse, who is named
    with pytest.raises(
        InvalidInput, match="the regional quality committee decides with the regional chief nurse: name them"
    ):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            note="worse",
            params={"decided_on": "2026-12-18"},
        )
    session.rollback()
    engine.fire(
        session,
        "perinatal",
        row.id,
        "escalate",
        actor="office",
        role="network-office",
        clock=FixedClock(LATER),
        note="worse",
        params=RQC,
    )
    session.commit()
    letter = session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "perinatal_escalation").order_by(OutboxMessage.id.desc())
    ).first()  # type: ignore[union-attr]
    assert letter is not None
    body = " ".join(rendered(letter).body_text.split())
    assert "The regional quality committee has decided to take the perinatal clinical quality concern" in body
    assert (
        "Forum: regional quality committee" in body and "Agreed with: Ms Rae Chief-Nurse, regional chief nurse" in body
    )
    assert "Decided on: 2026-12-18" in body and "Recorded by: office on 2026-12-21" in body
    html = rendered(letter).body_html
    assert "Ms Rae Chief-Nurse" in html
    # a regional referral is the committee's decision too
    with pytest.raises(InvalidInput, match="regional quality committee decides this"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "refer_to_jsog",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            note="x",
        )
    session.rollback()
    ref = engine.fire(
        session,
        "perinatal",
        row.id,
        "refer_to_jsog",
        actor="office",
        role="network-office",
        clock=FixedClock(LATER),
        note="system-wide",
        params=RQC,
    )
    session.commit()
    assert ref.row.referrals[-1]["by"] == "regional quality committee" and ref.row.referrals[-1]["on"] == "2026-12-18"
    assert [d["decision"] for d in ref.row.forum_decisions] == [
        "escalate to LMS/ICS level",
        "escalate to Regional level",
        "refer to the Joint Strategic Oversight Group (JSOG)",
    ]


def test_a_forum_decision_that_moves_nothing_is_recorded(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = _put_in(session, raise_concern(), S.LMS_ICS)
    with pytest.raises(InvalidInput, match="forum 'provider'"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "record_forum_decision",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            params={"forum": "provider", "decision": "x", "decided_on": "2026-12-18"},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="give what the forum decided"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "record_forum_decision",
            actor="office",
            role="network-office",
            clock=FixedClock(LATER),
            params={"forum": "regional", "decided_on": "2026-12-18"},
        )
    session.rollback()
    out = engine.fire(
        session,
        "perinatal",
        row.id,
        "record_forum_decision",
        actor="office",
        role="network-office",
        clock=FixedClock(LATER),
        params={"forum": "regional", "decision": "not to escalate: LMS support suffices", **RQC},
    )
    session.commit()
    assert out.row.state == S.LMS_ICS
    assert out.row.forum_decisions[-1]["forum"] == "regional quality committee"
    assert out.row.forum_decisions[-1]["decision"] == "not to escalate: LMS support suffices"
    assert out.event.trigger == "record_forum_decision" and out.event.actor == "office"


def test_cli_escalate_records_the_forum_decision(
    db_url: str, session: Session, maternity: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    def run(*args: str) -> Any:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-12-21", *args])
        return exit_.value.code, capsys.readouterr()

    code, out = run(
        "--json",
        "perinatal",
        "raise",
        "--service",
        str(maternity),
        "--title",
        "Staffing gaps",
        "--actor",
        "Nia",
        "--raised",
        "2026-12-11",
    )
    cid = str(json.loads(out.out)["id"])
    code, out = run("perinatal", "escalate", cid, "--decided-on", "2026-12-17", "--actor", "Nia", "--note", "no plan")
    assert code == 0 and "provider -> lms_ics" in out.out, out.err
    code, out = run("perinatal", "escalate", cid, "--decided-on", "2026-12-18", "--actor", "Nia", "--note", "worse")
    assert code == 2 and "regional chief nurse" in out.err
    code, out = run(
        "perinatal",
        "escalate",
        cid,
        "--decided-on",
        "2026-12-18",
        "--agreed-with",
        "Ms Rae, regional chief nurse",
        "--actor",
        "Nia",
        "--note",
        "worse",
    )
    assert code == 0 and "lms_ics -> regional" in out.out
    code, out = run(
        "perinatal",
        "forum-decision",
        cid,
        "--forum",
        "national",
        "--decision",
        "not to take it to national level",
        "--decided-on",
        "2026-12-18",
        "--actor",
        "Nia",
    )
    assert code == 0, out.err
    code, out = run("--json", "perinatal", "decisions", cid)
    rows = json.loads(out.out)
    assert [r["forum"] for r in rows] == [
        "local quality surveillance group",
        "regional quality committee",
        "Maternity Safety Surveillance and Concerns Group (MSSCG)",
    ]
