"""Concurrency: two chase sweeps, or a sweep and an operator, on the same rows.

Two sweeps run as separate processes, released together, on one database (the ``db_url``
fixture: a SQLite file, or PostgreSQL when ``PEERWATCH_DATABASE_URL`` points there), over 20
rounds with new work each round, while an operator fires on a due item with the version they
read. The version check decides: each due deadline is acted on exactly once (one audit event
per item, trigger and deadline), each letter is queued once, a loser skips with a log line,
and the audit log replays to every stored state.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, Deadline, DeadlineStatus, OutboxMessage, Risk
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine import sweep as sweep_module
from states.engine.sweep import run_sweep
from states.errors import StaleVersion
from states.roles import SYSTEM_ACTOR
from tests.factories import person
from tests.support_accounts import account

# Each round starts three processes (two sweepers, one person): ten rounds of eight items race
# the same rows each time; 20 rounds made it the slowest test of the suite (306 s on a loaded machine).
ROUNDS = 10
PER_ROUND = 8
ROOT = Path(__file__).resolve().parent.parent
FIRST_SWEEP = date(2027, 3, 1)
ASHA = "asha.patel@example.nhs.uk"

SWEEPER = textwrap.dedent("""
    import json, logging, os, sys
    from datetime import date
    import states.engine.sweep as sweep
    sweep.BATCH = 6  # small transactions, so the two sweepers interleave
    from models.db import get_engine, import_all_tables
    from states.clock import FixedClock
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    import_all_tables()
    db = get_engine(os.environ["PEERWATCH_DATABASE_URL"])
    print("ready", flush=True)
    sys.stdin.readline()  # released together
    s = sweep.run_sweep(db, FixedClock(date.fromisoformat(sys.argv[1])))
    print(json.dumps({"actions": len(s.actions), "skipped": [k["reason"] for k in s.skipped]}), flush=True)
""")

OPERATOR = textwrap.dedent("""
    import sys
    sys.stdin.readline()
    from cli.main import main
    main(sys.argv[1:])
""")


def _start(args: list[str], script: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, "PEERWATCH_DATABASE_URL": url},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _new_work(session: Session, services: dict[str, int], day: date) -> list[int]:
    """Risks whose responses are overdue on ``day`` and some whose reminders are due."""
    cal = calendar_for("ENG")
    names = sorted(services)
    ids = []
    for i in range(PER_ROUND):
        notified = cal.subtract_working_days(day, 21 if i % 3 else 22)  # SC: 20 working days to respond
        visit = notified - timedelta(days=3)
        row = Risk(
            service_id=services[names[i % len(names)]],
            level="SC",
            title=f"SC {day} {i}",
            identified_on=visit,
            visit_date=visit,
            state="new",
        )
        out = engine.create(
            session, "risk", row, "raise", principal=person("panel lead", "network-manager"), clock=FixedClock(visit)
        )
        engine.fire(
            session,
            "risk",
            out.row.id,
            "send_formal_notification",
            principal=person("Dr Asha Patel", "network-manager"),  # type: ignore[arg-type]
            clock=FixedClock(notified),
        )
        ids.append(out.row.id)
    session.commit()
    return ids  # type: ignore[return-value]


def check_invariants(session: Session, today: date) -> None:
    session.expire_all()
    events = list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))))
    by_deadline = Counter((e.kind, e.item_id, e.trigger, e.note) for e in events if e.actor == SYSTEM_ACTOR)
    assert not [k for k, n in by_deadline.items() if n > 1], "a deadline was acted on twice"
    per_version = Counter((e.kind, e.item_id, e.version) for e in events)
    assert not [k for k, n in per_version.items() if n > 1], "two transitions from one version"
    assert not list(
        session.exec(select(Deadline).where(Deadline.status == DeadlineStatus.OPEN, col(Deadline.due_on) < today))
    )
    keys = list(session.exec(select(OutboxMessage.idempotency_key)))
    assert len(keys) == len(set(keys))
    # a transition's letters are keyed by the version it made: each comes from exactly one audit event
    versions = {(e.kind, e.item_id, f"v{e.version}") for e in events}
    for key in keys:
        kind, item_id, step = key.split(":")[:3]
        if step.startswith("v"):
            assert (kind, int(item_id), step) in versions, key
    trail: dict[int, list[AuditEvent]] = {}
    for e in events:
        trail.setdefault(e.item_id, []).append(e)
    for row in session.exec(select(Risk)):
        state = "new"
        for e in trail[row.id]:  # type: ignore[index]
            assert e.from_state == state
            state = e.to_state
        assert (state, trail[row.id][-1].version) == (row.state, row.version)  # type: ignore[index]


def test_two_sweepers_and_an_operator_never_double_fire(
    db_url: str,
    db: Engine,
    training: None,
    session: Session,
    services: dict[str, int],
) -> None:
    """The operator is a named account acting ``--as`` it (a training database: the rounds run
    on simulated dates), the sweepers the system account."""
    account(db, "Dr Asha Patel", ("network-manager",), email=ASHA)
    day = FIRST_SWEEP
    skipped: list[str] = []
    logged = operator_won = operator_lost = 0
    for _ in range(ROUNDS):
        ids = _new_work(session, services, day)
        target = session.get(Risk, ids[1])
        assert target is not None and target.state == "awaiting_response"
        sweepers = [_start([day.isoformat()], SWEEPER, db_url) for _ in range(2)]
        operator = _start(
            [
                "--json",
                "--as-of",
                day.isoformat(),
                "--as",
                ASHA,
                "risk",
                "fire",
                str(target.id),
                "response_adequate",
                "--role",
                "network-manager",
                "--version",
                str(target.version),
            ],
            OPERATOR,
            db_url,
        )
        for p in sweepers:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in (*sweepers, operator):
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in sweepers:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            result = json.loads(out.strip().splitlines()[-1])
            skipped += result["skipped"]
            logged += err.count("skipped risk")
        out, err = operator.communicate(timeout=120)
        if operator.returncode == 0:
            operator_won += 1
        else:
            *banner, line = err.strip().splitlines()  # the training database says so on every output
            assert operator.returncode == 2 and line.startswith("error: ") and "Traceback" not in err, err
            assert [b for b in banner if "TRAINING DATABASE" not in b] == [], err
            operator_lost += 1
        check_invariants(session, day)
        session.expire_all()
        target = session.get(Risk, ids[1])
        events = [(e.trigger, e.actor) for e in engine.history(session, "risk", ids[1])]
        assert events[2:] in ([("response_adequate", "Dr Asha Patel")], [("no_response", SYSTEM_ACTOR)]), events
        assert (operator.returncode == 0) == (events[2][0] == "response_adequate")
        day = calendar_for("ENG").add_working_days(day, 3)
    assert len(skipped) == logged  # every loser says so in the log
    assert operator_won + operator_lost == ROUNDS


def test_sweep_loses_to_an_operator_who_commits_first(
    db: Engine,
    session: Session,
    services: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (rid, *_) = _new_work(session, services, FIRST_SWEEP)
    preload = sweep_module.preload

    def operator_moves_in(s: Session, deadlines: list[Deadline]) -> None:
        preload(s, deadlines)  # the sweep has read the row...
        if not any(d.item_id == rid for d in deadlines):
            return
        with Session(db) as other:  # ...then the operator commits a response
            engine.fire(
                other,
                "risk",
                rid,
                "response_adequate",
                principal=person("Dr Asha Patel", "network-manager"),
                clock=FixedClock(FIRST_SWEEP),
            )
            other.commit()

    monkeypatch.setattr(sweep_module, "preload", operator_moves_in)
    # On SQLite the sweep's batch takes the write lock first (BEGIN IMMEDIATE), so this
    # interleaving cannot happen there; without it, the row's version check must still decide.
    monkeypatch.setattr(sweep_module, "begin_write", lambda s: None)
    monkeypatch.setattr(sweep_module, "BATCH", 1)
    with caplog.at_level(logging.WARNING, logger="peerwatch.sweep"):
        summary = run_sweep(db, FixedClock(FIRST_SWEEP))
    lost = [s for s in summary.skipped if s["id"] == rid]
    # the loser sees the operator's change (stale version, or the new state refuses the trigger) and skips
    assert len(lost) == 1 and ("changed" in lost[0]["reason"] or "'monitoring'" in lost[0]["reason"]), lost
    assert any(f"skipped risk {rid} no_response" in r.getMessage() for r in caplog.records)
    session.expire_all()
    assert [e.trigger for e in engine.history(session, "risk", rid)] == [
        "raise",
        "send_formal_notification",
        "response_adequate",
    ]
    check_invariants(session, FIRST_SWEEP)


def test_operator_loses_to_a_sweep_that_commits_first(db: Engine, session: Session, services: dict[str, int]) -> None:
    (rid, *_) = _new_work(session, services, FIRST_SWEEP)
    row = session.get(Risk, rid)
    assert row is not None
    seen = row.version  # the operator reads the item...
    assert run_sweep(db, FixedClock(FIRST_SWEEP)).count("no_response") == PER_ROUND  # ...the sweep chases it
    session.expire_all()
    before = _counts(session)
    with pytest.raises(StaleVersion, match="changed since you read it"):
        engine.fire(
            session,
            "risk",
            rid,
            "response_adequate",
            principal=person("Dr Asha Patel", "network-manager"),
            clock=FixedClock(FIRST_SWEEP),
            expected_version=seen,
        )
    session.rollback()
    assert _counts(session) == before


def _counts(session: Session) -> dict[str, Any]:
    return {
        "events": len(session.exec(select(AuditEvent.id)).all()),
        "outbox": len(session.exec(select(OutboxMessage.id)).all()),
        "states": sorted((r.id, r.state, r.version) for r in session.exec(select(Risk))),
    }
