"""Backup and restore of the whole database, with the audit chain verified on the way back.

- **SQLite**: ``backup`` copies the live database with SQLite's online backup API
  (``sqlite3.Connection.backup``), in one step, so the copy is one consistent snapshot that
  includes what is still in the write-ahead log (a plain file copy of a live WAL database
  misses it: that is how a copy "lost every audit event"). Writers go on meanwhile (WAL).
- **PostgreSQL**: ``backup`` runs ``pg_dump --format=custom`` on the schema the URL's
  ``search_path`` names (default ``public``); ``restore`` runs ``pg_restore`` in one
  transaction. Point-in-time recovery (WAL archiving and a base backup) is in docs/scale.md.

``restore`` first brings the backup back somewhere nobody reads (a scratch SQLite file; on
PostgreSQL a schema of the dump's own name that must not hold tables), migrates it there to
the current schema (a backup made by an older peerwatch), recomputes the keyed audit chain
there (``states.engine.audit.check_chain``: it needs the audit key, as ``audit verify``
does), and refuses a backup that does not verify, cannot be verified (no key) or is not a
peerwatch database, leaving the target untouched. Only then is it copied into the target
(SQLite: the backup API again) or renamed to the target schema (PostgreSQL); a target that
already holds tables is refused unless ``replace`` is given (SQLite). A backup whose events
all date from before the chain was keyed verifies as such; the first keyed event after the
restore seals them. ``backup`` without the key still writes the copy, said to be unverified.
Anchors (``states/services/anchors.py``) made after the backup was taken name the events a
restore lost: anchor into a new directory after such a restore.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import create_engine, inspect, text, update
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from models.db import dispose_engine, init_db
from models.web import WebSession
from states.clock import SystemClock
from states.engine.audit import check_chain
from states.engine.keys import NoAuditKey
from states.errors import InvalidInput, NotFound, PeerwatchError

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"


class BackupRefused(PeerwatchError):
    """A backup that does not verify, or is not a peerwatch database: nothing was changed."""


# ---------------------------------------------------------------- helpers


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise InvalidInput("backup and restore need a SQLite file database, not an in-memory one")
    return Path(url.database)


def _check(engine: Engine, *, restoring: bool = False) -> dict[str, Any]:
    """Verify a database: a peerwatch schema (an Alembic revision, the audit tables) and an
    unbroken keyed audit chain. Returns what was found; raises BackupRefused otherwise.

    Without the audit key a restore is refused (its chain cannot be verified); a backup is
    still written, said to be unverified (``audit_unverified``). A restored chain made only of
    events from before keying (an old release's backup) verifies as such (``audit_unkeyed``):
    the first keyed event after the restore seals it."""
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if not {"alembic_version", "auditevent", "audit_head"} <= tables:
                raise BackupRefused(
                    "not a peerwatch database: it has no audit trail (tables alembic_version, auditevent, audit_head)"
                )
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        with Session(engine) as s:
            report = check_chain(s)
    except BackupRefused:
        raise
    except NoAuditKey as exc:
        if restoring:
            raise BackupRefused(f"the backup's audit chain cannot be verified: {exc}") from None
        return {"revision": revision, "audit_unverified": str(exc)}
    except Exception as exc:
        raise BackupRefused(
            f"the backup cannot be read as a peerwatch database: {' '.join(str(exc).split())[:300]}"
        ) from None
    if report.unsealed and restoring:
        return {"revision": revision, "audit_events": report.checked, "audit_unkeyed": report.unkeyed}
    if report.problem:
        raise BackupRefused(
            f"the backup's audit chain does not verify after {report.checked} good event(s): {report.problem}"
        )
    return {"revision": revision, "audit_events": report.checked, "audit_unkeyed": report.unkeyed}


def _migrate_copy(url: str) -> None:
    """Migrate a restored copy (nowhere anyone reads yet) to the current schema before its chain
    is verified: a backup made by an older release lacks the keyed chain's columns."""
    try:
        init_db(url)
    except Exception as exc:
        raise BackupRefused(
            f"the backup cannot be brought to this release's schema: {' '.join(str(exc).split())[:300]}"
        ) from None
    finally:
        dispose_engine(url)


def _scratch_engine(path: Path) -> Engine:
    return create_engine(f"sqlite:///{path}", poolclass=NullPool)


# ---------------------------------------------------------------- backup


def backup(url: str, target: Path) -> dict[str, Any]:
    """Write a backup of the database at ``url`` to ``target`` (refused if it exists) and
    verify the copy's audit chain; returns what was written."""
    target = Path(target)
    if target.exists():
        raise InvalidInput(f"{target} exists: give a new file name (a backup never overwrites one)")
    if not target.parent.is_dir():
        raise NotFound(f"folder {str(target.parent)!r} not found")
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return _backup_sqlite(u, target)
    if u.get_backend_name() == "postgresql":
        return _backup_postgres(u, target)
    raise InvalidInput(f"backup supports SQLite and PostgreSQL, not {u.get_backend_name()}")


def _backup_sqlite(u: URL, target: Path) -> dict[str, Any]:
    source = _sqlite_path(u)
    if not source.is_file():
        raise NotFound(f"database file {str(source)!r} not found")
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        src = sqlite3.connect(source, timeout=30)  # a reader: WAL lets the writers go on
        dst = sqlite3.connect(partial)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            src.backup(dst)  # pages=-1: one step, one read transaction, one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            dst.close()
            src.close()
        engine = _scratch_engine(partial)
        try:
            found = _check(engine)
        finally:
            engine.dispose()
        os.replace(partial, target)
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
    return {"backup": str(target), "database": "sqlite", "bytes": target.stat().st_size, **found}


def _libpq(u: URL) -> tuple[str, dict[str, str], str]:
    """(a libpq connection URI without the password, the environment with PGPASSWORD, the schema)."""
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    options = str(u.query.get("options") or "")
    schema = "public"
    parts = unquote(options).replace("-c ", "-c").split()
    for p in parts:
        if p.startswith("-csearch_path="):
            schema = p.split("=", 1)[1].split(",")[0].strip().strip('"') or "public"
    plain = URL.create(
        "postgresql", username=u.username, host=u.host, port=u.port, database=u.database, query=_without_options(u)
    )  # no password (PGPASSWORD), no search_path (pg_dump is told the schema)
    return plain.render_as_string(hide_password=False), env, schema


def _without_options(u: URL) -> dict[str, Any]:
    """The URL's query (e.g. host=/run/postgresql) without ``options`` (search_path, timeouts)."""
    return {k: v for k, v in u.query.items() if k != "options"}


def _run(args: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(args[0]) is None:
        raise NotFound(f"{args[0]} not found: install the PostgreSQL client (postgresql-client) matching the server")
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=24 * 3600)
    if proc.returncode != 0:
        raise PeerwatchError(f"{what} failed: {' '.join(proc.stderr.split())[:500]}")
    return proc


def _backup_postgres(u: URL, target: Path) -> dict[str, Any]:
    conninfo, env, schema = _libpq(u)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        # --serializable-deferrable: a snapshot no concurrent sweep can make inconsistent
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--serializable-deferrable",
                f"--schema={schema}",
                "--no-owner",
                "--no-privileges",
                f"--file={partial}",
                f"--dbname={conninfo}",
            ],
            env,
            "pg_dump",
        )
        listing = _run(["pg_restore", "--list", str(partial)], env, "pg_restore --list").stdout
        if not any(w[3:5] == ["TABLE", "DATA"] and w[6:7] == ["auditevent"] for w in map(_toc, listing.splitlines())):
            raise BackupRefused(f"pg_dump wrote no audit trail for schema {schema!r}: is it the peerwatch schema?")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return {"backup": str(target), "database": "postgresql", "schema": schema, "bytes": target.stat().st_size}


# ---------------------------------------------------------------- restore


def restore(url: str, source: Path, replace: bool = False) -> dict[str, Any]:
    """Restore ``source`` into the database at ``url`` after verifying its audit chain;
    refuse (changing nothing) a backup that does not verify."""
    source = Path(source)
    if not source.is_file():
        raise NotFound(f"backup file {str(source)!r} not found")
    with source.open("rb") as f:
        head = f.read(16)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if head != SQLITE_MAGIC:
            raise BackupRefused(f"{source.name} is not a SQLite backup (peerwatch backup on SQLite writes one)")
        out = _restore_sqlite(u, source, replace)
    elif u.get_backend_name() == "postgresql":
        if not head.startswith(PGDUMP_MAGIC):
            raise BackupRefused(
                f"{source.name} is not a pg_dump custom-format backup (peerwatch backup on PostgreSQL writes one)"
            )
        if replace:
            raise InvalidInput(
                "--replace is for SQLite only: on PostgreSQL restore into an empty schema (or drop it first)"
            )
        out = _restore_postgres(u, source)
    else:
        raise InvalidInput(f"restore supports SQLite and PostgreSQL, not {u.get_backend_name()}")
    dispose_engine(url)
    engine = init_db(url)  # a backup from an older release: migrated to the current schema
    out.update(_check(engine, restoring=True))  # and checked once more where it now lives
    out["sessions_ended"] = _end_sessions(engine)
    return out


def _end_sessions(engine: Engine) -> int:
    """End every web session the backup brought back: one used shortly before the backup would
    otherwise be accepted again, including one signed out after it (everyone signs in anew)."""
    table = WebSession.__table__  # type: ignore[attr-defined]
    with Session(engine) as s:
        done = s.execute(
            update(table)
            .where(table.c.ended_at.is_(None))
            .values(ended_at=SystemClock().now(), ended_reason="restored")
        )
        s.commit()
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


def _has_tables(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(inspect(conn).get_table_names())


def _restore_sqlite(u: URL, source: Path, replace: bool) -> dict[str, Any]:
    target = _sqlite_path(u)
    if not target.parent.is_dir():
        raise NotFound(f"folder {str(target.parent)!r} not found")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".peerwatch-restore-") as tmp:
        scratch = Path(tmp) / "restore.db"
        try:
            src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)  # the backup is never written
            dst = sqlite3.connect(scratch)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
        except sqlite3.DatabaseError as exc:
            raise BackupRefused(f"{source.name} cannot be read as a SQLite database: {exc}") from None
        _migrate_copy(f"sqlite:///{scratch}")
        engine = _scratch_engine(scratch)
        try:
            found = _check(engine, restoring=True)
        finally:
            engine.dispose()
        if target.exists():
            live = _scratch_engine(target)
            try:
                held = _has_tables(live)
            finally:
                live.dispose()
            if held and not replace:
                raise InvalidInput(
                    f"{target} already holds a database: restore into a new file, or give --replace to overwrite it"
                )
        src = sqlite3.connect(scratch)
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)  # into the target through SQLite's own locking, WAL and all
        finally:
            dst.close()
            src.close()
    return {
        "restored": str(source),
        "database": "sqlite",
        "into": str(target),
        "verified_events_before_restore": found["audit_events"],
    }


def _toc(line: str) -> list[str]:
    """A pg_restore --list entry's words: id; dump id, oid, type (one or two words), schema, name, owner."""
    return [] if line.startswith(";") else line.split()


def _restore_postgres(u: URL, source: Path) -> dict[str, Any]:
    conninfo, env, target = _libpq(u)
    listing = _run(["pg_restore", "--list", str(source)], env, "pg_restore --list").stdout
    data = [w for w in map(_toc, listing.splitlines()) if w[3:5] == ["TABLE", "DATA"] and len(w) > 6]
    dumped = {w[5] for w in data}
    if len(dumped) != 1 or "auditevent" not in {w[6] for w in data}:
        raise BackupRefused(
            f"{source.name}: expected one peerwatch schema with its audit trail, found {sorted(dumped) or 'none'}"
        )
    schema = dumped.pop()
    pg = create_engine(u.set(query=_without_options(u)), poolclass=NullPool)
    try:
        with pg.connect() as conn:

            def tables_in(name: str) -> int:
                return (
                    conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": name}).scalar()
                    or 0
                )

            def exists(name: str) -> bool:
                return bool(conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": name}).first())

            if tables_in(target):
                raise InvalidInput(
                    f"schema {target!r} already holds tables: restore into an empty schema (or drop it first)"
                )
            if schema != target and exists(schema):
                raise InvalidInput(
                    f"the backup is of schema {schema!r}, which exists in this database: "
                    "restore into another database, or rename or drop that schema first"
                )
            existed = exists(schema)  # only when it is the (empty) target itself
            conn.rollback()
        # Restore the dump as written, in one transaction; an existing empty target schema of
        # the dump's name is used as it is (its CREATE SCHEMA entry left out).
        kept = [
            line
            for line in listing.splitlines()
            if not (
                existed
                and (_toc(line)[3:6] == ["SCHEMA", "-", schema] or _toc(line)[3:6] == ["COMMENT", "-", "SCHEMA"])
            )
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as lst:
            lst.write("\n".join(kept) + "\n")
        try:
            _run(
                [
                    "pg_restore",
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    f"--use-list={lst.name}",
                    f"--dbname={conninfo}",
                    str(source),
                ],
                env,
                "pg_restore",
            )
        finally:
            os.unlink(lst.name)
        scratch_url = u.set(query={**_without_options(u), "options": f"-csearch_path={schema}"})
        scratch = create_engine(scratch_url, poolclass=NullPool)
        try:
            _migrate_copy(scratch_url.render_as_string(hide_password=False))
            found = _check(scratch, restoring=True)
        except BackupRefused:
            with pg.begin() as conn:  # take back what was restored: the target is as it was
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                if existed:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            raise
        finally:
            scratch.dispose()
        if schema != target:
            with pg.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{target}"'))  # empty (checked): PostgreSQL refuses otherwise
                conn.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{target}"'))
    finally:
        pg.dispose()
    return {
        "restored": str(source),
        "database": "postgresql",
        "from_schema": schema,
        "into": target,
        "verified_events_before_restore": found["audit_events"],
    }
