"""Backup and restore (issue 12 item 16): ``peerwatch backup`` during a running chase sweep in
another process, restored into a new database whose audit chain verifies; a tampered backup
refused with nothing changed; on PostgreSQL the pg_dump path (the lead's PostgreSQL pass)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session, select

from models import AuditEvent, Risk
from models.db import dispose_engine, migrate
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock, SystemClock
from states.engine import verify_chain
from states.engine.audit import Event, check_chain, event_hash, record_change
from states.principal import Principal
from states.services.backup import BackupRefused, backup, restore
from tests import support_accounts
from tests.databases import ON_POSTGRES, drop, fresh_url, schema_of, skip_on_postgres
from tests.factories import person

ROOT = Path(__file__).resolve().parent.parent
PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))
VISIT = date(2027, 3, 1)  # Mon
NOTIFIED = date(2027, 3, 3)
SWEEP_DAY = calendar_for("ENG").add_working_days(NOTIFIED, 21)  # every response (20 working days) overdue
ITEMS = 300

# A real chase sweep in its own process, committing in small batches and slowed at each commit
# (so the backup lands in the middle of it); it says when it starts and what it did.
SWEEPER = textwrap.dedent("""
    import json, os, sys, time
    from datetime import date
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    import states.engine.sweep as sweep
    sweep.BATCH = 10
    event.listen(Engine, "commit", lambda conn: time.sleep(0.05))
    from models.db import get_engine, import_all_tables
    from states.clock import FixedClock
    import_all_tables()
    db = get_engine(os.environ["PEERWATCH_DATABASE_URL"])
    print("ready", flush=True)
    s = sweep.run_sweep(db, FixedClock(date.fromisoformat(sys.argv[1])))
    print(json.dumps({"actions": len(s.actions)}), flush=True)
""")


def _work(session: Session, services: dict[str, int]) -> None:
    """ITEMS serious concerns notified to their Trusts and never answered: on SWEEP_DAY the
    sweep chases every one (a transition each, with its audit event)."""
    names = sorted(services)
    rows = [
        Risk(
            service_id=services[names[i % len(names)]],
            level="SC",
            title=f"SC {i}",
            identified_on=VISIT,
            visit_date=VISIT,
            state="new",
        )
        for i in range(ITEMS)
    ]
    engine.create_many(
        session, "risk", rows, "raise", principal=person("panel lead", "network-manager"), clock=FixedClock(VISIT)
    )  # type: ignore[arg-type]
    engine.fire_many(
        session,
        [engine.Request("risk", r.id, "send_formal_notification") for r in rows],  # type: ignore[arg-type]
        principal=person("Dr Asha Patel", "network-manager"),
        clock=FixedClock(NOTIFIED),
    )
    session.commit()


def _events(url: str) -> int:
    e = create_engine(url, poolclass=NullPool)
    try:
        with e.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM auditevent")).scalar() or 0)
    finally:
        e.dispose()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PEERWATCH_DATABASE_URL": url}
    env.pop("PEERWATCH_AS_OF", None)
    return subprocess.run([PEERWATCH, *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def _verify(url: str) -> tuple[int, str | None]:
    e = create_engine(url, poolclass=NullPool)
    try:
        with Session(e) as s:
            checked, _, problem = verify_chain(s)
            head = s.execute(text("SELECT events FROM audit_head WHERE id = 1")).scalar()
            assert head == checked
            return checked, problem
    finally:
        e.dispose()


@skip_on_postgres("the SQLite online backup API under a concurrent sweep; the pg_dump path is tested below")
def test_backup_during_a_running_sweep_restores_into_a_new_database_and_verifies(
    db_url: str, db: Engine, training: None, me: Principal, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    """(A training database, so the sweep may run on the story's dates, ahead of the server's clock.)"""
    _work(session, services)
    before = _events(db_url)
    sweeper = subprocess.Popen(
        [sys.executable, "-c", SWEEPER, SWEEP_DAY.isoformat()],
        cwd=ROOT,
        env={**os.environ, "PEERWATCH_DATABASE_URL": db_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sweeper.stdout is not None and sweeper.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        while _events(db_url) < before + 30:  # the sweep has committed a few batches
            assert sweeper.poll() is None and time.monotonic() < deadline, (
                sweeper.stderr.read() if sweeper.stderr else ""
            )
            time.sleep(0.05)
        target = tmp_path / "during-the-sweep.peerwatch-backup"
        proc = _cli(db_url, "--json", "backup", str(target))
        still_running = sweeper.poll() is None
        assert proc.returncode == 0, proc.stderr
        written = json.loads(proc.stdout)
        out, err = sweeper.communicate(timeout=300)
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
    assert sweeper.returncode == 0, err
    assert still_running, "the sweep ended before the backup did: it was not taken during the sweep"
    after = _events(db_url)
    assert json.loads(out.splitlines()[-1])["actions"] >= ITEMS
    assert before < written["audit_events"] < after  # a snapshot from the middle of the sweep

    new = fresh_url(tmp_path)
    proc = _cli(new, "--json", "restore", str(target))
    assert proc.returncode == 0, proc.stderr
    restored = json.loads(proc.stdout)
    assert restored["audit_events"] == written["audit_events"] and restored["revision"] == written["revision"]
    assert _verify(new) == (written["audit_events"], None)
    # The restored database is a working one: every risk's state is where its audit trail says.
    e = create_engine(new, poolclass=NullPool)
    try:
        with Session(e) as s:
            last = {}
            for ev in s.exec(select(AuditEvent).where(AuditEvent.kind == "risk").order_by(AuditEvent.id)):  # type: ignore[arg-type]
                last[ev.item_id] = (ev.to_state, ev.version)
            rows = {r.id: (r.state, r.version) for r in s.exec(select(Risk))}
            assert rows == last and len(rows) == ITEMS
    finally:
        e.dispose()
    # And the sweep, run again on the restored copy, finishes the work the backup had not seen
    # (run from the command line by a mapped account: no mapping, no write).
    mapped = create_engine(new, poolclass=NullPool)
    support_accounts.me(mapped)
    mapped.dispose()
    proc = _cli(new, "--as-of", SWEEP_DAY.isoformat(), "chase")
    assert proc.returncode == 0, proc.stderr
    assert _verify(new)[1] is None and _events(new) == after


def _tamper(path: Path) -> None:
    """What someone editing a copy would do: lift the append-only guard, change one event."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP TRIGGER audit_event_no_update")
        conn.execute("UPDATE auditevent SET note = 'nothing to see here' WHERE id = 2")
        conn.commit()
    finally:
        conn.close()


@skip_on_postgres("tampers with a SQLite backup file")
def test_a_tampered_backup_is_refused_and_nothing_changes(
    db_url: str, db: Engine, me: Principal, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    _work(session, services)
    good = tmp_path / "good.backup"
    assert backup(db_url, good)["audit_events"] == 2 * ITEMS
    bad = tmp_path / "bad.backup"
    bad.write_bytes(good.read_bytes())
    _tamper(bad)

    # Into a new database: refused, and no database is left behind.
    new = fresh_url(tmp_path)
    proc = _cli(new, "restore", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: the backup's audit chain does not verify after 1 good event(s): "
        "audit event 2 (risk 2 raise) was changed after it was written, or key 'test-1' is not the one it was signed with"
    ]
    assert not Path(new.removeprefix("sqlite:///")).exists()

    # Over an existing database, even with --replace: refused, the database as it was.
    other = fresh_url(tmp_path)
    assert _cli(other, "restore", str(good)).returncode == 0
    e = create_engine(other, poolclass=NullPool)
    with e.connect() as conn:
        before = [tuple(r) for r in conn.execute(text("SELECT id, hash, note FROM auditevent ORDER BY id"))]
    with pytest.raises(BackupRefused, match="audit event 2"):
        restore(other, bad, replace=True)
    with e.connect() as conn:
        assert [tuple(r) for r in conn.execute(text("SELECT id, hash, note FROM auditevent ORDER BY id"))] == before
    e.dispose()
    assert _verify(other) == (2 * ITEMS, None)

    # Not a backup at all, or a truncated one: one clear error each.
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(BackupRefused, match="not a SQLite backup"):
        restore(fresh_url(tmp_path), junk)
    cut = tmp_path / "cut.backup"
    cut.write_bytes(good.read_bytes()[:8192])
    with pytest.raises(BackupRefused):
        restore(fresh_url(tmp_path), cut)
    # A backup never overwrites a file.
    proc = _cli(db_url, "backup", str(good))
    assert proc.returncode == 2 and "exists" in proc.stderr


@skip_on_postgres("restores SQLite backup files")
def test_without_the_audit_key_a_restore_is_refused_and_a_backup_says_it_is_unverified(
    db_url: str,
    db: Engine,
    me: Principal,
    session: Session,
    services: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _work(session, services)
    good = tmp_path / "good.backup"
    assert backup(db_url, good)["audit_events"] == 2 * ITEMS
    monkeypatch.delenv("PEERWATCH_AUDIT_KEY")
    monkeypatch.setenv("PEERWATCH_AUDIT_KEY_FILE", str(tmp_path / "no.key"))
    new = fresh_url(tmp_path)
    with pytest.raises(BackupRefused, match="audit chain cannot be verified: cannot verify the audit chain: no audit"):
        restore(new, good)
    assert not Path(new.removeprefix("sqlite:///")).exists()
    written = backup(db_url, tmp_path / "unverified.backup")
    assert "audit_events" not in written and "no audit key" in written["audit_unverified"]
    proc = _cli(db_url, "backup", str(tmp_path / "again.backup"))
    assert proc.returncode == 0 and "verified" not in proc.stdout  # nothing claims a check it did not make


@skip_on_postgres("an old release's SQLite backup file")
def test_a_backup_from_before_the_keyed_chain_restores_and_its_events_verify_as_unkeyed(tmp_path: Path) -> None:
    """A backup made by a release before revision 0011 (plain SHA-256 hashes, no key ids) is
    migrated where nobody reads it, verified as an unkeyed chain, and restored."""
    old_url = f"sqlite:///{tmp_path}/old.db"
    migrate(old_url, "0010")
    prev, rows = "", []
    for n in (1, 2):
        e = Event("contact", 1, datetime(2026, 11, n, 9, tzinfo=UTC), "Dr Asha Patel", "network-manager", "edit",
                  None, "active", None, n, {})  # fmt: skip
        e.prev_hash, e.hash = prev, event_hash(prev, e)
        prev = e.hash
        rows.append({k: v for k, v in e.row().items() if k not in ("user_id", "recorded_at", "key_id")})
    columns = [sa.column(k) for k in rows[0] if k not in ("at", "data")]
    old = sa.table("auditevent", *columns, sa.column("at", sa.DateTime()), sa.column("data", sa.JSON()))
    with create_engine(old_url, poolclass=NullPool).begin() as conn:
        conn.execute(old.insert(), [{**r, "at": r["at"].replace(tzinfo=None)} for r in rows])
        conn.execute(text("INSERT INTO audit_head (id, hash, events) VALUES (1, :h, 2)"), {"h": prev})
    dispose_engine(old_url)
    new = fresh_url(tmp_path)
    out = restore(new, Path(f"{tmp_path}/old.db"))
    assert (out["audit_events"], out["audit_unkeyed"], out["verified_events_before_restore"]) == (2, 2, 2)
    e = create_engine(new, poolclass=NullPool)
    with Session(e) as s:
        assert check_chain(s).unsealed  # until a keyed event seals them
        record_change(s, "contact", 1, "edit", principal=person("Dr Asha Patel", "network-manager"),
                      clock=FixedClock(date(2026, 12, 1)), state="active")  # fmt: skip
        s.commit()
        report = check_chain(s)
    e.dispose()
    assert (report.checked, report.unkeyed, report.problem) == (3, 2, None)


def test_a_plain_copy_of_a_live_database_can_miss_what_the_backup_keeps(
    db_url: str, db: Engine, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    """Why the backup API: with a connection open (WAL not yet checkpointed into the file) a
    file copy misses committed audit events; the backup has every one."""
    if ON_POSTGRES:
        pytest.skip("SQLite only: WAL file copies")
    path = Path(db_url.removeprefix("sqlite:///"))
    holder = sqlite3.connect(path)  # a reader keeps the WAL from being checkpointed away
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM auditevent").fetchone()
    try:
        _work(session, services)
        copy = tmp_path / "copy.db"
        copy.write_bytes(path.read_bytes())
        lost = (
            sqlite3.connect(copy).execute("SELECT count(*) FROM sqlite_master WHERE name = 'auditevent'").fetchone()[0]
        )
        count = sqlite3.connect(copy).execute("SELECT count(*) FROM auditevent").fetchone()[0] if lost else 0
        assert count < 2 * ITEMS
        assert backup(db_url, tmp_path / "b.backup")["audit_events"] == 2 * ITEMS
    finally:
        holder.rollback()
        holder.close()


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only: pg_dump and pg_restore (PEERWATCH_TEST_DATABASE)")
def test_postgresql_backup_is_a_pg_dump_of_the_schema_and_restores_verified(
    db_url: str, db: Engine, me: Principal, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    _work(session, services)
    events = _events(db_url)
    target = tmp_path / "pg.backup"
    proc = _cli(db_url, "--json", "backup", str(target))
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)
    assert written["database"] == "postgresql" and written["schema"] == schema_of(db_url)
    assert target.read_bytes()[:5] == b"PGDMP"

    # A schema that already holds tables is refused, nothing changed.
    occupied = fresh_url(tmp_path)
    from models import init_db

    init_db(occupied)
    with pytest.raises(Exception, match="already holds tables"):
        restore(occupied, target)
    drop(occupied)

    # The loss: the source schema is gone; the backup comes back into a new schema, verified.
    session.close()
    drop(db_url)
    new = fresh_url(tmp_path)
    try:
        proc = _cli(new, "--json", "restore", str(target))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["audit_events"] == events
        assert _verify(new) == (events, None)
        with create_engine(new, poolclass=NullPool).connect() as conn:
            assert conn.execute(select(func.count()).select_from(Risk.__table__)).scalar() == ITEMS  # type: ignore[attr-defined]
    finally:
        drop(new)


def test_a_restore_ends_every_session_the_backup_brought_back(db_url: str, db: Engine, tmp_path: Path) -> None:
    """A session used just before the backup (within the idle timeout of the restore) would be
    accepted again, and one signed out after the backup would come back to life: the restore
    ends them all, and everyone signs in anew."""
    from states.services import signin  # lazy: only this test signs in
    from tests.support_web import sign_in_as

    client = sign_in_as(db_url, db, support_accounts.account(db, "Dr Asha Patel", ("network-manager",)))
    token = client.cookies["peerwatch_session"]
    with Session(db) as s:
        assert signin.session_principal(s, token, SystemClock()) is not None
    saved = tmp_path / "with-a-session.backup"
    backup(db_url, saved)
    if ON_POSTGRES:  # a dump comes back under its own schema's name: the source is gone first
        db.dispose()
        drop(db_url)

    new = fresh_url(tmp_path)
    try:
        out = restore(new, saved)
        assert out["sessions_ended"] == 1
        dispose_engine(new)
        back = create_engine(new, poolclass=NullPool)
        try:
            with Session(back) as s:
                assert signin.session_principal(s, token, SystemClock()) is None
                reasons = s.execute(text("SELECT ended_reason FROM web_session")).scalars().all()
            assert reasons == ["restored"]
        finally:
            back.dispose()
    finally:
        drop(new)
