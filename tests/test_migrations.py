"""Alembic migrations: they build the schema the models describe, on SQLite and PostgreSQL.

If a model changes without a migration, ``test_models_and_migrations_agree`` fails and names
the difference. Add a revision with ``models.db.autogenerate`` (docs/scale.md, "Schema changes").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, select

from models import Network, get_engine, init_db
from models.db import alembic_config, import_all_tables, migrate, migration_scripts
from models.tables import AuditHead
from models.types import UTCDateTime
from states.clock import FixedClock
from states.engine.audit import Event, check_chain, event_hash, record_change
from tests.databases import ON_POSTGRES, drop, fresh_url
from tests.factories import person
from tests.support_cli import cli_env, ok, run

# The audit table's columns before revision 0011 (no user_id, recorded_at, key_id).
_OLD_AUDIT = sa.table(
    "auditevent",
    *(sa.column(name) for name in ("kind", "item_id", "actor", "role", "trigger", "from_state", "to_state")),
    *(sa.column(name) for name in ("note", "version", "prev_hash", "hash")),
    sa.column("at", UTCDateTime()),
    sa.column("data", sa.JSON()),
)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Unlike conftest's (a pooled schema at head on PostgreSQL): always truly empty."""
    url = fresh_url(tmp_path)
    monkeypatch.setenv("PEERWATCH_DATABASE_URL", url)
    yield url
    drop(url)


def _head() -> str:
    head = migration_scripts().get_current_head()
    assert head is not None
    return head


def _current(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _differences(url: str) -> list[object]:
    import_all_tables()
    with get_engine(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)


def test_migrate_from_empty_reaches_head_and_matches_the_models(db_url: str) -> None:
    """``migrate`` on an empty database (SQLite, or PostgreSQL when PEERWATCH_TEST_DATABASE is
    set) runs every revision; the result is exactly the models' schema."""
    migrate(db_url)
    assert _current(db_url) == _head()
    diffs = _differences(db_url)
    assert diffs == [], "models and migrations disagree; regenerate the migration (docs/scale.md):\n" + "\n".join(
        map(str, diffs)
    )
    with get_engine(db_url).connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"risk", "deadline", "auditevent", "outboxmessage", "alembic_version"} <= tables


def test_init_db_fast_path_is_stamped_and_identical(db_url: str) -> None:
    """init_db on a brand-new database uses create_all + stamp: same head, same schema."""
    init_db(db_url)
    assert _current(db_url) == _head()
    assert _differences(db_url) == []


def test_head_revision_constant_is_alembics_head() -> None:
    """init_db's no-Alembic check compares with HEAD_REVISION: it must be the scripts' head."""
    from models.db import HEAD_REVISION

    assert _head() == HEAD_REVISION, "a migration was added: set models.db.HEAD_REVISION to its revision"


def test_init_db_at_head_does_not_import_alembic(db_url: str, tmp_path: Path) -> None:
    """A database already at head is recognised with one plain query (CLI start-up time)."""
    import subprocess
    import sys

    init_db(db_url)
    code = (
        "import sys; from models import init_db; init_db(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, db_url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_init_db_on_an_existing_database_upgrades_and_keeps_rows(db_url: str) -> None:
    migrate(db_url, "base")  # nothing yet, but alembic_version exists: not "brand new"
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE keepme (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO keepme (id) VALUES (7)"))
    init_db(db_url)  # not empty -> real migrations
    assert _current(db_url) == _head()
    with Session(engine) as s:
        s.add(Network(code="X", name="x"))
        s.commit()
        assert [n.code for n in s.exec(select(Network))] == ["X"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM keepme")).scalar_one() == 7
    init_db(db_url)  # idempotent
    assert _current(db_url) == _head()


def test_0003_closes_the_fired_deadlines_already_answered(db_url: str) -> None:
    """Before 0003 an overdue letter left a deadline 'fired' for ever; upgrading closes those whose
    item moved on (outside the rule's run-through states) or that a newer one replaced."""
    from datetime import date, datetime

    from models import Deadline

    migrate(db_url, "0002")
    t0, later = datetime(2027, 1, 4, 9, tzinfo=UTC), datetime(2027, 1, 20, 9, tzinfo=UTC)

    def deadline(kind: str, item: int, name: str) -> Deadline:
        return Deadline(kind=kind, item_id=item, name=name, due_on=date(2027, 1, 11), status="fired", created_at=t0)

    def moved(item: int, kind: str, to: str, trigger: str = "t", source: str = "before") -> dict[str, object]:
        return {"kind": kind, "item_id": item, "at": later, "actor": "a", "role": "network-manager",
                "trigger": trigger, "from_state": source, "to_state": to, "version": 2, "data": {},
                "prev_hash": "", "hash": ""}  # fmt: skip

    with Session(get_engine(db_url)) as s:
        rows = {
            "answered": deadline("risk", 1, "formal_notification"),
            "still owed": deadline("risk", 2, "formal_notification"),
            "replaced": deadline("risk", 3, "monitoring_review"),
            "runs through": deadline("appeal", 4, "appeal_result"),
            "internal only": deadline("risk", 5, "formal_notification"),
        }
        s.add_all(rows.values())
        s.flush()
        s.add(Deadline(kind="risk", item_id=3, name="monitoring_review", due_on=date(2027, 4, 5), created_at=later))
        s.commit()
        ids = {k: d.id for k, d in rows.items()}
    with get_engine(db_url).begin() as conn:  # the audit table as revision 0002 had it (no user_id, key_id)
        conn.execute(
            _OLD_AUDIT.insert(),
            [
                moved(1, "risk", "awaiting_response"),
                moved(4, "appeal", "subgroup_convened"),
                moved(5, "risk", "identified", "rescore", "identified"),
            ],
        )
    migrate(db_url)
    with Session(get_engine(db_url)) as s:
        status = {k: s.get(Deadline, i).status for k, i in ids.items()}  # type: ignore[union-attr]
    assert status == {
        "answered": "closed",
        "still owed": "fired",
        "replaced": "closed",
        "runs through": "fired",
        "internal only": "fired",
    }


def test_events_from_before_keying_are_an_unkeyed_prefix_the_first_keyed_event_seals(db_url: str) -> None:
    """Before revision 0011 each event's hash was a plain SHA-256. Upgraded, those events verify
    as an unkeyed prefix, but only once a keyed event seals them (its HMAC covers the prefix's
    last hash): until then nobody can tell them from a chain re-hashed without the key."""
    migrate(db_url, "0010")
    prev, rows = "", []
    for n, trigger in enumerate(("add", "edit"), 1):  # a contact's audited changes (no item table to replay)
        old = Event("contact", 1, datetime(2026, 11, n, 9, tzinfo=UTC), "Dr Asha Patel", "network-manager", trigger,
                    None, "active", None, n, {"email": f"v{n}@example.nhs.uk"})  # fmt: skip
        old.prev_hash, old.hash = prev, event_hash(prev, old)  # unkeyed: as revision 0010 hashed
        prev = old.hash
        rows.append({k: getattr(old, k) for k in ("kind", "item_id", "at", "actor", "role", "trigger", "from_state",
                                                   "to_state", "note", "version", "data", "prev_hash", "hash")})  # fmt: skip
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(_OLD_AUDIT.insert(), rows)
        conn.execute(sa.table("audit_head", sa.column("id"), sa.column("hash"), sa.column("events")).insert(),
                     [{"id": 1, "hash": prev, "events": 2}])  # fmt: skip
    migrate(db_url)
    with Session(engine) as s:
        report = check_chain(s)
        assert (report.checked, report.unkeyed, report.broken) == (2, 2, None)
        assert "are unkeyed and no keyed event seals them" in (report.problem or "")
        record_change(s, "network", 1, "edit", principal=person("Dr Asha Patel", "network-manager"),
                      clock=FixedClock(datetime(2026, 12, 1, 9, tzinfo=UTC)), state="active")  # fmt: skip
        s.commit()
        report = check_chain(s)
        assert (report.checked, report.unkeyed, report.problem) == (3, 2, None)
        assert s.get(AuditHead, 1).events == 3  # type: ignore[union-attr]
    out = " ".join(ok(run(cli_env(), "audit", "verify")).split())
    assert out.startswith("intact: 3 events (2 unkeyed before keying), 0 anchors checked, replay of 0 items clean")


def test_migrations_run_on_sqlite_even_when_the_suite_is_on_postgresql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    try:
        migrate(url)
        assert _current(url) == _head()
        assert _differences(url) == []
    finally:
        drop(url)


@pytest.mark.skipif(not ON_POSTGRES, reason="needs PEERWATCH_TEST_DATABASE (make test-pg)")
def test_migrations_run_on_postgresql_from_empty(tmp_path: Path) -> None:
    url = fresh_url(tmp_path)
    try:
        migrate(url)
        assert _current(url) == _head()
        assert _differences(url) == []
        assert get_engine(url).dialect.name == "postgresql"
    finally:
        drop(url)


def test_downgrade_to_base_removes_every_table(db_url: str) -> None:
    migrate(db_url)
    command.downgrade(alembic_config(db_url), "base")
    with get_engine(db_url).connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}


def test_a_database_made_before_migrations_is_adopted(db_url: str) -> None:
    """``peerwatch init`` used to run create_all only: such a database is stamped, not recreated."""
    import_all_tables()
    engine = get_engine(db_url)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Network(code="OLD", name="made before migrations"))
        s.commit()
    init_db(db_url)
    assert _current(db_url) == _head()
    with Session(engine) as s:
        assert [n.code for n in s.exec(select(Network))] == ["OLD"]


def test_migrations_install_the_audit_guards(db_url: str) -> None:
    """The hand-written revision 0002 makes the audit table append-only, as init_db's fast path does."""
    from datetime import datetime

    from sqlalchemy.exc import DBAPIError

    migrate(db_url)
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO auditevent (kind, item_id, at, actor, role, "trigger", to_state, version, data, prev_hash, hash) '
                "VALUES ('risk', 1, :at, 'a', 'r', 'raise', 'new', 1, '{}', '', 'h')"
            ),
            {"at": datetime.now(UTC)},
        )
    for sql in ("UPDATE auditevent SET note = 'x'", "DELETE FROM auditevent"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))


def test_0004_keeps_old_letters_and_refuses_to_downgrade_past_unsent_ones(db_url: str) -> None:
    """0004: letters written before it keep their text; a downgrade below it while a letter
    waits unrendered is refused (the old dispatcher would send it blank), then allowed once sent."""
    from datetime import datetime

    at = datetime(2027, 1, 4, 9, tzinfo=UTC)
    old = {
        "kind": "risk",
        "item_id": 1,
        "template": "chase",
        "category": "letter",
        "to": "[]",
        "cc": "[]",
        "attempts": 0,
        "created_at": at,
        "next_attempt_at": at,
    }
    migrate(db_url, "0003")
    with get_engine(db_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outboxmessage (idempotency_key, kind, item_id, template, category, subject, body_text, body_html, "
                '"to", cc, status, attempts, created_at, next_attempt_at) VALUES (:k, :kind, :item_id, :template, '
                ":category, 'Old subject', 'Old text', '<p>Old</p>', :to, :cc, 'queued', :attempts, :created_at, "
                ":next_attempt_at)"
            ),
            {**old, "k": "before-0004"},
        )
    migrate(db_url)
    with get_engine(db_url).begin() as conn:
        assert conn.execute(text("SELECT subject, body_text, context FROM outboxmessage")).one() == (
            "Old subject",
            "Old text",
            None,
        )
        conn.execute(
            text(
                'INSERT INTO outboxmessage (idempotency_key, kind, item_id, template, category, context, "to", cc, status, '
                "attempts, created_at, next_attempt_at) VALUES ('after-0004', :kind, :item_id, :template, :category, "
                "'{}', :to, :cc, 'queued', :attempts, :created_at, :next_attempt_at)"
            ),
            old,
        )
    command.downgrade(alembic_config(db_url), "0004")  # the later revisions step down freely
    with pytest.raises(RuntimeError, match=r"1 letter.* not yet rendered: send them"):
        command.downgrade(alembic_config(db_url), "0003")
    assert _current(db_url) == "0004"
    with get_engine(db_url).begin() as conn:  # as the dispatcher leaves a sent letter
        conn.execute(
            text(
                "UPDATE outboxmessage SET subject = 'S', body_text = 'T', body_html = 'H', status = 'sent' "
                "WHERE idempotency_key = 'after-0004'"
            )
        )
    command.downgrade(alembic_config(db_url), "0003")
    assert _current(db_url) == "0003"


def test_0014_gives_an_analysed_sqlite_database_figures_for_the_new_index(tmp_path: Path) -> None:
    """A SQLite database someone analysed has planner figures that do not know 0014's index
    (My work's risk query then took 70 ms, not 0.1 ms): the migration makes the deadline
    table's again. One never analysed gets no figures (SQLite's own rules plan it)."""
    analysed, plain = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/p.db"
    try:
        for url in (analysed, plain):
            migrate(url, "0013")
        with get_engine(analysed).begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO deadline (kind, item_id, name, due_on, reminded, due_day_notified, status, nation, "
                    "created_at) VALUES ('risk', :i, 'formal_notification', '2027-03-01', 0, 0, 'open', 'ENG', "
                    "'2027-01-01 00:00:00')"
                ),
                [{"i": i} for i in range(1, 21)],
            )
            conn.execute(text("ANALYZE"))
        for url in (analysed, plain):
            migrate(url)
        with get_engine(analysed).connect() as conn:
            indexes = set(conn.execute(text("SELECT idx FROM sqlite_stat1 WHERE tbl = 'deadline'")).scalars())
        assert "ix_deadline_open_name_due" in indexes
        with get_engine(plain).connect() as conn:
            assert conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first() is None
    finally:
        drop(analysed)
        drop(plain)
