"""The parts of "What is asked of us" (states/views/portal.py) that are not about who sees what:
the words for a deadline (what is asked, of whom, what happens if it is missed), working days by a
nation's calendar counted once per page, and the batched reads of the letters, next visits,
programme phases and published reports of the services a page shows. Read-only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    false,
    func,
    null,
    or_,
    select,
    union_all,
)
from sqlmodel import Session

from models.cycle import ProgrammePhase
from models.tables import OUTSTANDING, Attachment, Deadline, DeadlineStatus, OutboxMessage, OutboxStatus, Report, Visit
from states.calendar import calendar_for
from states.machines.spec import DeadlineRule, Letter, get_spec, kinds
from states.principal import Principal
from states.programmes import programme_for, programme_year_of, where
from states.roles import CONTACT_ROLES
from states.views.work import NETWORK_ONLY, _table, _title, place, ref, to_portal_sql

_D, _M, _A = _table(Deadline), _table(OutboxMessage), _table(Attachment)
_VISIT, _REPORT, _PHASE = _table(Visit), _table(Report), _table(ProgrammePhase)

# An item in one of these states is settled (not open) for the portal although its machine has no
# terminal state: a published report is done until an appeal reopens it; it is listed among the
# service's published reports instead.
SETTLED = {"report": frozenset({"published"})}
SHOWN_LETTERS = (OutboxStatus.QUEUED.value, OutboxStatus.SENDING.value, OutboxStatus.SENT.value)

# What happens when a deadline passes and the sweep fires its rule's ``on_due`` trigger, in words.
ON_DUE_WORDS = {
    ("risk", "no_response"): (
        "the network chases the Trust in writing with a short deadline; if there is still no response, "
        "it escalates to the Commissioning Lead and the Care Quality Commission"
    ),
    ("risk", "still_no_response"): (
        "the network escalates to the Commissioning Lead and the Care Quality Commission, "
        "copied to the Chief Executive and the Accountable Officer"
    ),
    ("perinatal", "board_review_missed"): (
        "the month is recorded as missed and the Chief Executive and Service Lead are chased in writing, "
        "copied to the Local Maternity System lead"
    ),
    ("phase", "mark_overdue"): "the phase is marked overdue and the network is reminded",
    ("phase", "open"): "the phase opens on its date",
}

_D, _M, _A = _table(Deadline), _table(OutboxMessage), _table(Attachment)
_VISIT, _REPORT, _PHASE = _table(Visit), _table(Report), _table(ProgrammePhase)


def role_name(role: str | None) -> str:
    return CONTACT_ROLES.get(role or "", (role or "").replace("-", " "))


def _names(roles: Iterable[str]) -> str:
    names = [role_name(r) for r in roles]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""


def if_missed(kind: str, rule: DeadlineRule) -> str:
    """What happens when the deadline passes, in a few words, from the rule itself: its ``on_due``
    trigger (the sweep fires it), else its overdue letter, else nothing automatic."""
    if rule.on_due:
        words = ON_DUE_WORDS.get((kind, rule.on_due))
        if words:
            return words
        dest = next((t["dest"] for t in get_spec(kind).transitions if t["trigger"] == rule.on_due), None)
        label = rule.on_due.replace("_", " ")
        return f"the item moves on by itself ({label}" + (f", to {dest.replace('_', ' ')})" if dest else ")")
    letter = rule.overdue
    if isinstance(letter, Letter):
        cc = f", copied to the {_names(letter.cc)}" if letter.cc else ""
        return f"a chase letter to the {_names(letter.to)}{cc}"
    if letter is not None:
        return "a chase letter from the network"
    return "nothing happens by itself: the network follows it up"


def _group_key(service_id: Any, organisation_id: Any, network_id: Any) -> tuple[str, int]:
    if service_id is not None:
        return ("service", int(service_id))
    if organisation_id is not None:
        return ("organisation", int(organisation_id))
    return ("network", int(network_id or 0))


class _Days:
    """Working days from today to a date by a nation's calendar: each nation's days around today are
    counted once (a running count), so a page of thousands of deadlines walks no calendar per row."""

    SPAN = 400  # days either side of today counted up front; a date further away is counted on its own

    def __init__(self, today: date) -> None:
        self.today = today
        self.counts: dict[str, dict[date, int]] = {}

    def left(self, nation: str, due: date) -> int:
        nation = nation or "ENG"
        counts = self.counts.get(nation)
        if counts is None:
            counts = self.counts[nation] = self._count(nation)
        at = counts.get(due)
        if at is None:
            return calendar_for(nation).working_days_between(self.today, due)
        return at - counts[self.today]

    def _count(self, nation: str) -> dict[date, int]:
        cal, out, n = calendar_for(nation), {}, 0
        day = self.today - timedelta(days=self.SPAN)
        for _ in range(2 * self.SPAN + 1):
            n += cal.is_working_day(day)
            out[day] = n  # working days in (start, day]: between two days, the difference
            day += timedelta(days=1)
        return out


_place = cache(place)  # a kind's SQL place, built once per process (immutable SQL constructs)


@cache
def _words(kind: str, deadline: str) -> dict[str, Any]:
    """What a deadline of ``kind`` asks, of whom, and what happens if it is missed, from its rule."""
    rule = get_spec(kind).deadline_rules.get(deadline)
    if rule is None:
        return {"step": deadline.replace("_", " "), "owner_role": None, "owner": "", "if_missed": ""}
    return {
        "step": rule.step,
        "owner_role": rule.owner,
        "owner": role_name(rule.owner),
        "if_missed": if_missed(kind, rule),
    }


# Each statement is built once per process for a kind and a shape of grants (their scopes, in
# order), its values bound when it runs (the grants' ids, today, the services shown): a page then
# spends no time building SQL or its cache key, only running it.
Shape = tuple[str, ...]


def shape_of(who: Principal) -> tuple[Shape, dict[str, Any]]:
    """The scopes of the principal's grants, and their ids as the statements' parameters."""
    return tuple(g.scope for g in who.grants), {f"g{i}": g.scope_id for i, g in enumerate(who.grants)}


def _visible_bound(p: Any, shape: Shape) -> Any:
    """``work._visible`` with each grant's id a parameter (``g0``, ``g1``...): a grant in a
    service's, Trust's or network's scope reaches the items placed there (no installation grant
    here: the portal reads none)."""
    conds = [
        {"service": p.service_id, "organisation": p.organisation_id, "network": p.network_id}[scope]
        == bindparam(f"g{i}", type_=Integer)
        for i, scope in enumerate(shape)
    ]
    return or_(*conds) if conds else false()


def _shown(p: Any, q: Any, shown: bool, own: bool) -> Any:
    """``q`` narrowed to the items of the services ``shown`` (a parameter), and, ``own``, to the
    items of no service (a Trust's or a network's own); None when the kind has nothing to show."""
    if not shown:
        return q
    if p.svc is None:
        return q if own else None
    cond = p.service_id.in_(bindparam("shown", expanding=True))
    return q.where(or_(cond, p.service_id.is_(None)) if own else cond)


def portal_kinds() -> list[str]:
    """The kinds a Trust's or a commissioner's grant may reach (not ``work.NETWORK_ONLY``)."""
    return [k for k in kinds() if k not in NETWORK_ONLY]


def _closed(kind: str) -> list[str]:
    spec = get_spec(kind)
    return sorted({*spec.terminal, *SETTLED.get(kind, ())})


def overview(session: Session, who: Principal, today: date) -> dict[tuple[str, int], dict[str, Any]]:
    """Every group's open items, overdue items, next date and the kinds it has open, for every
    service the grants reach: one grouped query per kind (no row per item leaves the database)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    shape, values = shape_of(who)
    for kind in portal_kinds():
        for s_id, o_id, n_id, n_open, n_late, first in session.execute(
            _overview_q(kind, shape), {**values, "today": today}
        ):
            got = out.setdefault(
                _group_key(s_id, o_id, n_id), {"open": 0, "overdue": 0, "next_due": None, "kinds": set()}
            )
            got["kinds"].add(kind)
            got["open"] += n_open
            got["overdue"] += n_late
            if first is not None and (got["next_due"] is None or first < got["next_due"]):
                got["next_due"] = first
    return out


@cache
def _overview_q(kind: str, shape: Shape) -> Any:
    p = _place(kind)
    t = p.item
    late = and_(_D.c.due_on < bindparam("today", type_=Date), _D.c.status != DeadlineStatus.PAUSED.value)
    sid, oid, nid = (cast(c, Integer) for c in (p.service_id, p.organisation_id, p.network_id))
    return (
        select(
            sid,
            oid,
            nid,
            func.count(distinct(t.c.id)),
            func.count(distinct(case((late, t.c.id)))),
            func.min(_D.c.due_on),
        )
        .select_from(p.scoped(t).outerjoin(_D, _deadlines_of(kind, t)))
        .where(_visible_bound(p, shape), t.c.state.not_in(_closed(kind)))
        .group_by(sid, oid, nid)
    )


def _deadlines_of(kind: str, t: Any) -> Any:
    return and_(_D.c.kind == kind, _D.c.item_id == t.c.id, _D.c.status.in_([s.value for s in OUTSTANDING]))


def _open_items(
    session: Session, who: Principal, kind: str, today: date, days: _Days, shown: list[int] | None, own: bool
) -> list[tuple[tuple[str, int], dict[str, Any]]]:
    """The open items of ``kind`` the grants reach (of the services ``shown``), each with its
    outstanding deadlines: one query."""
    spec = get_spec(kind)
    shape, values = shape_of(who)
    q = _items_q(kind, shape, shown is not None, own)
    if q is None:
        return []
    if shown is not None:
        values["shown"] = shown
    items: dict[int, tuple[tuple[str, int], dict[str, Any]]] = {}
    for r in session.execute(q, values):
        got = items.get(r.id)
        if got is None:
            got = items[r.id] = (
                _group_key(r.service_id, r.organisation_id, r.network_id),
                {
                    "kind": kind,
                    "id": r.id,
                    "ref": ref(kind, r.id, r.level),
                    "title": _title(kind, r.title, None),
                    "state": r.state,
                    "state_label": r.state.replace("_", " "),
                    "next_step": spec.next_step.get(r.state),
                    "link": f"/items/{kind}/{r.id}",
                    "asks": [],
                    "overdue": False,
                },
            )
        if r.deadline is None:
            continue
        words = _words(kind, r.deadline)
        paused = r.status == DeadlineStatus.PAUSED.value
        late = not paused and r.due_on < today
        got[1]["asks"].append(
            {
                "deadline": r.deadline,
                **words,
                "due_on": r.due_on,
                "paused": paused,
                "working_days_left": r.paused_remaining if paused else days.left(r.nation, r.due_on),
                "overdue": late,
            }
        )
        got[1]["overdue"] = got[1]["overdue"] or late
    return list(items.values())


@cache
def _items_q(kind: str, shape: Shape, shown: bool, own: bool) -> Any:
    p = _place(kind)
    t = p.item
    level = t.c.level if "level" in t.c else null()
    q = (
        select(
            t.c.id,
            t.c.state,
            cast(p.title, String).label("title"),
            level.label("level"),
            cast(p.service_id, Integer).label("service_id"),
            cast(p.organisation_id, Integer).label("organisation_id"),
            cast(p.network_id, Integer).label("network_id"),
            _D.c.name.label("deadline"),
            _D.c.due_on,
            _D.c.status,
            _D.c.paused_remaining,
            _D.c.nation,
        )
        .select_from(p.scoped(t).outerjoin(_D, _deadlines_of(kind, t)))
        .where(_visible_bound(p, shape), t.c.state.not_in(_closed(kind)))
        .order_by(t.c.id, _D.c.due_on, _D.c.id)
    )
    return _shown(p, q, shown, own)


def _letters(session: Session, who: Principal, shown: list[int] | None, own: bool, per_group: int) -> list[Any]:
    """The letters about the items the grants reach, the newest ``per_group`` of each service
    (Trust, network): one query (a union over the kinds, ranked by a window)."""
    shape, values = shape_of(who)
    values["per_group"] = per_group
    if shown is not None:
        values["shown"] = shown
    return list(session.execute(_letters_q(tuple(portal_kinds()), shape, shown is not None, own), values))


@cache
def _letters_q(every: tuple[str, ...], shape: Shape, shown: bool, own: bool) -> Any:
    parts = []
    for kind in every:
        p = _place(kind)
        q = (
            select(
                _M.c.id.label("message_id"),
                cast(p.service_id, Integer).label("service_id"),
                cast(p.organisation_id, Integer).label("organisation_id"),
                cast(p.network_id, Integer).label("network_id"),
            )
            .select_from(p.scoped(_M.join(p.item, and_(_M.c.item_id == p.item.c.id))))
            .where(
                # the outbox has no index by item: its letters are a range of the unique key's
                # index ("<kind>:<id>:..."), as the item page reads them
                _M.c.idempotency_key >= f"{kind}:",
                _M.c.idempotency_key < f"{kind};",
                _M.c.kind == kind,
                _M.c.category != "incident",
                _M.c.status.in_(SHOWN_LETTERS),
                to_portal_sql(_M.c.to, _M.c.cc),  # the Trust's letters, not the network's own mail
                _visible_bound(p, shape),
            )
        )
        q = _shown(p, q, shown, own)
        if q is not None:
            parts.append(q)
    u = union_all(*parts).subquery("u")
    rn = (
        func.row_number()
        .over(partition_by=(u.c.service_id, u.c.organisation_id, u.c.network_id), order_by=_M.c.id.desc())
        .label("rn")
    )
    ranked = (
        select(
            _M.c.id,
            _M.c.kind,
            _M.c.item_id,
            _M.c.template,
            _M.c.subject,
            _M.c.status,
            _M.c.created_at,
            _M.c.sent_at,
            _M.c.to,
            u.c.service_id,
            u.c.organisation_id,
            u.c.network_id,
            rn,
        )
        .select_from(u.join(_M, _M.c.id == u.c.message_id))
        .subquery("ranked")
    )
    return select(ranked).where(ranked.c.rn <= bindparam("per_group", type_=Integer)).order_by(ranked.c.id.desc())


def _letter_row(r: Any) -> dict[str, Any]:
    roles = list(dict.fromkeys(p.get("role") for p in (r.to or []) if p.get("role")))
    return {
        "message_id": r.id,
        "kind": r.kind,
        "item_id": r.item_id,
        "ref": ref(r.kind, r.item_id),
        "subject": r.subject or r.template.replace("_", " "),
        "template": r.template,
        "status": r.status,
        "sent": r.status == OutboxStatus.SENT.value,
        "created_at": r.created_at,
        "sent_at": r.sent_at,
        "to": _names(roles) if roles else "",
        "view": f"/items/{r.kind}/{r.item_id}/letters/{r.id}",
        "download": f"/portal/letters/{r.id}.eml",
    }


def _next_visits(session: Session, service_ids: list[int], today: date) -> dict[int, dict[str, Any]]:
    """Each service's next visit: the earliest dated open one on or after today, else an open one
    whose date is not set yet. One query."""
    if not service_ids:
        return {}
    terminal = sorted(get_spec("visit").terminal)
    rows = session.execute(
        select(_VISIT.c.id, _VISIT.c.service_id, _VISIT.c.visit_date, _VISIT.c.state, _VISIT.c.mode)
        .where(_VISIT.c.service_id.in_(service_ids), _VISIT.c.state.not_in(terminal))
        .order_by(_VISIT.c.visit_date, _VISIT.c.id)
    )
    found: dict[int, list[Any]] = {}
    for r in rows:
        found.setdefault(r.service_id, []).append(r)
    out: dict[int, dict[str, Any]] = {}
    for sid, visits in found.items():
        ahead = [v for v in visits if v.visit_date is not None and v.visit_date >= today]
        # else one not dated yet, or one whose day has passed but is not recorded yet
        r = min(ahead, key=lambda v: (v.visit_date, v.id)) if ahead else min(visits, key=lambda v: v.id)
        out[sid] = {
            "id": r.id,
            "date": r.visit_date,
            "state": r.state.replace("_", " "),
            "mode": (r.mode or "").replace("_", " "),
            "link": f"/items/visit/{r.id}",
        }
    return out


def _phases(session: Session, networks: dict[int, Any], today: date) -> dict[int, dict[str, Any]]:
    """Each network's place in its programme today: the year, cycle year, quarter and the phases
    open now (the network's planned phases, else the programme's own dates). One query."""
    if not networks:
        return {}
    year = programme_year_of(today)
    planned: dict[int, list[Any]] = {}
    for r in session.execute(
        select(_PHASE.c.network_id, _PHASE.c.title, _PHASE.c.state, _PHASE.c.opens_on, _PHASE.c.due_on)
        .where(_PHASE.c.network_id.in_(sorted(networks)), _PHASE.c.programme_year == year)
        .order_by(_PHASE.c.opens_on, _PHASE.c.id)
    ):
        planned.setdefault(r.network_id, []).append(r)
    out = {}
    for net_id, net in networks.items():
        prog = programme_for(net.cycle, net.programme)
        pos = where(prog, today)
        rows = planned.get(net_id, [])
        current = [
            {
                "title": r.title,
                "state": r.state,
                "due_on": r.due_on,
                "overdue": r.state == "overdue" or r.due_on < today,
            }
            for r in rows
            if r.state in ("open", "overdue") or (r.opens_on <= today <= r.due_on and r.state != "complete")
        ]
        if not rows:
            current = [{"title": title, "state": "", "due_on": None, "overdue": False} for title in pos["phases"]]
        out[net_id] = {
            "programme": pos["programme"],
            "programme_year": pos["programme_year"],
            "cycle_year": pos["cycle_year"],
            "cycle_years": pos["cycle_years"],
            "quarter": pos["quarter"],
            "phases": current,
        }
    return out


def _published(session: Session, service_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each service's published reports, newest first, each with the newest letter that carried a
    file about it (the report as sent). Two queries."""
    if not service_ids:
        return {}
    reports = list(
        session.execute(
            select(_REPORT.c.id, _REPORT.c.service_id, _REPORT.c.basis_date, _REPORT.c.published_on, _REPORT.c.issue)
            .where(_REPORT.c.service_id.in_(service_ids), _REPORT.c.state == "published")
            .order_by(_REPORT.c.published_on.desc(), _REPORT.c.id.desc())
        )
    )
    ids = [r.id for r in reports]
    carried: dict[int, tuple[int, str]] = {}
    if ids:
        for mid, item_id, filename in session.execute(
            select(_M.c.id, _M.c.item_id, _A.c.filename)
            .select_from(_M.join(_A, _A.c.idempotency_key == _M.c.idempotency_key))
            .where(
                _M.c.idempotency_key >= "report:",
                _M.c.idempotency_key < "report;",
                _M.c.kind == "report",
                _M.c.item_id.in_(ids),
                _M.c.status.in_(SHOWN_LETTERS),
            )
            .order_by(_M.c.id.desc())
        ):
            carried.setdefault(item_id, (mid, filename))
    out: dict[int, list[dict[str, Any]]] = {}
    for r in reports:
        letter = carried.get(r.id)
        out.setdefault(r.service_id, []).append(
            {
                "id": r.id,
                "ref": ref("report", r.id),
                "basis_date": r.basis_date,
                "published_on": r.published_on,
                "issue": r.issue,
                "link": f"/items/report/{r.id}",
                "file": letter[1] if letter else None,
                "letter": f"/items/report/{r.id}/letters/{letter[0]}" if letter else None,
                "download": f"/portal/letters/{letter[0]}.eml" if letter else None,
            }
        )
    return out
