"""Replay the audit trail against the item tables: a row edited behind the engine's back is named.

Every transition the engine writes appends an audit event that records the item's new state
and version (``to_state``, ``version``) and the due dates of the deadlines it opens
(``data["deadlines"]``: ``{name: "YYYY-MM-DD"}``; the clock stop records a resumed deadline's
``{"due_on": ...}`` and an extension's ``{"from": ..., "to": ...}``; a deadline moved by a
transition's effects, ``data["moved_deadlines"]``, when the engine records it). So for every
item of every kind:

- its row's ``state`` and ``version`` are those of its last event;
- a row with no event was inserted behind the engine's back, and events whose row is gone
  name a row deleted behind it;
- each of its outstanding deadlines (open, paused, or fired and still owed) is due on a date
  one of its events recorded for a deadline of that name.

A finding names the kind, the item, the field, the table's value and the replayed one. The
work is batched: ``batch`` rows of a kind at a time, a handful of queries each (the last
event per item through the ``(kind, item_id, id)`` index), so a large database is read in
bounded memory. Read-only: nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import String, cast, func
from sqlalchemy import select as select_core
from sqlmodel import Session

from models.tables import OUTSTANDING, AuditEvent, Deadline
from states.machines.spec import get_spec, kinds

_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_DEADLINE = Deadline.__table__  # type: ignore[attr-defined]
_OUTSTANDING = [s.value for s in OUTSTANDING]


@dataclass(frozen=True)
class Finding:
    """One difference between an item's row and what its audit events replay to."""

    kind: str
    item_id: int
    field: str  # state | version | row | deadline NAME (id N) due_on
    table: Any  # the table's value (None: no row)
    replayed: Any  # what the events say (None: no event)

    def line(self) -> str:
        what = f"{self.kind} {self.item_id}"
        if self.field == "row" and self.replayed is None:
            return f"{what}: the row has no audit event (inserted behind the engine's back)"
        if self.field == "row":
            return f"{what}: audit events up to version {self.replayed} but no row (deleted behind the engine's back)"
        return (
            f"{what} {self.field}: the table has {_show(self.table)}, the audit events replay to {_show(self.replayed)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "item_id": self.item_id,
            "field": self.field,
            "table": _plain(self.table),
            "replayed": _plain(self.replayed),
            "problem": self.line(),
        }


@dataclass
class ReplayReport:
    items: int = 0  # item rows replayed
    events: int = 0  # items' last events read
    deadlines: int = 0  # outstanding deadlines checked
    findings: list[Finding] = field(default_factory=list)


def _show(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return " or ".join(_show(v) for v in sorted(value)) if value else "no recorded date"
    return repr(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return sorted(_plain(v) for v in value)
    return value


def replay(session: Session, batch: int = 5000) -> ReplayReport:
    """Replay every kind's items against their audit events; see the module's docstring."""
    report = ReplayReport()
    for kind in kinds():
        for span, rows in _batches(session, kind, batch):
            _check_batch(session, kind, span, rows, report)
    return report


Range = tuple[int | None, int | None]  # item ids from, to (inclusive; None: open-ended)


def _batches(session: Session, kind: str, batch: int) -> Iterator[tuple[Range, dict[int, tuple[str, int]]]]:
    """A kind's rows, ``batch`` at a time, each with the id range it covers: contiguous ranges,
    the first and last open-ended, so every event's item id falls in exactly one."""
    table = get_spec(kind).model.__table__  # type: ignore[attr-defined]
    lo: int | None = None
    while True:
        query = select_core(table.c.id, table.c.state, table.c.version).order_by(table.c.id).limit(batch)
        got = session.execute(query if lo is None else query.where(table.c.id >= lo)).all()
        last = len(got) < batch
        hi = None if last else got[-1].id
        yield (lo, hi), {r.id: (r.state, r.version) for r in got}
        if hi is None:
            return
        lo = hi + 1


def _within(column: Any, span: Range) -> list[Any]:
    lo, hi = span
    return ([column >= lo] if lo is not None else []) + ([column <= hi] if hi is not None else [])


def _check_batch(
    session: Session, kind: str, span: Range, rows: dict[int, tuple[str, int]], report: ReplayReport
) -> None:
    in_range = (_AUDIT.c.kind == kind, *_within(_AUDIT.c.item_id, span))
    last = (
        select_core(_AUDIT.c.item_id, func.max(_AUDIT.c.id).label("last")).where(*in_range).group_by(_AUDIT.c.item_id)
    )
    last_sub = last.subquery()
    replayed = {
        r.item_id: (r.to_state, r.version)
        for r in session.execute(
            select_core(_AUDIT.c.item_id, _AUDIT.c.to_state, _AUDIT.c.version).join(
                last_sub, _AUDIT.c.id == last_sub.c.last
            )
        )
    }
    report.items += len(rows)
    report.events += len(replayed)
    out = report.findings
    for item_id, (state, version) in rows.items():
        seen = replayed.get(item_id)
        if seen is None:
            out.append(Finding(kind, item_id, "row", "a row", None))
            continue
        if state != seen[0]:
            out.append(Finding(kind, item_id, "state", state, seen[0]))
        if version != seen[1]:
            out.append(Finding(kind, item_id, "version", version, seen[1]))
    for item_id in sorted(set(replayed) - set(rows)):
        out.append(Finding(kind, item_id, "row", None, replayed[item_id][1]))
    _check_deadlines(session, kind, span, set(rows) & set(replayed), report)  # a row without events is named once


def _check_deadlines(session: Session, kind: str, span: Range, items: set[int], report: ReplayReport) -> None:
    """Each outstanding deadline of these items (rows with events) is due on a date their events recorded."""
    pending = session.execute(
        select_core(_DEADLINE.c.id, _DEADLINE.c.item_id, _DEADLINE.c.name, _DEADLINE.c.due_on)
        .where(
            _DEADLINE.c.kind == kind,
            *_within(_DEADLINE.c.item_id, span),
            _DEADLINE.c.status.in_(_OUTSTANDING),
        )
        .order_by(_DEADLINE.c.item_id, _DEADLINE.c.id)
    ).all()
    pending = [d for d in pending if d.item_id in items]
    if not pending:
        return
    report.deadlines += len(pending)
    recorded: dict[tuple[int, str], set[str]] = {}
    for item_id, data in session.execute(
        select_core(_AUDIT.c.item_id, _AUDIT.c.data).where(
            _AUDIT.c.kind == kind,
            _AUDIT.c.item_id >= pending[0].item_id,
            _AUDIT.c.item_id <= pending[-1].item_id,
            cast(_AUDIT.c.data, String).like("%deadlines%"),
        )
    ):
        for name, day in recorded_dates(data):
            recorded.setdefault((item_id, name), set()).add(day)
    for d in pending:
        due = d.due_on.isoformat() if isinstance(d.due_on, date) else str(d.due_on)
        dates = recorded.get((d.item_id, d.name), set())
        if due not in dates:
            report.findings.append(Finding(kind, d.item_id, f"deadline {d.name} (id {d.id}) due_on", due, dates))


def recorded_dates(data: Any) -> Iterator[tuple[str, str]]:
    """The (deadline name, due date) pairs an event's data records: deadlines opened
    (``{name: date}``), resumed (``{name: {"due_on": date}}``), extended
    (``{name: {"from": ..., "to": date}}``) and moved (``moved_deadlines``)."""
    if not isinstance(data, dict):
        return
    for key in ("deadlines", "moved_deadlines"):
        found = data.get(key)
        if not isinstance(found, dict):
            continue
        for name, value in found.items():
            if isinstance(value, str):
                yield name, value
            elif isinstance(value, dict):
                for part in ("due_on", "to"):
                    if isinstance(value.get(part), str):
                        yield name, value[part]
