"""Batched writes handed to the driver's ``executemany`` directly.

SQLAlchemy's own executemany rebuilds and converts every row's parameters through the
compiled statement's machinery, which costs more than the database's work for small rows.
Here a statement is compiled once per dialect and set of keys, each value goes through its
column's own bind processor (the same conversion SQLAlchemy applies: UTC timestamps, JSON,
dates), and the rows go to the driver in one call. Statements that would need anything more
(Python-side defaults, RETURNING) are refused at compile time and run the usual way.

``mark_written`` tells the ORM that rows were written by such a batched UPDATE. It is the one
place the project uses SQLAlchemy's internals (the range is pinned in pyproject.toml);
tests/test_bulk_orm.py proves the rows end as the ORM's own flush leaves them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql.dml import Insert, Update

_MISSING = object()
_Prepared = tuple[str, tuple[tuple[str, Callable[[Any], Any] | None, Any], ...], bool]
_CACHE: dict[tuple[Any, ...], tuple[Any, _Prepared | None]] = {}
_CACHE_SIZE = 256


def _prepare(stmt: Insert | Update, conn: Connection, keys: tuple[str, ...]) -> _Prepared | None:
    dialect = conn.dialect
    cache_key = (id(stmt), dialect.name, dialect.driver, dialect.paramstyle, keys)
    hit = _CACHE.get(cache_key)
    if hit is not None and hit[0] is stmt:  # the statement object itself is kept, so its id is not reused
        return hit[1]
    if len(_CACHE) >= _CACHE_SIZE:  # callers keep their statements as constants: this is a safety net
        _CACHE.clear()
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    prepared: _Prepared | None = None
    simple = not (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.effective_returning
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or getattr(compiled, "escaped_bind_names", None)
    )
    if simple:
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.bind_names.values())
        binds = [compiled.binds[name] for name in names]
        # each bind: a row's value (by key), or a constant of the statement (e.g. SET status = 'closed')
        constant = [_MISSING if name in keys else bind.value for name, bind in zip(names, binds)]
        if all(c is not _MISSING or name in keys for name, c in zip(names, constant)) and not any(
            b.callable for b in binds
        ):
            prepared = (
                compiled.string,
                tuple(
                    (name, bind.type.dialect_impl(dialect).bind_processor(dialect), c)
                    for name, bind, c in zip(names, binds, constant)
                ),
                bool(compiled.positional),
            )
    _CACHE[cache_key] = (stmt, prepared)
    return prepared


def execute_many(conn: Connection, stmt: Insert | Update, rows: Sequence[dict[str, Any]]) -> int:
    """Run ``stmt`` once per row in one driver call; returns the rows it changed (summed)."""
    if not rows:
        return 0
    prepared = _prepare(stmt, conn, tuple(rows[0]))
    if prepared is None:
        return int(conn.execute(stmt, list(rows)).rowcount)
    sql, binds, positional = prepared
    constants = {name: c for name, _, c in binds if c is not _MISSING}
    if constants:
        rows = [{**row, **constants} for row in rows]
    names = [name for name, _, _ in binds]
    fetch = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    convert = [(i, process) for i, (_, process, _) in enumerate(binds) if process is not None]
    params: list[Any] = []
    for row in rows:
        values = fetch(row)
        if convert:
            values = list(values)
            for i, process in convert:
                values[i] = process(values[i])
        params.append(tuple(values) if positional else dict(zip(names, values)))
    return int(conn.exec_driver_sql(sql, params).rowcount)


def mark_written(session: Session, rows: Sequence[object]) -> None:
    """Mark ORM rows whose changes a batched UPDATE has just written as a flush leaves them:
    clean, their in-memory values now the committed ones, and known to the transaction as
    altered, so a rolled-back savepoint or transaction expires them back to what the database
    holds. (What ``Session.flush`` does to each row it wrote; SQLAlchemy offers no public call.)"""
    states: list[InstanceState[Any]] = [instance_state(row) for row in rows]
    InstanceState._commit_all_states([(state, state.dict) for state in states], session.identity_map)
    session._register_altered(states)
