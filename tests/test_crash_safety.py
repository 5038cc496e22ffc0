"""Crash safety: a sweep and a dispatch killed with SIGKILL at random points, then restarted.

Each round copies a prepared database, starts the sweep (or the dispatch) in a child process
on it, kills the child after a seeded random delay, and runs the same step again to the end,
as a restarted worker would. Then:

- sweep: the result equals an uninterrupted sweep's (every item's state and version, every
  deadline's status, every outbox key); no deadline was acted on twice (audit events per
  item, trigger and deadline are unique); every passed deadline was handled; the audit log
  replays to every stored state;
- dispatch (folder transport, one ``.eml`` per Message-ID): no message was written twice
  (the child and the restart check the file before writing), none was lost (every sendable
  row is ``sent`` and its file exists), nothing is left ``sending``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from models import AuditEvent, Deadline, DeadlineStatus, OutboxMessage, Risk, get_engine, init_db
from models.tables import OutboxStatus
from notifications.dispatch import DispatchPolicy, dispatch
from notifications.transports import FolderTransport
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.roles import SYSTEM_ACTOR
from tests.factories import person

ROUNDS = 20
ITEMS = 60
SWEEP_DAY = date(2027, 1, 18)  # reminders due, responses and formal notifications overdue
DISPATCH_AT = datetime(2027, 1, 18, 13, tzinfo=UTC)
LEASE = DispatchPolicy().sending_lease_seconds
ROOT = Path(__file__).resolve().parent.parent

SWEEP_CHILD = textwrap.dedent("""
    import os, sys, time
    from datetime import date
    import states.engine.sweep as sweep
    sweep.BATCH = 7  # many small transactions, so a kill can land between or inside them
    from models.db import get_engine, import_all_tables
    from states.clock import FixedClock
    import_all_tables()
    db = get_engine(os.environ["PEERWATCH_DATABASE_URL"])
    print("ready", flush=True)
    sweep.run_sweep(db, FixedClock(date.fromisoformat(sys.argv[1])))
    print("done", flush=True)
""")

DISPATCH_CHILD = textwrap.dedent("""
    import os, sys
    from datetime import datetime
    from sqlmodel import Session
    from models.db import get_engine, import_all_tables
    from notifications.dispatch import dispatch
    from notifications.transports import FolderTransport
    from states.clock import FixedClock
    import_all_tables()

    class CheckingFolder(FolderTransport):  # as in the test module
        def send(self, message):
            path = self.path_for(str(message["Message-ID"]))
            if path.exists():
                self.folder.joinpath(f"DUPLICATE-{path.stem}").write_text("")
            super().send(message)

    db = get_engine(os.environ["PEERWATCH_DATABASE_URL"])
    print("ready", flush=True)
    with Session(db, expire_on_commit=False) as s:
        dispatch(s, CheckingFolder(sys.argv[1]), FixedClock(datetime.fromisoformat(sys.argv[2])))
    print("done", flush=True)
""")


class CheckingFolder(FolderTransport):
    """The folder transport, leaving a DUPLICATE marker if a message is ever written twice."""

    def send(self, message: Any) -> None:
        path = self.path_for(str(message["Message-ID"]))
        if path.exists():
            self.folder.joinpath(f"DUPLICATE-{path.stem}").write_text("")
        super().send(message)


def _build(path: Path) -> str:
    """A database with ITEMS serious concerns at three stages, as of SWEEP_DAY."""
    from tests.factories import reference_data as seed_reference

    url = f"sqlite:///{path}"
    db = init_db(url)
    with Session(db, expire_on_commit=False) as s:
        services = seed_reference(s)
        names = sorted(services)
        for i in range(ITEMS):
            visit = date(2026, 12, 11)
            row = Risk(
                service_id=services[names[i % len(names)]],
                level="SC",
                title=f"SC {i}",
                identified_on=visit,
                visit_date=visit,
                state="new",
            )
            out = engine.create(
                s, "risk", row, "raise", principal=person("panel lead", "network-manager"), clock=FixedClock(visit)
            )
            if i % 5:  # the rest are never notified: their formal notification is overdue
                notified = date(2026, 12, 14) if i % 2 else date(2026, 12, 18)  # response passed / reminder due
                engine.fire(
                    s,
                    "risk",
                    out.row.id,
                    "send_formal_notification",
                    principal=person("Dr Asha Patel", "network-manager"),
                    clock=FixedClock(notified),
                )
        s.commit()
    _close(url)
    return url


def _close(url: str) -> None:
    eng = get_engine(url)
    with eng.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    eng.dispose()


def _copy(template: Path, dest: Path) -> str:
    shutil.copy(template, dest)
    return f"sqlite:///{dest}"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The template, its uninterrupted sweep, and that sweep's outbox as the dispatch template."""
    folder = tmp_path_factory.mktemp("crash")
    template = folder / "template.db"
    _build(template)
    reference = folder / "reference.db"
    url = _copy(template, reference)
    summary = run_sweep(get_engine(url), FixedClock(SWEEP_DAY))
    assert {a["action"] for a in summary.actions} == {"reminded", "no_response", "overdue_notice"}
    _close(url)
    # When the sweep's work happens in a fresh child process, from "ready": its first commit
    # (the cold first batch loads the kinds and calendars) and its last. Kills are spread over
    # that window, so most land part-way through the work however fast the engine gets.
    timing = _copy(template, folder / "timing.db")
    first_commit, sweep_seconds = _commit_window(SWEEP_CHILD, timing, [SWEEP_DAY.isoformat()])
    _close(timing)
    yield {
        "template": template,
        "reference": reference,
        "first_commit": first_commit,
        "sweep_seconds": sweep_seconds,
        "folder": folder,
    }


def _commit_window(script: str, url: str, args: list[str]) -> tuple[float, float]:
    """Run ``script`` once in a fresh child, as the killed ones run: the seconds from "ready" to
    its first commit and to its last (measured there, cold, not in this warm test process)."""
    timed = script.replace(
        'print("ready", flush=True)',
        textwrap.dedent("""\
        import time
        from sqlmodel import Session
        commits, commit = [], Session.commit
        def timed(self):
            commit(self)
            commits.append(time.monotonic() - t0)
        Session.commit = timed
        print("ready", flush=True); t0 = time.monotonic()"""),
    ).replace('print("done", flush=True)', 'print("done", commits[0], commits[-1], flush=True)')
    proc = subprocess.run(
        [sys.executable, "-c", timed, *args],
        cwd=ROOT,
        env={**os.environ, "PEERWATCH_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    first, last = (float(x) for x in proc.stdout.split()[-2:])
    return first, last


def _children(runs: list[tuple[str, str, list[str], float]]) -> list[int]:
    """Start each (script, url, args, delay) at once, kill each with SIGKILL ``delay`` seconds
    after it is ready; their exit codes. Rounds run two at a time on separate databases."""
    procs = []
    for script, url, args, _ in runs:
        env = {**os.environ, "PEERWATCH_DATABASE_URL": url}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadlines = []
        for proc, (_, _, _, delay) in zip(procs, runs):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
            deadlines.append(time.monotonic() + delay)
        for proc, at in sorted(zip(procs, deadlines), key=lambda p: p[1]):
            time.sleep(max(0.0, at - time.monotonic()))
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.communicate(timeout=30)  # waits, and closes the pipes (an open one is a ResourceWarning)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    return [p.returncode for p in procs]


def _snapshot(url: str) -> dict[str, Any]:
    with Session(get_engine(url)) as s:
        return {
            "risks": sorted((r.id, r.state, r.version) for r in s.exec(select(Risk))),
            "deadlines": sorted(
                (d.id, d.kind, d.item_id, d.name, d.due_on, d.status, d.reminded) for d in s.exec(select(Deadline))
            ),
            "outbox": sorted(s.exec(select(OutboxMessage.idempotency_key)).all()),
            "events": sorted(
                (e.kind, e.item_id, e.trigger, e.from_state, e.to_state, e.version, e.note)
                for e in s.exec(select(AuditEvent))
            ),
        }


def check_sweep_invariants(url: str, today: date) -> None:
    with Session(get_engine(url)) as s:
        events = list(s.exec(select(AuditEvent).order_by(col(AuditEvent.id))))
        by_system = Counter((e.kind, e.item_id, e.trigger, e.note) for e in events if e.actor == SYSTEM_ACTOR)
        assert all(n == 1 for n in by_system.values()), [k for k, n in by_system.items() if n > 1]
        open_ = list(s.exec(select(Deadline).where(Deadline.status == DeadlineStatus.OPEN)))
        assert not [d for d in open_ if d.due_on < today], "a passed deadline was not handled"
        assert not [d for d in open_ if d.remind_on and d.remind_on <= today <= d.due_on and not d.reminded], (
            "a reminder was missed"
        )
        keys = list(s.exec(select(OutboxMessage.idempotency_key)))
        assert len(keys) == len(set(keys))
        for d in s.exec(select(Deadline).where(col(Deadline.reminded).is_(True))):
            assert s.exec(
                select(OutboxMessage.id).where(
                    col(OutboxMessage.idempotency_key).contains(f":deadline{d.id}:reminder:")
                )
            ).first()
        # the audit log replays to every stored state
        risks = {r.id: r for r in s.exec(select(Risk))}
        trail: dict[int, list[AuditEvent]] = {}
        for e in events:
            trail.setdefault(e.item_id, []).append(e)
        assert set(trail) == set(risks)
        for rid, row in risks.items():
            state = "new"
            for e in trail[rid]:
                assert e.from_state == state, f"risk {rid}: event {e.id} from {e.from_state}, expected {state}"
                state = e.to_state
            assert state == row.state
            versions = [e.version for e in trail[rid]]
            assert versions == sorted(set(versions)) and versions[-1] == row.version


def _restart_sweep(n: int, url: str, template: dict[str, Any], reference: dict[str, Any]) -> bool:
    """Run the killed round's sweep again to the end and check it; True if the kill was mid-work."""
    after_kill = _snapshot(url)
    mid_work = after_kill not in (template, reference)
    run_sweep(get_engine(url), FixedClock(SWEEP_DAY))  # the restart
    check_sweep_invariants(url, SWEEP_DAY)
    assert _snapshot(url) == reference, f"round {n}: the restarted sweep differs from an uninterrupted one"
    assert run_sweep(get_engine(url), FixedClock(SWEEP_DAY)).actions == []  # and again: nothing left
    get_engine(url).dispose()
    return mid_work


def test_sweep_killed_at_random_points_fires_every_step_exactly_once(prepared: dict[str, Any]) -> None:
    rng = random.Random(18012027)
    reference = _snapshot(f"sqlite:///{prepared['reference']}")
    template = _snapshot(f"sqlite:///{prepared['template']}")
    killed_mid_work = 0
    for wave in range(0, ROUNDS, 2):
        rounds = (wave, wave + 1)
        urls = [_copy(prepared["template"], prepared["folder"] / f"sweep-{n}.db") for n in rounds]
        window = (prepared["first_commit"] * 0.5, prepared["sweep_seconds"] * 1.1)
        codes = _children([(SWEEP_CHILD, url, [SWEEP_DAY.isoformat()], rng.uniform(*window)) for url in urls])
        assert set(codes) <= {-signal.SIGKILL, 0}  # killed, or (a late kill) finished first
        for n, url in zip(rounds, urls):
            killed_mid_work += _restart_sweep(n, url, template, reference)
    assert killed_mid_work >= ROUNDS // 4, f"only {killed_mid_work} kills landed part-way through the sweep"


def _folder_state(folder: Path) -> tuple[set[str], list[str]]:
    names = [p.name for p in folder.iterdir()] if folder.exists() else []
    return {n[:-4] for n in names if n.endswith(".eml")}, [n for n in names if n.startswith("DUPLICATE-")]


def _restart_dispatch(n: int, url: str, out: Path, total: int) -> tuple[bool, int]:
    """Dispatch the killed round again, as a restarted worker, and check every letter went once."""
    written, _ = _folder_state(out)
    mid_work = 0 < len(written) < total
    restart = FixedClock(DISPATCH_AT + timedelta(seconds=LEASE + 1))  # the interrupted claim's lease has run out
    with Session(get_engine(url), expire_on_commit=False) as s:
        summary = dispatch(s, CheckingFolder(out), restart)
        assert summary.in_doubt == 0  # the folder can always tell
        assert dispatch(s, CheckingFolder(out), restart).sent_messages == 0
        rows = list(s.exec(select(OutboxMessage).where(col(OutboxMessage.status) != OutboxStatus.UNDELIVERABLE)))
    written, duplicates = _folder_state(out)
    assert duplicates == [], f"round {n}: written twice: {duplicates}"
    assert {r.status for r in rows} == {OutboxStatus.SENT}, f"round {n}: not all sent"
    assert {FolderTransport(out).path_for(r.message_id or "").stem for r in rows} == written, (
        f"round {n}: rows and files disagree"
    )
    get_engine(url).dispose()
    return mid_work, summary.recovered_sent + summary.requeued


def test_dispatch_killed_at_random_points_sends_every_letter_once(prepared: dict[str, Any]) -> None:
    rng = random.Random(13012027)
    template = prepared["reference"]  # the swept database: letters, chases, reminders queued
    probe = _copy(template, prepared["folder"] / "probe.db")
    with Session(get_engine(probe), expire_on_commit=False) as s:
        first = dispatch(s, CheckingFolder(prepared["folder"] / "probe-out"), FixedClock(DISPATCH_AT))
    assert first.sent_messages > 50
    # The window of the work as a fresh child does it (cold: its first claim, its last mark sent);
    # timed in this warm process it was far shorter, and the kills all landed before any claim.
    timing = _copy(template, prepared["folder"] / "dispatch-timing.db")
    opened, closed = _commit_window(
        DISPATCH_CHILD, timing, [str(prepared["folder"] / "timing-out"), DISPATCH_AT.isoformat()]
    )
    killed_mid_work = recovered = 0
    for wave in range(0, ROUNDS, 2):
        rounds = (wave, wave + 1)
        urls = [_copy(template, prepared["folder"] / f"dispatch-{n}.db") for n in rounds]
        outs = [prepared["folder"] / f"out-{n}" for n in rounds]
        codes = _children(
            [
                (DISPATCH_CHILD, url, [str(out), DISPATCH_AT.isoformat()], rng.uniform(opened * 0.5, closed * 1.05))
                for url, out in zip(urls, outs)
            ]
        )
        assert set(codes) <= {-signal.SIGKILL, 0}  # killed, or (a late kill) finished first
        for n, url, out in zip(rounds, urls, outs):
            mid, fixed = _restart_dispatch(n, url, out, first.sent_messages)
            killed_mid_work += mid
            recovered += fixed
    assert killed_mid_work >= ROUNDS // 4, f"only {killed_mid_work} kills landed part-way through the dispatch"
    assert recovered > 0, "no kill landed between claim and sent: the recovery was never exercised"
