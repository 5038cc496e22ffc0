"""The engine's batched writes: a batch of transitions decided in memory, written at once.

``write_rows`` writes the rows (one version-checked executemany per kind and set of changed
columns) and the deadlines the effects close, move and open; ``write_letters`` the outbox rows.
The caller (``states.engine.fire_many``) appends the audit events between them and fires the
follow-on requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as select_core
from sqlalchemy.orm import ColumnProperty
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from models.bulk import execute_many, mark_written
from models.tables import OUTSTANDING, Deadline, DeadlineStatus, StatefulItem
from states.engine import letters as outbox
from states.engine.audit import Event
from states.errors import StaleVersion
from states.machines.spec import CLOCK_TRIGGERS, Context, Effects, KindSpec, outstanding_deadlines

_DEADLINE = Deadline.__table__  # type: ignore[attr-defined]
_INSERT_DEADLINE = insert(_DEADLINE)
_CLOSE_DEADLINE = (
    update(_DEADLINE).where(_DEADLINE.c.id == bindparam("d_id")).values(status=DeadlineStatus.CLOSED.value)
)


@dataclass
class Outcome:
    row: StatefulItem
    event: Event
    queued: int
    proposed: bool = False  # a four-eyes trigger recorded, awaiting a second person


@dataclass
class Plan:
    """A transition decided in memory, waiting for the batch's writes."""

    spec: KindSpec
    row: StatefulItem
    ctx: Context
    effects: Effects
    data: dict[str, Any]
    old_version: int
    event: Event | None = None
    queued: int = 0
    done: Outcome | None = None  # a four-eyes proposal: already written


def write_rows(session: Session, plans: list[Plan], now: datetime, today: date) -> None:
    """Write a batch's rows and deadlines: version-checked, exactly one bump each."""
    if not _update_rows(session, plans):
        raise StaleVersion(
            f"{plans[0].spec.name} {plans[0].row.id} was changed by someone else while {plans[0].ctx.trigger!r} fired; retry"
            if len(plans) == 1
            else f"one of {len(plans)} items was changed by someone else while the batch fired; retry"
        )
    with session.no_autoflush:
        _change_deadlines(session, [p for p in plans if p.effects.close or p.effects.move], today)
    try:
        session.flush()  # whatever else the effects changed (deadlines, a proposal consumed)
    except StaleDataError:
        raise StaleVersion(
            f"a row {plans[0].ctx.trigger!r} touched was changed by someone else meanwhile; retry"
        ) from None
    for p in plans:
        if p.row.version != p.old_version + 1:  # pragma: no cover - a bug, not an operator error
            raise RuntimeError(
                f"{p.spec.name} {p.row.id}: version moved {p.old_version} -> {p.row.version} in one transition"
            )
    _close_deadlines(
        session,
        [
            p
            for p in plans
            if p.effects.deadlines or (p.ctx.dest != p.ctx.source and p.ctx.trigger not in CLOCK_TRIGGERS)
        ],
    )
    new = [
        {
            "kind": p.spec.name,
            "item_id": p.row.id,
            "name": d.name,
            "due_on": d.due_on,
            "remind_on": d.remind_on,
            "reminded": False,
            "due_day_notified": False,
            "status": DeadlineStatus.OPEN.value,
            "paused_remaining": None,
            "nation": p.ctx.calendar.nation,
            "created_at": now,
        }
        for p in plans
        for d in p.effects.deadlines
    ]
    if new:
        execute_many(session.connection(), _INSERT_DEADLINE, new)


def link(session: Session, row: StatefulItem, field: str, value: Any) -> None:
    """Set a field of a row already written in this batch, without a second version bump."""
    column = sa_inspect(type(row)).attrs[field].columns[0]  # type: ignore[union-attr]
    table = type(row).__table__  # type: ignore[attr-defined]
    session.execute(update(table).where(table.c.id == row.id).values({column.name: value}))
    set_committed_value(row, field, value)


def _change_deadlines(session: Session, plans: list[Plan], today: date) -> None:
    """Close and move the deadlines the effects name (loaded rows: the flush writes them)."""
    for p in plans:
        pending = outstanding_deadlines(session, p.spec.name, p.row.id)  # type: ignore[arg-type]
        for c in p.effects.close:
            for d in pending:
                if d.name == c.name and (c.due_before is None or d.due_on < c.due_before):
                    d.status = DeadlineStatus(c.status)
                    session.add(d)
        for m in p.effects.move:
            for d in pending:
                if d.name == m.name:
                    d.due_on, d.remind_on = m.due_on, m.remind_on
                    d.reminded = d.reminded and (m.remind_on is None or m.remind_on <= today)
                    session.add(d)


def _close_deadlines(session: Session, plans: list[Plan]) -> None:
    """Leaving a state closes its outstanding deadlines, except those whose rule runs through
    the new state; a new deadline replaces an outstanding one of the same name. One query
    per kind, one executemany."""
    by_kind: dict[str, dict[int, Plan]] = {}
    for p in plans:
        by_kind.setdefault(p.spec.name, {})[p.row.id] = p  # type: ignore[index]
    closing: list[int] = []
    for kind, items in by_kind.items():
        ids = list(items)
        for start in range(0, len(ids), 900):
            for d_id, item_id, name in session.execute(
                select_core(_DEADLINE.c.id, _DEADLINE.c.item_id, _DEADLINE.c.name).where(
                    _DEADLINE.c.kind == kind,
                    _DEADLINE.c.item_id.in_(ids[start : start + 900]),
                    _DEADLINE.c.status.in_([s.value for s in OUTSTANDING]),
                )
            ):
                p = items[item_id]
                rule = p.spec.deadline_rules.get(name)
                moved = p.ctx.dest != p.ctx.source and p.ctx.trigger not in CLOCK_TRIGGERS
                if (moved and (rule is None or p.ctx.dest not in rule.runs_through)) or any(
                    d.name == name for d in p.effects.deadlines
                ):
                    closing.append(d_id)
    if not closing:
        return
    execute_many(session.connection(), _CLOSE_DEADLINE, [{"d_id": i} for i in closing])
    for i in closing:  # keep loaded Deadline objects true to the database
        loaded = session.identity_map.get(identity_key(Deadline, i))
        if loaded is not None:
            set_committed_value(loaded, "status", DeadlineStatus.CLOSED)


@lru_cache(maxsize=256)
def _versioned_update(model: type, names: tuple[str, ...]) -> Any:
    """UPDATE one row's ``names`` and its version, WHERE its id and the version it was read at
    (one statement object per kind and set of columns, so it is compiled once)."""
    table = model.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.id == bindparam("_id"), table.c.version == bindparam("_read_version"))
        .values(
            {name: bindparam(f"_v_{name}", type_=table.c[name].type) for name in names}
            | {"version": bindparam("_version")}
        )
    )


def _update_rows(session: Session, plans: list[Plan]) -> bool:
    """Write the batch's rows: one executemany per kind and set of changed columns, each row's
    WHERE naming its id and the version it was read at, so a row changed meanwhile matches
    nothing. Returns False if any did not match (the caller raises; the transaction is rolled
    back). The rows are then marked clean with the new version, as a flush leaves them.

    The ORM would send one UPDATE per versioned row; this is the same statement, batched.
    If any row's in-memory changes are not plain columns (a relationship), the batch goes
    through the ORM's flush instead, checked against each version there."""
    groups: dict[tuple[type, tuple[str, ...]], list[tuple[Plan, Any]]] = {}
    for p in plans:
        state = instance_state(p.row)
        groups.setdefault((type(p.row), tuple(sorted(state.committed_state))), []).append((p, state))
    props_of: dict[tuple[type, tuple[str, ...]], list[Any]] = {
        group: [sa_inspect(group[0]).attrs.get(k) for k in group[1] if k != "version"] for group in groups
    }
    if not all(isinstance(prop, ColumnProperty) for props in props_of.values() for prop in props):
        try:
            session.flush()  # the ORM's own version-checked UPDATE per row
        except StaleDataError:
            return False
        return True
    conn = session.connection()
    done: list[StatefulItem] = []
    for (model, keys), members in groups.items():
        props = props_of[(model, keys)]
        columns = [(prop.key, prop.columns[0]) for prop in props]
        stmt = _versioned_update(model, tuple(c.name for _, c in columns))
        params = [
            {
                **{f"_v_{c.name}": state.dict.get(key) for key, c in columns},
                "_id": p.row.id,
                "_read_version": p.old_version,
                "_version": p.old_version + 1,
            }
            for p, state in members
        ]
        if conn.dialect.supports_sane_multi_rowcount:
            matched = execute_many(conn, stmt, params)
        else:  # pragma: no cover - both supported dialects count an executemany's rows
            matched = sum(conn.execute(stmt, one).rowcount for one in params)
        if matched != len(members):
            return False
        for p, state in members:
            state.dict["version"] = p.old_version + 1
            done.append(p.row)
    mark_written(session, done)  # clean, at the new version, expired again by a rollback
    return True


def write_letters(session: Session, plans: list[Plan], now: datetime, today: date) -> None:
    """Compose every plan's letters (quoting its deadlines as now written) and write them at once."""
    by_kind: dict[str, list[Plan]] = {}
    for p in plans:
        by_kind.setdefault(p.spec.name, []).append(p)
    composed: list[tuple[Plan, Any]] = []
    outbox.prefetch_recipients(session, [(p.spec, p.row, p.effects.letters) for p in plans], on=today)
    for kind, group in by_kind.items():
        deadlines = outbox.open_deadlines(session, kind, [p.row.id for p in group])  # type: ignore[misc]
        for p in group:
            composed += [
                (p, m)
                for m in outbox.compose(
                    session,
                    p.spec,
                    p.row,
                    p.effects.letters,
                    key=f"v{p.row.version}",
                    now=now,
                    today=today,
                    deadlines=deadlines.get(p.row.id, {}),  # type: ignore[arg-type]
                )
            ]
    written = {id(m) for m in outbox.write(session, [m for _, m in composed])}
    for p, m in composed:
        p.queued += id(m) in written
