"""The complaint machine, table-driven, and complaints from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models import Complaint, Deadline
from states import engine
from states.clock import FixedClock
from states.errors import InvalidTrigger
from states.machines.spec import CLOCK_TRIGGERS
from states.principal import Principal
from tests.factories import person
from tests.support_complaints import (
    COMPLAINANT,
    MRH,
    NM,
    NOT_ACCEPTABLE,
    OFFICE,
    OPERATOR,
    OUTCOME,
    RECEIVED,
    RL,
    SPEC,
    SUMMARY,
    C,
    letters_to,
    network,
    row_counts,
)

# --------------------------------------------------------------------------- the machine, table-driven

DAY = date(2027, 1, 6)
OPEN_STATES = ("received", "acknowledged", "investigated")

# (source state, trigger, role, setup, expected destination, letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (C.NEW, "receive", OFFICE, {}, C.RECEIVED, set()),
    (C.NEW, "receive", OPERATOR, {}, C.RECEIVED, set()),
    (C.RECEIVED, "classify", OFFICE, {"params": {"about_person": "yes"}}, C.RECEIVED, set()),
    (C.ACKNOWLEDGED, "classify", NM, {"params": {"about_person": "no"}}, C.ACKNOWLEDGED, set()),
    (C.RECEIVED, "acknowledge", OFFICE, {}, C.ACKNOWLEDGED, {"complaint_acknowledgement"}),
    (C.ACKNOWLEDGED, "investigate", RL, {}, C.INVESTIGATED, set()),
    (C.INVESTIGATED, "resolve", NM, {"note": OUTCOME}, C.RESOLVED, {"complaint_outcome"}),
    (
        C.RECEIVED,
        "close_not_acceptable",
        NM,
        {"about_person": True, "note": NOT_ACCEPTABLE},
        C.NOT_ACCEPTABLE,
        {"complaint_not_acceptable"},
    ),
    (
        C.ACKNOWLEDGED,
        "close_not_acceptable",
        RL,
        {"about_person": True, "note": NOT_ACCEPTABLE},
        C.NOT_ACCEPTABLE,
        {"complaint_not_acceptable"},
    ),
    *[(s, "pause_clock", NM, {"deadline": "open", "note": "complainant on leave"}, s, set()) for s in OPEN_STATES],
    *[(s, "resume_clock", OPERATOR, {"deadline": "paused", "note": "back"}, s, set()) for s in OPEN_STATES],
    *[
        (s, "extend_deadline", RL, {"deadline": "open", "note": "agreed", "params": {"days": 3}}, s, set())
        for s in OPEN_STATES
    ],
]


def _put_in(session: Session, services: dict[str, int], state: str, setup: dict[str, Any] | None = None) -> Complaint:
    """Test setup shortcut: place a complaint (conduct, owned by the Network Manager) in a given state."""
    setup = setup or {}
    at = FixedClock(RECEIVED).now()
    row = Complaint(
        network_id=network(session).id,
        service_id=services[MRH],
        category="conduct",  # type: ignore[arg-type]
        owner_role="" if state == C.NEW else NM,
        complainant_name=COMPLAINANT[0],
        complainant_email=COMPLAINANT[1],
        summary=SUMMARY,
        received_on=RECEIVED,
        about_person=bool(setup.get("about_person")),
        state=str(state),
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    session.flush()
    if "deadline" in setup:
        paused = setup["deadline"] == "paused"
        session.add(
            Deadline(
                kind="complaint",
                item_id=row.id,
                name="resolution",
                due_on=date(2027, 1, 25),  # type: ignore[arg-type]
                status="paused" if paused else "open",
                paused_remaining=5 if paused else None,
            )
        )
    session.commit()
    return row


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    session: Session,
    services: dict[str, int],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    row = _put_in(session, services, source, setup)
    version = row.version
    out = engine.fire(
        session,
        "complaint",
        row.id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(DAY),  # type: ignore[arg-type]
        note=setup.get("note"),
        params=setup.get("params"),
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor, out.event.role) == (
        source,
        dest,
        trigger,
        "tester",
        role,
    )
    assert {m.template for m in letters_to(session, row.id)} == letters  # type: ignore[arg-type]


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE}
REFUSED = [(s.value, t) for s in C for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in C for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED
    assert {p for p in ALLOWED if p[1] in CLOCK_TRIGGERS} == {(s, t) for s in OPEN_STATES for t in CLOCK_TRIGGERS}
    assert SPEC.allowed_from("new") == ["receive"]
    assert SPEC.terminal == {"resolved", "not_acceptable"}


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    row = _put_in(session, services, state, {"about_person": True, "deadline": "open"})
    version, counts = row.version, row_counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "complaint",
            row.id,
            trigger,
            principal=person("tester", NM),
            clock=FixedClock(DAY),
            note="n",  # type: ignore[arg-type]
            params={"about_person": "yes", "days": 1},
        )
    session.rollback()
    fresh = session.get(Complaint, row.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert row_counts(session) == counts


# --------------------------------------------------------------------------- the command line

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))


def test_cli_complaint_receive_refuses_an_unknown_category(
    db_url: str, db: Engine, me: Principal, services: dict[str, int], tmp_path: Path
) -> None:
    """Run as the test's OS account (peer authentication, ``me``), now: one error line, nothing stored."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PEERWATCH_AS_OF", "PEERWATCH_MAIL")}
    env["PEERWATCH_DATABASE_URL"] = db_url
    proc = subprocess.run(
        [
            PEERWATCH,
            "complaint",
            "receive",
            "--network",
            "WMTN",
            "--category",
            "gossip",
            "--from-name",
            COMPLAINANT[0],
            "--from-email",
            COMPLAINANT[1],
            "--summary",
            SUMMARY,
            "--service",
            str(services[MRH]),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "category 'gossip'" in lines[0] and "arrangements" in lines[0]
    with Session(db) as s:
        assert row_counts(s) == (0, 0, 0, 0)
