"""The Network Manager's read model: the risk register, overdue and upcoming deadlines, open
items by state and age, escalations and the compliance trend. Queries only: nothing here writes.

Shared by the dashboard (``peerwatch dashboard``) and the Prefect artifacts. Every function
returns plain JSON-able dicts (dates as ISO strings) and costs a handful of queries whatever
the number of rows: items of every kind are read through one ``UNION ALL`` that places each
row in its network, Trust and service; contacts are read once and matched in memory.

A deadline is *outstanding* (``models.tables.OUTSTANDING``) while it is open or paused, or
passed with its overdue letter sent (status ``fired``): the engine closes it when the item
moves on or a newer deadline of the same name replaces it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, null, select, union_all
from sqlalchemy.orm import class_mapper
from sqlalchemy.sql import ColumnElement, FromClause
from sqlmodel import Session, SQLModel, col

from models.selfassessment import SelfAssessment
from models.tables import (
    OUTSTANDING,
    AuditEvent,
    Contact,
    Deadline,
    DeadlineStatus,
    Network,
    Organisation,
    Report,
    Risk,
    Service,
)
from states.calendar import LONDON, NATIONS, calendar_for
from states.machines.risk import RiskState
from states.machines.spec import get_spec, kinds
from states.programmes import cycle_year, programme_for, programme_year_of

# Age buckets of open items, in days since the row was created: (label, upper bound or None).
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (("0-30", 30), ("31-90", 90), ("91-180", 180), (">180", None))
# States that are neither terminal nor waiting on anyone: a published report only waits for a
# possible appeal (it has no next step), a pending phase has not opened yet.
AT_REST = {"report": frozenset({"published"}), "phase": frozenset({"pending"})}
# Who holds an open risk that has no deadline running (e.g. escalated): the network.
DEFAULT_OWNER = "network-manager"
ESCALATED = RiskState.ESCALATED.value
UPCOMING_WORKING_DAYS = 20
REPORT_WEIGHTS = {"Met": 1.0, "Partially Met": 0.5, "Unmet": 0.0}  # as states/machines/report.py document()


def _table(model: type[SQLModel]) -> FromClause:
    """The table a SQLModel class is mapped to (its ``__table__``, which SQLModel does not declare)."""
    return class_mapper(model, configure=False).local_table


_D, _E = _table(Deadline), _table(AuditEvent)
_SVC, _ORG, _NET = _table(Service), _table(Organisation), _table(Network)
_RISK, _REPORT, _SA = _table(Risk), _table(Report), _table(SelfAssessment)


# ---------------------------------------------------------------- where rows sit


def closed_states(kind: str) -> frozenset[str]:
    """States in which an item of ``kind`` is not open: terminal, initial (transient) or at rest."""
    spec = get_spec(kind)
    return spec.terminal | {spec.initial.value} | AT_REST.get(kind, frozenset())


def _items(open_only: bool = False) -> Any:
    """Every stateful row of every kind as (kind, item_id, state, created_at, service_id,
    organisation_id, network_id): one UNION ALL; a kind without a column gives NULL."""
    parts = []
    for kind in kinds():
        t = _table(get_spec(kind).model)
        ids = [
            t.c[c] if c in t.c else cast(null(), Integer).label(c)
            for c in ("service_id", "organisation_id", "network_id")
        ]
        q = select(literal(kind).label("kind"), t.c.id.label("item_id"), t.c.state, t.c.created_at, *ids)
        parts.append(q.where(t.c.state.notin_(closed_states(kind))) if open_only else q)
    return union_all(*parts).subquery("item")


def _place(src: FromClause, service_id: Any, organisation_id: Any = None, network_id: Any = None) -> FromClause:
    """Outer-join the service, its Trust and its network (an item's own ids win over its service's)."""
    net_id = _SVC.c.network_id if network_id is None else func.coalesce(network_id, _SVC.c.network_id)
    org_id = (
        _SVC.c.organisation_id if organisation_id is None else func.coalesce(organisation_id, _SVC.c.organisation_id)
    )
    return (
        src.outerjoin(_SVC, _SVC.c.id == service_id)
        .outerjoin(_NET, _NET.c.id == net_id)
        .outerjoin(_ORG, _ORG.c.id == org_id)
    )


_PLACE_COLS = (
    _NET.c.code.label("network"),
    _NET.c.id.label("network_id"),
    _ORG.c.name.label("organisation"),
    _ORG.c.id.label("organisation_id"),
    _SVC.c.name.label("service"),
    _SVC.c.id.label("service_id"),
)


def _in_network(network_code: str | None) -> list[ColumnElement[bool]]:
    return [] if network_code is None else [_NET.c.code == network_code]


def _midnight(day: date) -> datetime:
    """The instant a London day starts, as aware UTC (to compare with stored timestamps)."""
    return datetime.combine(day, time(), tzinfo=LONDON).astimezone(UTC)


def _age_days(today: date, created: datetime) -> int:
    """Days since the row was created (0 for a row created after an earlier ``--as-of`` date)."""
    return max((today - created.astimezone(LONDON).date()).days, 0)


# ---------------------------------------------------------------- outstanding deadlines


def _outstanding(d: FromClause) -> ColumnElement[bool]:
    """SQL for "this deadline still waits on someone" (see the module docstring)."""
    return d.c.status.in_([s.value for s in OUTSTANDING])


def _deadline_rows(session: Session, *where: ColumnElement[bool], kind: str | None = None) -> list[Any]:
    """Outstanding deadlines with their item's state and place, filtered by ``where``."""
    item = _items()
    src = _place(
        _D.join(item, and_(item.c.kind == _D.c.kind, item.c.item_id == _D.c.item_id)),
        item.c.service_id,
        item.c.organisation_id,
        item.c.network_id,
    )
    q = (
        select(
            _D.c.id,
            _D.c.kind,
            _D.c.item_id,
            _D.c.name,
            _D.c.due_on,
            _D.c.status,
            _D.c.nation,
            item.c.state,
            *_PLACE_COLS,
        )
        .select_from(src)
        .where(_outstanding(_D), *where)
    )
    if kind is not None:
        q = q.where(_D.c.kind == kind)
    return list(session.execute(q.order_by(_D.c.due_on, _D.c.kind, _D.c.item_id, _D.c.id)))


class _People:
    """Contacts by role, read in one query and matched like the outbox does: the service's,
    else the Trust's, else the network's, else a national one."""

    def __init__(self, session: Session, roles: set[str]) -> None:
        self._by: dict[tuple[str, str, int | None], str] = {}
        q = select(
            col(Contact.role),
            col(Contact.name),
            col(Contact.service_id),
            col(Contact.organisation_id),
            col(Contact.network_id),
        )
        for role, name, svc, org, net in session.execute(
            q.where(col(Contact.role).in_(sorted(roles))).order_by(col(Contact.id))
        ):
            level = (
                ("service", svc)
                if svc
                else ("organisation", org)
                if org
                else ("network", net)
                if net
                else ("national", None)
            )
            self._by.setdefault((role, *level), name)

    def name(self, role: str, row: Any) -> str | None:
        for level, key in (
            ("service", row.service_id),
            ("organisation", row.organisation_id),
            ("network", row.network_id),
            ("national", None),
        ):
            found = self._by.get((role, level, key))
            if found:
                return found
        return None


def _rule(kind: str, name: str) -> Any:
    return get_spec(kind).deadline_rules.get(name)


def _deadline_view(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
    people = _People(session, {r.owner for r in (_rule(x.kind, x.name) for x in rows) if r})
    out = []
    for x in rows:
        rule = _rule(x.kind, x.name)
        owner = rule.owner if rule else None
        out.append(
            {
                "kind": x.kind,
                "id": x.item_id,
                "deadline": x.name,
                "due_on": x.due_on.isoformat(),
                "state": x.state,
                "owner": owner,
                "owner_name": people.name(owner, x) if owner else None,
                "step": rule.step if rule else None,
                "network": x.network,
                "organisation": x.organisation,
                "service": x.service,
                "service_id": x.service_id,
            }
        )
    return out


# ---------------------------------------------------------------- the panels


def risk_register(session: Session, today: date, network_code: str | None = None) -> list[dict[str, Any]]:
    """Every open IR, SC and GC with who must act next, what, and by when (DOMAIN.md: "every
    open item should show its owner, next step and due date"). Open: not in the risk
    machine's terminal states (closed, withdrawn). The owner is the role of the earliest
    outstanding deadline's rule (``DeadlineRule.owner``) and the contact holding it for the
    service; a risk with no deadline running (escalated) is the Network Manager's.
    ``days_open`` counts from the row's creation; ``overdue`` means its next deadline has passed."""
    spec = get_spec("risk")
    risks = session.execute(
        select(
            _RISK.c.id,
            _RISK.c.level,
            _RISK.c.title,
            _RISK.c.state,
            _RISK.c.impact,
            _RISK.c.likelihood,
            _RISK.c.created_at,
            *_PLACE_COLS,
        )
        .select_from(_place(_RISK, _RISK.c.service_id))
        .where(_RISK.c.state.notin_(spec.terminal | {spec.initial.value}), *_in_network(network_code))
    ).all()
    first: dict[int, Any] = {}
    for d in _deadline_rows(session, *_in_network(network_code), kind="risk"):
        first.setdefault(d.item_id, d)
    people = _People(session, {DEFAULT_OWNER, *(r.owner for r in spec.deadline_rules.values())})
    out = []
    for r in risks:
        d = first.get(r.id)
        rule = spec.deadline_rules.get(d.name) if d else None
        owner = rule.owner if rule else DEFAULT_OWNER
        out.append(
            {
                "network": r.network,
                "organisation": r.organisation,
                "service": r.service,
                "service_id": r.service_id,
                "id": r.id,
                "ref": f"{r.level}-{r.id}",
                "level": r.level,
                "title": r.title,
                "state": r.state,
                "score": r.impact * r.likelihood if r.impact and r.likelihood else None,
                "owner": owner,
                "owner_name": people.name(owner, r),
                "next_step": rule.step if rule else spec.next_step.get(r.state),
                "deadline": d.name if d else None,
                "due_on": d.due_on.isoformat() if d else None,
                "paused": bool(d and d.status == DeadlineStatus.PAUSED.value),
                "days_open": _age_days(today, r.created_at),
                "overdue": bool(d and d.status != DeadlineStatus.PAUSED.value and d.due_on < today),
            }
        )
    return sorted(out, key=lambda x: (x["network"] or "", x["service"] or "", x["due_on"] or "9999-12-31", x["id"]))


def overdue(session: Session, today: date, network_code: str | None = None) -> list[dict[str, Any]]:
    """Every outstanding, running (not paused) deadline of any kind due before ``today``, with
    the working days it is late by (the deadline's own nation's calendar). Oldest first."""
    rows = _deadline_rows(
        session, _D.c.due_on < today, _D.c.status != DeadlineStatus.PAUSED.value, *_in_network(network_code)
    )
    late: dict[tuple[str, date], int] = {}
    out = _deadline_view(session, rows)
    for view, x in zip(out, rows):
        key = (x.nation, x.due_on)
        if key not in late:
            late[key] = calendar_for(x.nation).working_days_between(x.due_on, today)
        view["working_days_overdue"] = late[key]
    return out


def upcoming(
    session: Session, today: date, working_days: int = UPCOMING_WORKING_DAYS, network_code: str | None = None
) -> list[dict[str, Any]]:
    """Open deadlines of any kind due from ``today`` to the ``working_days``-th working day
    after it, by the deadline's nation's calendar. Soonest first."""
    horizon = {n: calendar_for(n).add_working_days(today, working_days) for n in NATIONS}
    rows = _deadline_rows(
        session,
        _D.c.status == DeadlineStatus.OPEN.value,
        _D.c.due_on >= today,
        _D.c.due_on <= max(horizon.values()),
        *_in_network(network_code),
    )
    rows = [x for x in rows if x.due_on <= horizon.get(x.nation, horizon["ENG"])]
    out = _deadline_view(session, rows)
    for view, x in zip(out, rows):
        view["working_days_left"] = calendar_for(x.nation).working_days_between(today, x.due_on)
    return out


def open_by_state_and_age(session: Session, today: date, network_code: str | None = None) -> list[dict[str, Any]]:
    """Open items (not terminal, not at rest: see ``closed_states``) counted per kind and state,
    split into age buckets by days since the row was created (London dates). One query."""
    item = _items(open_only=True)
    bucket = case(
        *[
            (item.c.created_at >= _midnight(today - timedelta(days=upper)), label)
            for label, upper in AGE_BUCKETS
            if upper is not None
        ],
        else_=AGE_BUCKETS[-1][0],
    ).label("bucket")
    q = (
        select(item.c.kind, item.c.state, bucket, func.count().label("n"))
        .select_from(_place(item, item.c.service_id, item.c.organisation_id, item.c.network_id))
        .where(*_in_network(network_code))
        .group_by(item.c.kind, item.c.state, bucket)
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for kind, state, label, n in session.execute(q):
        counts.setdefault((kind, state), dict.fromkeys((b for b, _ in AGE_BUCKETS), 0))[label] = n
    order = {k: [s.value for s in get_spec(k).states] for k in kinds()}
    return [
        {"kind": k, "state": s, "count": sum(ages.values()), "ages": ages}
        for (k, s), ages in sorted(
            counts.items(), key=lambda kv: (kinds().index(kv[0][0]), order[kv[0][0]].index(kv[0][1]))
        )
    ]


def escalations(
    session: Session, today: date, network_code: str | None = None, days: int = 365
) -> list[dict[str, Any]]:
    """Risks escalated in the ``days`` up to and including ``today``, newest first.

    Read from the audit trail: an event of kind ``risk`` whose ``to_state`` is the machine's
    ``escalated`` state, entered from another state (``still_no_response`` after a chase, or
    a second ``response_inadequate``). The audit event is the fact; the escalation letters in
    the outbox are its consequence, and may still be queued or have failed."""
    q = (
        select(
            _E.c.item_id, _E.c.at, _E.c.trigger, _E.c.actor, _RISK.c.level, _RISK.c.title, _RISK.c.state, *_PLACE_COLS
        )
        .select_from(_place(_E.join(_RISK, _RISK.c.id == _E.c.item_id), _RISK.c.service_id))
        .where(
            _E.c.kind == "risk",
            _E.c.to_state == ESCALATED,
            _E.c.from_state != ESCALATED,
            _E.c.at >= _midnight(today - timedelta(days=days)),
            _E.c.at < _midnight(today + timedelta(days=1)),
            *_in_network(network_code),
        )
        .order_by(_E.c.at.desc(), _E.c.id.desc())
    )
    return [
        {
            "id": e.item_id,
            "ref": f"{e.level}-{e.item_id}",
            "level": e.level,
            "title": e.title,
            "escalated_on": e.at.astimezone(LONDON).date().isoformat(),
            "trigger": e.trigger,
            "actor": e.actor,
            "state": e.state,
            "network": e.network,
            "organisation": e.organisation,
            "service": e.service,
            "service_id": e.service_id,
        }
        for e in session.execute(q)
    ]


def report_achievement(compliance: list[dict[str, Any]]) -> float | None:
    """A report's compliance %: (Met x 1 + Partially Met x 0.5 + Unmet x 0) / standards scored
    x 100, "Not applicable" left out (as the report document shows it); None if none scored."""
    scored = [c["status"] for c in compliance if c.get("status") in REPORT_WEIGHTS]
    return round(100 * sum(REPORT_WEIGHTS[s] for s in scored) / len(scored), 1) if scored else None


def compliance_trend(session: Session, network_code: str | None = None) -> list[dict[str, Any]]:
    """Compliance % per service per programme year (April-March), oldest year first.

    Two sources, each the latest of its year: ``self_assessment``, the validated total
    achievement of the service's self-assessment declaration for that programme year
    ((Met x 1 + Partially Met x 0.5 + Unmet x 0) / standards x 100, weights local policy,
    as stored at validation); and ``report``, the compliance recorded in the latest approved
    peer review report whose visit (or self-assessment receipt) falls in that year
    (``report_achievement``). ``compliance`` is the report's figure where there is one (the
    panel's judgement on the evidence), else the self-assessment's. ``cycle_year`` places
    the year in the network's programme (1 or 2 of a biennial cycle; 1 of 1 for annual)."""
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    places: dict[int, Any] = {}
    sa = (
        select(
            _SA.c.programme_year, _SA.c.achievement, _SA.c.validated_on, _NET.c.cycle, _NET.c.programme, *_PLACE_COLS
        )
        .select_from(_place(_SA, _SA.c.service_id))
        .where(_SA.c.achievement.is_not(None), *_in_network(network_code))
        .order_by(_SA.c.validated_on, _SA.c.id)
    )
    for r in session.execute(sa):
        places[r.service_id] = r
        cells.setdefault((r.service_id, r.programme_year), {})["self_assessment"] = r.achievement
    rep = (
        select(_REPORT.c.basis_date, _REPORT.c.compliance, _NET.c.cycle, _NET.c.programme, *_PLACE_COLS)
        .select_from(_place(_REPORT, _REPORT.c.service_id))
        .where(_REPORT.c.approved_on.is_not(None), *_in_network(network_code))
        .order_by(_REPORT.c.basis_date, _REPORT.c.id)
    )
    for r in session.execute(rep):
        pct = report_achievement(r.compliance or [])
        if pct is not None:
            places[r.service_id] = r
            cells.setdefault((r.service_id, programme_year_of(r.basis_date)), {})["report"] = pct
    out = []
    for (service_id, year), got in cells.items():
        p = places[service_id]
        prog = programme_for(p.cycle, p.programme)
        report, declared = got.get("report"), got.get("self_assessment")
        out.append(
            {
                "network": p.network,
                "organisation": p.organisation,
                "service": p.service,
                "service_id": service_id,
                "programme_year": year,
                "year": f"{year}-{str(year + 1)[2:]}",
                "cycle_year": cycle_year(prog, year),
                "cycle_years": prog.cycle_years,
                "self_assessment": declared,
                "report": report,
                "compliance": report if report is not None else declared,
                "source": "report" if report is not None else "self-assessment",
            }
        )
    return sorted(out, key=lambda x: (x["network"] or "", x["service"] or "", x["programme_year"]))


def summary(session: Session, today: date, network_code: str | None = None) -> dict[str, Any]:
    """Every panel for one network (or all), with the headline figures the page shows."""
    data: dict[str, Any] = {
        "as_of": today.isoformat(),
        "register": risk_register(session, today, network_code),
        "overdue": overdue(session, today, network_code),
        "upcoming": upcoming(session, today, network_code=network_code),
        "open_by_state": open_by_state_and_age(session, today, network_code),
        "escalations": escalations(session, today, network_code),
        "compliance": compliance_trend(session, network_code),
    }
    data["figures"] = {
        "open_risks": len(data["register"]),
        "overdue": len(data["overdue"]),
        "upcoming": len(data["upcoming"]),
        "escalations": len(data["escalations"]),
        "open_items": sum(r["count"] for r in data["open_by_state"]),
    }
    return data
