"""A network team's workload per quarter, counted from what the database holds.

Five measures, each per network per programme quarter (Q1 Apr-Jun ... Q4 Jan-Mar):

- ``letters``: formal letters sent (outbox rows of category ``letter`` with status ``sent``,
  by the date sent; one row is one letter to its addressees and copies);
- ``chases``: reminders, due-today notices, overdue notices and chases (outbox rows of
  category ``reminder`` or ``chase``, by the date written), counted once per notice however
  many people it went to;
- ``visits``: peer review visits held (audit events ``visit hold``);
- ``reports``: reports published (audit events ``report publish``);
- ``escalations``: IRs and SCs escalated to the Commissioning Lead and the CQC (audit events
  of a risk entering ``escalated``).

Nothing here keeps counts of its own: run it again on the same database and it says the same.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import class_mapper
from sqlmodel import Session, col

from models.sheets import csv_value  # text that could run as a formula is escaped (OWASP)
from models.tables import AuditEvent, Network, OutboxMessage, Service
from states.clock import local_date
from states.machines.spec import get_spec
from states.programmes import programme_year_of, quarter_of

MEASURES = ("letters", "chases", "visits", "reports", "escalations")
LABELS = {
    "letters": "letters sent",
    "chases": "reminders and chases",
    "visits": "visits held",
    "reports": "reports published",
    "escalations": "escalations",
}
CYCLES = ("annual", "biennial")


def quarter_label(day: date) -> str:
    """``2026-27 Q3`` for a day in October 2026."""
    year = programme_year_of(day)
    return f"{year}-{str(year + 1)[2:]} {quarter_of(day)}"


def quarters(start: date, end: date) -> list[str]:
    """Every programme quarter from ``start`` to ``end``, in order."""
    out: list[str] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        label = quarter_label(date(year, month, 1))
        if label not in out:
            out.append(label)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def count(db: Engine, start: date, end: date) -> dict[str, Any]:
    """Each network's workload per quarter and the mean per network of each cycle type."""
    labels = quarters(start, end)
    with Session(db) as s:
        nets = list(
            s.execute(
                select(col(Network.id), col(Network.code), col(Network.name), col(Network.cycle)).order_by(
                    col(Network.id)
                )
            )
        )
        grid: dict[int, dict[str, dict[str, int]]] = {
            n.id: {q: dict.fromkeys(MEASURES, 0) for q in labels} for n in nets
        }
        owners = _Owners(s)
        for measure, kind, item_id, at in _events(s):
            q = quarter_label(local_date(at))
            if q in grid[owners.network(kind, item_id)]:
                grid[owners.network(kind, item_id)][q][measure] += 1
        audit_events = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
        outbox_rows = s.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    networks = [
        {
            "code": n.code,
            "name": n.name,
            "cycle": n.cycle,
            "quarters": grid[n.id],
            "totals": {m: sum(grid[n.id][q][m] for q in labels) for m in MEASURES},
        }
        for n in nets
    ]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": (end - start).days + 1,
        "measures": list(MEASURES),
        "quarters": labels,
        "networks": networks,
        "by_cycle": _means(networks, labels),
        "audit_events": audit_events,
        "outbox_messages": outbox_rows,
    }


def _events(s: Session) -> list[tuple[str, str, int, Any]]:
    """(measure, kind, item id, when) for every counted event in the audit log and the outbox."""
    a, o = AuditEvent, OutboxMessage
    found: list[tuple[str, str, int, Any]] = []
    for kind, item_id, trigger, at in s.execute(
        select(col(a.kind), col(a.item_id), col(a.trigger), col(a.at)).where(
            or_(
                and_(col(a.kind) == "visit", col(a.trigger) == "hold"),
                and_(col(a.kind) == "report", col(a.trigger) == "publish"),
                and_(col(a.kind) == "risk", col(a.to_state) == "escalated", col(a.from_state) != "escalated"),
            )
        )
    ):
        found.append(({"hold": "visits", "publish": "reports"}.get(trigger, "escalations"), kind, item_id, at))
    for kind, item_id, sent_at in s.execute(
        select(col(o.kind), col(o.item_id), col(o.sent_at)).where(col(o.category) == "letter", col(o.status) == "sent")
    ):
        found.append(("letters", kind, item_id, sent_at))
    seen: set[str] = set()
    for kind, item_id, key, created_at in s.execute(
        select(col(o.kind), col(o.item_id), col(o.idempotency_key), col(o.created_at))
        .where(col(o.category).in_(("reminder", "chase")))
        .order_by(col(o.id))
    ):
        notice = key.rsplit(":", 1)[0]  # one row per person: the key ends with their address
        if notice not in seen:
            seen.add(notice)
            found.append(("chases", kind, item_id, created_at))
    return found


class _Owners:
    """Which network an item belongs to: its own ``network_id``, or its service's."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.maps: dict[str, dict[int, int]] = {}

    def network(self, kind: str, item_id: int) -> int:
        if kind not in self.maps:
            model = get_spec(kind).model
            table = class_mapper(model, configure=False).local_table  # its __table__, which SQLModel does not declare
            if "network_id" in table.c:
                query = select(table.c.id, table.c.network_id)
            else:
                query = select(table.c.id, col(Service.network_id)).join(Service, col(Service.id) == table.c.service_id)
            self.maps[kind] = {i: n for i, n in self.s.execute(query)}
        return self.maps[kind][item_id]


def _means(networks: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cycle in CYCLES:
        group = [n for n in networks if n["cycle"] == cycle]
        if not group:
            continue
        per_q = {
            q: {m: round(sum(n["quarters"][q][m] for n in group) / len(group), 2) for m in MEASURES} for q in labels
        }
        out[cycle] = {
            "networks": len(group),
            "quarters": per_q,
            "totals": {m: round(sum(n["totals"][m] for n in group) / len(group), 2) for m in MEASURES},
        }
    return out


def cycle_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per quarter (and a total): the mean per network, annual and biennial side by side."""
    by = result["by_cycle"]
    rows = []
    for q in [*result["quarters"], "total"]:
        row: dict[str, Any] = {"quarter": q}
        for m in MEASURES:
            for cycle in CYCLES:
                if cycle in by:
                    row[f"{m} {cycle}"] = by[cycle]["totals"][m] if q == "total" else by[cycle]["quarters"][q][m]
        rows.append(row)
    return rows


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """``workload.csv`` (per network per quarter), ``workload.json`` and the chart ``workload.png``."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "workload.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "name", "cycle", "quarter", *MEASURES])
        for n in result["networks"]:
            for q in result["quarters"]:
                w.writerow(
                    [
                        csv_value(v)
                        for v in (n["code"], n["name"], n["cycle"], q, *(n["quarters"][q][m] for m in MEASURES))
                    ]
                )
    result["files"] = {
        "csv": str(out / "workload.csv"),
        "json": str(out / "workload.json"),
        "chart": str(out / "workload.png"),
    }
    write_chart(result, out / "workload.png")
    (out / "workload.json").write_text(json.dumps(result, indent=2, default=str))


def write_chart(result: dict[str, Any], path: Path) -> None:
    """Grouped bars per quarter, one panel per measure: annual and biennial means side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels, by = result["quarters"], result["by_cycle"]
    fig = Figure(figsize=(max(8.0, 0.8 * len(labels) + 3), 2.3 * len(MEASURES) + 1), layout="constrained")
    axes = fig.subplots(len(MEASURES), 1, sharex=True, squeeze=False)[:, 0]
    width = 0.4
    colours = {"annual": "#005EB8", "biennial": "#ED8B00"}  # NHS blue, NHS orange
    for ax, m in zip(axes, MEASURES):
        top = 0.0
        for k, cycle in enumerate(c for c in CYCLES if c in by):
            values = [by[cycle]["quarters"][q][m] for q in labels]
            top = max(top, *values)
            ax.bar(
                [i + (k - 0.5) * width for i in range(len(labels))],
                values,
                width,
                color=colours[cycle],
                label=f"{cycle} ({by[cycle]['networks']} network{'s' if by[cycle]['networks'] != 1 else ''})",
            )
        ax.set_ylim(0, top * 1.1 or 1)
        ax.set_ylabel(LABELS[m].replace(" ", "\n", 1))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper left")
    axes[-1].set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    fig.suptitle(
        f"Workload per quarter, mean per network: annual vs biennial cycle ({result['from']} to {result['to']})"
    )
    fig.savefig(path, dpi=110)
