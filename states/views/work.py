"""What a member of network staff sees: My work, the lists of items, one item's page.

Read-only. Every query places an item in its service, Trust and network in SQL (``place``) and
filters by the principal's grants there, so a page costs a few queries whatever the number of
items: an item is visible when one of the principal's grants covers its scope (a grant for the
whole installation covers every item); another network's item is ``NotFound`` with the words a
missing one gets, so nothing says it exists.

My work lists the outstanding deadlines (``models.tables.OUTSTANDING``) whose rule's owner is a
role the principal holds where the item sits, overdue first, then by due date; the four-eyes
proposals waiting for a second person the principal could be; and, for operators, the outbox's
incidents (failed, undeliverable, in doubt); not the sweep's skipped items (on its run's log).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import String, and_, cast, false, func, literal_column, null, or_, select, true
from sqlalchemy.orm import class_mapper
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.sql.elements import Null
from sqlmodel import Session, SQLModel, col
from sqlmodel import select as sm_select

from models.tables import (
    IN_DOUBT,
    OUTSTANDING,
    Deadline,
    DeadlineStatus,
    Network,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    Proposal,
    Risk,
    Service,
    StatefulItem,
)
from models.types import is_row_id
from states.calendar import calendar_for
from states.clock import Clock, SystemClock, local_date
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec, kinds
from states.principal import INSTALLATION, Grant, Principal
from states.roles import NETWORK_SIDE, OPERATOR, PORTAL_ROLES
from states.views import forms

PREFIX = {
    "risk": "",
    "visit": "Visit",
    "report": "Report",
    "appeal": "Appeal",
    "complaint": "Complaint",
    "phase": "Phase",
    "submission": "Submission",
    "surveillance": "Surveillance",
    "selfassessment": "Self-assessment",
    "perinatal": "PQS",
    "mssp": "MSSP",
    "action_plan": "Plan",
}
# Columns that point at another item: the related items an item page links to (both ways).
LINKS = {"visit_id": "visit", "report_id": "report", "phase_id": "phase"}
MAX_PER_PAGE = 200
COUNT_CAP = 1000  # My work counts a person's deadlines up to this ("1000+"): an exact count of
# tens of thousands cost most of the page's time (the web bench), and no one pages that far


def _table(model: type[SQLModel]) -> Any:
    return class_mapper(model, configure=False).local_table


_D, _P, _M = _table(Deadline), _table(Proposal), _table(OutboxMessage)
_SVC_T, _ORG_T, _NET_T = _table(Service), _table(Organisation), _table(Network)


@dataclass(frozen=True)
class Place:
    """One kind's table joined to its service, Trust and network, with the ids as SQL.

    ``src``: the item with its service, network and Trust (for lists and names); ``svc``: the
    service alias the ids read (None for a kind without a service), so a query that only filters
    by scope joins the service alone (``scoped``)."""

    item: Any
    src: FromClause
    svc: Any
    service_id: Any
    organisation_id: Any
    network_id: Any
    service: Any  # the service's name
    network: Any  # the network's code
    title: Any

    def scoped(self, base: FromClause) -> FromClause:
        """``base`` (already joined to the item) with what the scope's ids need: the service, if any."""
        if self.svc is None:
            return base
        return base.outerjoin(self.svc, self.svc.c.id == self.item.c.service_id)


@functools.cache
def place(kind: str) -> Place:
    """Where items of ``kind`` sit, as SQL: an item's own ids win over its service's (built once)."""
    t = _table(get_spec(kind).model)
    net, cols = _NET_T.alias("net"), t.c
    svc = _SVC_T.alias("svc") if "service_id" in cols else None
    if svc is not None:
        src = t.outerjoin(svc, svc.c.id == cols.service_id)
        service_id = cols.service_id
        org_id = cols.organisation_id if "organisation_id" in cols else svc.c.organisation_id
        if "network_id" in cols:
            net_id = cols.network_id
        elif "organisation_id" in cols:  # an MSSP case: its service's network, else its Trust's first service's
            first = _SVC_T.alias("first_svc")
            trust_net = (
                select(first.c.network_id)
                .where(first.c.organisation_id == cols.organisation_id)
                .order_by(first.c.id)
                .limit(1)
                .scalar_subquery()
            )
            net_id = func.coalesce(svc.c.network_id, trust_net)
        else:
            net_id = svc.c.network_id
    else:
        src, service_id = t, null()
        org_id = cols.organisation_id if "organisation_id" in cols else null()
        net_id = cols.network_id
    src = src.outerjoin(net, net.c.id == net_id)
    title = cols.title if "title" in cols else cols.category if "category" in cols else null()
    return Place(t, src, svc, service_id, org_id, net_id, svc.c.name if svc is not None else null(), net.c.code, title)


def _covers(g: Grant, p: Place, *, by_deadline: bool = False) -> ColumnElement[bool]:
    """SQL for "grant ``g`` reaches the item". ``by_deadline``: the id is read as ``+ 0``, so the
    planner does not start from the service's index but from the deadlines (SQLite's hint: on
    PostgreSQL it hid the column's statistics, and every risk of a network was read and sorted)."""
    if g.scope == INSTALLATION:
        return true()
    column = {"service": p.service_id, "organisation": p.organisation_id, "network": p.network_id}[g.scope]
    if by_deadline and isinstance(column, ColumnElement) and not isinstance(column, Null):
        column = column + 0
    return column == g.scope_id  # type: ignore[no-any-return]


# Kinds only the network's side sees: a complaint is about the process or conduct of a review,
# made to the network office or the Network Manager (000 s8.2), and names the complainant; a
# Trust's or a commissioner's grant does not reach it.
NETWORK_ONLY = frozenset({"complaint"})


def reach(principal: Principal, kind: str) -> tuple[Grant, ...]:
    """The principal's grants that count for items of ``kind`` (``NETWORK_ONLY``: network roles only)."""
    if kind not in NETWORK_ONLY:
        return principal.grants
    return tuple(g for g in principal.grants if g.role in NETWORK_SIDE)


def to_portal(people: list[dict[str, Any]]) -> bool:
    """Is a letter addressed (to or cc) to a Trust's or a commissioner's role? Those are the
    letters a Trust or commissioner user sees; the network's own mail (to reviewers, reminders to
    the Network Manager, letters to the CQC) stays the network's."""
    return any(p.get("role") in PORTAL_ROLES for p in people)


def to_portal_sql(to: Any, cc: Any) -> ColumnElement[bool]:
    """``to_portal`` as SQL over the outbox's JSON recipients (serialised by json.dumps, on either
    database): one LIKE per role, on the rows an index range already chose."""
    return or_(*(cast(c, String).like(f'%"role": "{r}"%') for c in (to, cc) for r in sorted(PORTAL_ROLES)))


def _visible(principal: Principal, p: Place, kind: str) -> ColumnElement[bool]:
    grants = reach(principal, kind)
    if any(g.scope == INSTALLATION for g in grants):
        return true()
    conds = [_covers(g, p) for g in grants]
    return or_(*conds) if conds else false()


def ref(kind: str, item_id: int, level: str | None = None) -> str:
    """How people name an item: IR-12, Visit-3, Appeal-1."""
    return f"{level}-{item_id}" if kind == "risk" and level else f"{PREFIX.get(kind) or kind.title()}-{item_id}"


def _title(kind: str, title: str | None, service: str | None) -> str:
    if title:
        return f"Complaint: {title.replace('_', ' ')}" if kind == "complaint" else title
    return f"{get_spec(kind).describe.split(' (')[0] or kind}" + (f": {service}" if service else "")


# ------------------------------------------------------------------ one item, if visible


def can_see(session: Session, principal: Principal, kind: str, row: StatefulItem) -> bool:
    """Some grant of the principal covers the item's scope (for ``NETWORK_ONLY`` kinds, a network role's)."""
    grants = reach(principal, kind)
    if any(g.scope == INSTALLATION for g in grants):
        return True
    where = get_spec(kind).recipient_scope(session, row)
    return any(g.covers(where) for g in grants)


def get_visible(session: Session, principal: Principal, kind: str, item_id: int) -> StatefulItem:
    """The row, or NotFound (the same message whether absent or hidden)."""
    spec = get_spec(kind)
    missing = NotFound(f"{kind} {item_id} not found")
    if not is_row_id(item_id):
        raise missing
    row = session.get(spec.model, item_id)
    if row is None or not can_see(session, principal, kind, row):
        raise missing
    return row


# ------------------------------------------------------------------ My work


def _owned(kind: str) -> dict[str, list[str]]:
    """owner role -> the deadline names of ``kind`` it owns."""
    out: dict[str, list[str]] = {}
    for name, rule in get_spec(kind).deadline_rules.items():
        out.setdefault(rule.owner, []).append(name)
    return out


def _days_left(today: date, d: Any) -> int | None:
    if d.status == DeadlineStatus.PAUSED:
        return None if d.paused_remaining is None else int(d.paused_remaining)
    return calendar_for(d.nation or "ENG").working_days_between(today, d.due_on)


def _late(d: Deadline, today: date) -> bool:
    return d.status != DeadlineStatus.PAUSED and d.due_on < today


def _late_row(r: Any, today: date) -> bool:
    """``_late`` of a row read as columns (status, due_on)."""
    return bool(r.status != DeadlineStatus.PAUSED.value and r.due_on < today)


def _about(session: Session, deadlines: list[Deadline]) -> dict[tuple[str, int], dict[str, Any]]:
    """The state, title, service and network of the items of a page of deadlines: one query per kind."""
    by_kind: dict[str, set[int]] = {}
    for d in deadlines:
        by_kind.setdefault(d.kind, set()).add(d.item_id)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for kind, ids in by_kind.items():
        p = place(kind)
        level = p.item.c.level if kind == "risk" else null()
        q = select(
            p.item.c.id,
            p.item.c.state,
            p.title.label("title"),
            p.service.label("service"),
            p.network.label("network"),
            level.label("level"),
        ).select_from(p.src)
        for r in session.execute(q.where(p.item.c.id.in_(sorted(ids)))):
            out[(kind, r.id)] = dict(r._mapping)
    return out


def my_work(
    session: Session,
    principal: Principal,
    clock: Clock,
    *,
    limit: int = 50,
    offset: int = 0,
    overdue_only: bool = False,
) -> dict[str, Any]:
    """deadlines (a page of them, overdue first; only the overdue if asked), total, proposals
    (not mine), incidents."""
    limit, offset = max(1, min(limit, MAX_PER_PAGE)), max(0, offset)
    today = local_date(clock.now())
    # Each kind's owned deadlines come in streams in due-date order (running, overdue first;
    # paused), read only as far as the page needs (ix_deadline_open_[name_]due); the page merges
    # the streams' heads; the total is counted up to COUNT_CAP.
    want = offset + limit
    heads: list[Any] = []
    total = 0
    # The kinds with a paused deadline (few), read from ix_deadline_status_due (the order asks for
    # it, or SQLite scans the table): a kind without one does not ask for its paused stream.
    held = select(_D.c.kind).where(_D.c.status == DeadlineStatus.PAUSED.value).order_by(_D.c.status, _D.c.due_on)
    paused_kinds = set(session.execute(select(held.subquery().c.kind).distinct()).scalars())
    hint = session.get_bind().dialect.name == "sqlite"
    for kind in kinds():
        owned = _owned(kind)
        p = place(kind)
        conds = [
            and_(_D.c.name.in_(owned[g.role]), _covers(g, p, by_deadline=hint))
            for g in reach(principal, kind)
            if owned.get(g.role)
        ]
        if not conds:
            continue
        base = (
            select(_D.c.id, _D.c.kind, _D.c.item_id, _D.c.due_on, _D.c.status)
            .select_from(p.scoped(_D.join(p.item, p.item.c.id == _D.c.item_id)))
            .where(_D.c.kind == kind, or_(*conds))
        )
        # running: the partial index's own condition written as it is, so that SQLite uses it
        running = base.where(_D.c.status != literal_column("'closed'"), _D.c.status != DeadlineStatus.PAUSED.value)
        paused = base.where(_D.c.status == DeadlineStatus.PAUSED.value)
        if overdue_only:
            streams = [running.where(_D.c.due_on < today)]
        else:
            streams = [running, paused] if kind in paused_kinds else [running]
        for q in streams:
            head = session.execute(q.order_by(_D.c.due_on, _D.c.item_id, _D.c.id).limit(want)).all()
            heads += head
            # a stream shorter than the page needed is all there is; a count stops at the cap's rest
            left = COUNT_CAP + 1 - total
            if len(head) < want or left <= len(head):
                n = len(head)
            else:
                n = session.execute(select(func.count()).select_from(q.limit(left).subquery())).scalar_one()
            total += n
    more, total = total > COUNT_CAP, min(total, COUNT_CAP)
    heads.sort(key=lambda r: (not _late_row(r, today), r.due_on, r.kind, r.item_id, r.id))
    ids = [r.id for r in heads[offset:want]]
    page = list(session.exec(sm_select(Deadline).where(col(Deadline.id).in_(ids)))) if ids else []
    page.sort(key=lambda d: (not _late(d, today), d.due_on, d.kind, d.item_id, d.id))
    about = _about(session, page)
    deadlines = []
    for d in page:
        spec = get_spec(d.kind)
        rule = spec.deadline_rules.get(d.name)
        item = about.get((d.kind, d.item_id), {})
        deadlines.append(
            {
                "kind": d.kind,
                "id": d.item_id,
                "ref": ref(d.kind, d.item_id, item.get("level")),
                "title": _title(d.kind, item.get("title"), item.get("service")),
                "service": item.get("service"),
                "network": item.get("network"),
                "state": item.get("state"),
                "deadline": d.name,
                "due": rule.step if rule else d.name,
                "owner": rule.owner if rule else None,
                "next_step": spec.next_step.get(item.get("state") or ""),
                "due_on": d.due_on,
                "status": d.status,
                "working_days_left": _days_left(today, d),
                "overdue": _late(d, today),
            }
        )
    return {
        "deadlines": deadlines,
        "total": total,
        "total_is_at_least": more,  # more than COUNT_CAP: the total shown is a lower bound
        "limit": limit,
        "offset": offset,
        "overdue_only": overdue_only,
        "today": today,
        "proposals": proposals_for(session, principal),
        "incidents": incidents(session, principal),
        "incidents_note": "the sweep's skipped items are on its run's summary and log, not listed here",
    }


def _risk_levels(session: Session, ids: list[int]) -> dict[int, str]:
    """IR, SC or GC of these risks, in one query (how people name them: SC-5)."""
    if not ids:
        return {}
    return {i: lvl for i, lvl in session.execute(sm_select(Risk.id, Risk.level).where(col(Risk.id).in_(ids)))}


def proposals_for(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Four-eyes proposals at their item's current version, made by someone else, that this
    principal may confirm (a role the trigger allows, held where the item sits)."""
    out: list[dict[str, Any]] = []
    others = or_(_P.c.user_id.is_(None), _P.c.user_id != principal.user_id)
    waiting = set(session.execute(select(_P.c.kind).where(others).distinct()).scalars())
    if not waiting:
        return out
    allowed = forms.permission_table(session)
    for kind in [k for k in kinds() if k in waiting]:
        p = place(kind)
        spec = get_spec(kind)
        q = (
            select(
                _P.c.id,
                _P.c.item_id,
                _P.c.trigger,
                _P.c.actor,
                _P.c.role,
                _P.c.at,
                _P.c.params,
                _P.c.note,
                p.item.c.state,
                p.item.c.version,
                p.service_id.label("service_id"),
                p.organisation_id.label("organisation_id"),
                p.network_id.label("network_id"),
                cast(p.title, String).label("title"),
                cast(p.service, String).label("service"),
            )
            .select_from(
                p.src.join(
                    _P, and_(_P.c.kind == kind, _P.c.item_id == p.item.c.id, _P.c.item_version == p.item.c.version)
                )
            )
            .where(others, _visible(principal, p, kind))
            .order_by(_P.c.at, _P.c.id)
        )
        for r in session.execute(q):
            rows = spec.rows_for(r.trigger, r.state)
            roles = allowed.roles(spec, r.trigger, rows)
            where = {"service_id": r.service_id, "organisation_id": r.organisation_id, "network_id": r.network_id}
            if not rows or not set(principal.roles_at(where)) & roles:
                continue
            out.append(
                {
                    "kind": kind,
                    "id": r.item_id,
                    "ref": ref(kind, r.item_id),
                    "title": _title(kind, r.title, r.service),
                    "trigger": r.trigger,
                    "proposed_by": r.actor,
                    "role": r.role,
                    "at": r.at,
                    "params": r.params,
                    "note": r.note,
                    "version": r.version,
                }
            )
    levels = _risk_levels(session, [found["id"] for found in out if found["kind"] == "risk"])
    for found in out:
        if found["kind"] == "risk" and found["id"] in levels:
            found["ref"] = ref("risk", found["id"], levels[found["id"]])
    return out


def incidents(session: Session, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """The outbox's incidents for an operator: failed, undeliverable, or in doubt after a crash."""
    if not principal.holds(OPERATOR):
        return []
    q = (
        sm_select(OutboxMessage)
        .where(
            or_(
                col(OutboxMessage.status).in_([OutboxStatus.FAILED.value, OutboxStatus.UNDELIVERABLE.value]),
                and_(
                    col(OutboxMessage.status) == OutboxStatus.SENDING.value,
                    col(OutboxMessage.last_error).startswith(IN_DOUBT),
                ),
            )
        )
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
    wide = any(g.scope == INSTALLATION and g.role == OPERATOR for g in principal.grants)
    rows = [m for m in session.exec(q) if wide or _item_visible(session, principal, m.kind, m.item_id)]
    return [
        {
            "message_id": m.id,
            "kind": m.kind,
            "id": m.item_id,
            "template": m.template,
            "status": "in doubt" if m.status == OutboxStatus.SENDING else m.status,
            "error": m.last_error,
            "created_at": m.created_at,
        }
        for m in rows
    ]


def _item_visible(session: Session, principal: Principal, kind: str, item_id: int) -> bool:
    try:
        get_visible(session, principal, kind, item_id)
    except NotFound:
        return False
    return True


# ------------------------------------------------------------------ lists


_REF = re.compile(r"^\s*(?:[A-Za-z][A-Za-z-]*-)?(\d{1,18})\s*$")


def list_items(
    session: Session,
    principal: Principal,
    kind: str,
    *,
    state: str | None = None,
    network: str | None = None,
    service: int | None = None,
    due_before: date | None = None,
    overdue: bool = False,
    q: str | None = None,
    page: int = 1,
    per_page: int = 50,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """One kind's items the principal may see, filtered and searched in SQL (reference or title),
    a page at a time: rows (each with its next deadline), total, page, pages."""
    spec = get_spec(kind)
    states = [s.value for s in spec.states]
    if state and state not in states:
        raise InvalidInput(f"unknown state {state!r} for {kind}: {', '.join(states)}")
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    today = local_date((clock or SystemClock()).now())
    p = place(kind)
    t = p.item
    outstanding = and_(_D.c.kind == kind, _D.c.item_id == t.c.id, _D.c.status.in_([s.value for s in OUTSTANDING]))
    where: list[ColumnElement[bool]] = [_visible(principal, p, kind)]
    if state:
        where.append(t.c.state == state)
    if network:
        where.append(p.network == network)
    if service is not None:
        where.append(p.service_id == service)
    if due_before is not None:
        where.append(select(_D.c.id).where(outstanding, _D.c.due_on < due_before).exists())
    if overdue:
        late = and_(_D.c.due_on < today, _D.c.status != DeadlineStatus.PAUSED.value)
        where.append(select(_D.c.id).where(outstanding, late).exists())
    if q and q.strip():
        m = _REF.match(q)
        found = [t.c.id == int(m.group(1))] if m else []
        if "title" in t.c or "category" in t.c:
            found.append(func.lower(p.title).contains(q.strip().lower(), autoescape=True))
        where.append(or_(*found) if found else false())
    total = session.execute(select(func.count()).select_from(p.src).where(*where)).scalar_one()
    nxt = select(_D.c.due_on).where(outstanding).order_by(_D.c.due_on, _D.c.id).limit(1).scalar_subquery()
    nxt_name = select(_D.c.name).where(outstanding).order_by(_D.c.due_on, _D.c.id).limit(1).scalar_subquery()
    level = t.c.level if kind == "risk" else cast(null(), String)
    rows = session.execute(
        select(
            t.c.id,
            t.c.state,
            t.c.version,
            t.c.updated_at,
            cast(p.title, String).label("title"),
            cast(p.service, String).label("service"),
            p.network.label("network"),
            level.label("level"),
            nxt.label("due_on"),
            nxt_name.label("deadline"),
        )
        .select_from(p.src)
        .where(*where)
        .order_by(t.c.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    out = [
        {
            "id": r.id,
            "ref": ref(kind, r.id, r.level),
            "title": _title(kind, r.title, r.service),
            "state": r.state,
            "version": r.version,
            "service": r.service,
            "network": r.network,
            "deadline": r.deadline,
            "due_on": r.due_on,
            "overdue": bool(r.due_on and r.due_on < today),
            "updated_at": r.updated_at,
        }
        for r in rows
    ]
    return {
        "kind": kind,
        "rows": out,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, math.ceil(total / per_page)),
        "states": states,
    }


# ------------------------------------------------------------------ one item's page (states/views/item.py)


def item_page(session: Session, principal: Principal, kind: str, item_id: int, clock: Clock) -> dict[str, Any]:
    """summary, state, states (diagram), deadlines, history, letters, related, attachments, triggers."""
    from states.views import item  # lazy: item.py builds on this module (split to keep both short)

    return item.page(session, principal, kind, item_id, clock)


def letter(session: Session, principal: Principal, kind: str, item_id: int, message_id: int) -> dict[str, Any]:
    """One letter about a visible item, as it was sent (headers and the text body), or NotFound."""
    from states.views import item  # lazy: item.py builds on this module (split to keep both short)

    return item.letter(session, principal, kind, item_id, message_id)
