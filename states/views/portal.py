"""What is asked of us (issue 16 item 2): the Trust portal's one screen, as data.

For each service a Trust or commissioner user's grants reach (a Trust role in an organisation's
scope: every service of that Trust; in a service's scope: that service; a commissioner's grant:
the services in its scope), every open item about it with what is asked, of whom, by when
(Europe/London, and working days left by the nation's calendar) and what happens if it is
missed; the letters received about its items (newest first, a few per service); its next visit
and its network's programme phase; its published reports. Items that belong to a Trust rather
than to one of its services (document submissions) are listed once, under the Trust; a
commissioner's network-wide grant sees the network's own items under the network.

Only the Trust and commissioner grants count here (staff have My work): another Trust's service
or item never appears, because every query filters by those grants in SQL (``work.place``). The
page costs a fixed number of queries whatever the number of services and items: one for the
services, one per kind of item (the items with their outstanding deadlines), one for the letters,
one for the visits, one for the phases, two for the published reports and their letters.
Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import Integer, String, and_, cast, false, func, null, or_, select, union_all
from sqlmodel import Session

from models.cycle import ProgrammePhase
from models.tables import (
    OUTSTANDING,
    Attachment,
    Deadline,
    DeadlineStatus,
    Network,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    Report,
    Service,
    Visit,
)
from models.types import is_row_id
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.errors import NotFound
from states.machines.spec import DeadlineRule, Letter, get_spec, kinds
from states.principal import INSTALLATION, Grant, Principal
from states.programmes import programme_for, programme_year_of, where
from states.roles import ADMINISTRATOR, COMMISSIONER_ROLES, CONTACT_ROLES, NETWORK_ROLES, TRUST_ROLES
from states.views import work
from states.views.work import _table, _title, _visible, place, ref

PORTAL_ROLES = frozenset((*TRUST_ROLES, *COMMISSIONER_ROLES))
STAFF_ROLES = frozenset((*NETWORK_ROLES, ADMINISTRATOR))
LETTERS_PER_GROUP = 10
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
_SVC, _ORG, _NET = _table(Service), _table(Organisation), _table(Network)
_VISIT, _REPORT, _PHASE = _table(Visit), _table(Report), _table(ProgrammePhase)


# ------------------------------------------------------------------ who the portal is for


def has_staff_role(principal: Principal) -> bool:
    """Network staff or an administrator: they keep My work; everyone else is sent to the portal."""
    return any(g.role in STAFF_ROLES for g in principal.grants)


def portal_principal(principal: Principal) -> Principal:
    """The same account with only its Trust and commissioner grants (each in a network, Trust or
    service's scope: the portal never reads a grant for the whole installation)."""
    grants = tuple(g for g in principal.grants if g.role in PORTAL_ROLES and g.scope != INSTALLATION)
    return replace(principal, grants=grants)


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


# ------------------------------------------------------------------ the services a grant reaches


def _service_scope(grants: Iterable[Grant]) -> Any:
    conds = []
    for g in grants:
        column = {"service": _SVC.c.id, "organisation": _SVC.c.organisation_id, "network": _SVC.c.network_id}
        conds.append(column[g.scope] == g.scope_id)
    return or_(*conds) if conds else false()


def _services(session: Session, grants: tuple[Grant, ...]) -> list[Any]:
    q = (
        select(
            _SVC.c.id,
            _SVC.c.name,
            _SVC.c.kind,
            _SVC.c.organisation_id,
            _SVC.c.network_id,
            _ORG.c.name.label("organisation"),
            _ORG.c.nation,
            _NET.c.code.label("network"),
            _NET.c.name.label("network_name"),
            _NET.c.cycle,
            _NET.c.programme,
        )
        .select_from(_SVC.join(_ORG, _ORG.c.id == _SVC.c.organisation_id).join(_NET, _NET.c.id == _SVC.c.network_id))
        .where(_service_scope(grants))
        .order_by(_ORG.c.name, _SVC.c.name, _SVC.c.id)
    )
    return list(session.execute(q))


def reachable_service(session: Session, principal: Principal, service_id: int) -> Any:
    """The service if the principal's Trust or commissioner grants reach it, else NotFound (the
    same words for a missing one)."""
    grants = portal_principal(principal).grants
    if not is_row_id(service_id):
        raise NotFound(f"service {service_id} not found")
    found = session.execute(
        select(_SVC.c.id).where(_SVC.c.id == service_id, _service_scope(grants))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"service {service_id} not found")
    return found


# ------------------------------------------------------------------ the page


def _group_key(service_id: Any, organisation_id: Any, network_id: Any) -> tuple[str, int]:
    if service_id is not None:
        return ("service", int(service_id))
    if organisation_id is not None:
        return ("organisation", int(organisation_id))
    return ("network", int(network_id or 0))


class _Days:
    """Working days from today to a date by a nation's calendar, each (nation, date) counted once."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.seen: dict[tuple[str, date], int] = {}

    def left(self, nation: str, due: date) -> int:
        key = (nation, due)
        if key not in self.seen:
            self.seen[key] = calendar_for(nation or "ENG").working_days_between(self.today, due)
        return self.seen[key]


def _open_items(
    session: Session, who: Principal, kind: str, today: date, days: _Days, only: int | None
) -> list[tuple[tuple[str, int], dict[str, Any]]]:
    """The open items of ``kind`` the grants reach, each with its outstanding deadlines: one query."""
    spec = get_spec(kind)
    p = place(kind)
    t = p.item
    closed = {*spec.terminal, *SETTLED.get(kind, ())}
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
        .select_from(
            p.scoped(t).outerjoin(
                _D, and_(_D.c.kind == kind, _D.c.item_id == t.c.id, _D.c.status.in_([s.value for s in OUTSTANDING]))
            )
        )
        .where(_visible(who, p))
        .order_by(t.c.id, _D.c.due_on, _D.c.id)
    )
    if closed:
        q = q.where(t.c.state.not_in(sorted(closed)))
    if only is not None:
        q = q.where(p.service_id == only)
    items: dict[int, tuple[tuple[str, int], dict[str, Any]]] = {}
    for r in session.execute(q):
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
        rule = spec.deadline_rules.get(r.deadline)
        paused = r.status == DeadlineStatus.PAUSED.value
        late = not paused and r.due_on < today
        got[1]["asks"].append(
            {
                "deadline": r.deadline,
                "step": rule.step if rule else r.deadline.replace("_", " "),
                "owner_role": rule.owner if rule else None,
                "owner": role_name(rule.owner) if rule else "",
                "due_on": r.due_on,
                "paused": paused,
                "working_days_left": (r.paused_remaining if paused else days.left(r.nation, r.due_on)),
                "overdue": late,
                "if_missed": if_missed(kind, rule) if rule else "",
            }
        )
        got[1]["overdue"] = got[1]["overdue"] or late
    return list(items.values())


def _letters(session: Session, who: Principal, only: int | None, per_group: int) -> list[Any]:
    """The letters about the items the grants reach, the newest ``per_group`` of each service
    (Trust, network): one query (a union over the kinds, ranked by a window)."""
    parts = []
    for kind in kinds():
        p = place(kind)
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
                _visible(who, p),
            )
        )
        if only is not None:
            q = q.where(p.service_id == only)
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
    return list(session.execute(select(ranked).where(ranked.c.rn <= per_group).order_by(ranked.c.id.desc())))


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


def what_is_asked(
    session: Session, principal: Principal, clock: Clock, *, service_id: int | None = None
) -> dict[str, Any]:
    """groups (one per service reached, and per Trust or network for the items that are theirs),
    each with its open items (what is asked, of whom, by when, if missed), letters, next visit,
    programme phase and published reports; figures; today. ``service_id``: that one service only
    (NotFound unless the grants reach it)."""
    who = portal_principal(principal)
    today = local_date(clock.now())
    if service_id is not None:
        reachable_service(session, principal, service_id)
    services = _services(session, who.grants)
    if service_id is not None:
        services = [s for s in services if s.id == service_id]
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    networks: dict[int, Any] = {}
    orgs: dict[int, str] = {}
    for s in services:
        networks.setdefault(s.network_id, s)
        orgs.setdefault(s.organisation_id, s.organisation)
        groups[("service", s.id)] = _group("service", s.id, s.name, s)
    days = _Days(today)
    for kind in kinds():
        for key, item in _open_items(session, who, kind, today, days, service_id):
            _ensure(groups, key, orgs, networks)["items"].append(item)
    for r in _letters(session, who, service_id, LETTERS_PER_GROUP):
        key = _group_key(r.service_id, r.organisation_id, r.network_id)
        _ensure(groups, key, orgs, networks)["letters"].append(_letter_row(r))
    ids = [s.id for s in services]
    visits = _next_visits(session, ids, today)
    phases = _phases(session, networks, today)
    published = _published(session, ids)
    for (scope, gid), g in groups.items():
        g["items"].sort(key=lambda i: (not i["overdue"], min((a["due_on"] for a in i["asks"]), default=date.max)))
        g["overdue"] = sum(1 for i in g["items"] if i["overdue"])
        if scope == "service":
            g["next_visit"] = visits.get(gid)
            g["reports"] = published.get(gid, [])
        g["phase"] = phases.get(g["network_id"]) if g.get("network_id") else None
    ordered = sorted(groups.values(), key=_order)
    return {
        "today": today,
        "groups": ordered,
        "services": len(services),
        "open_items": sum(len(g["items"]) for g in ordered),
        "overdue": sum(g["overdue"] for g in ordered),
        "has_portal_role": bool(who.grants),
    }


def _group(scope: str, gid: int, name: str, s: Any) -> dict[str, Any]:
    return {
        "scope": scope,
        "id": gid,
        "name": name,
        "service_kind": getattr(s, "kind", None) if scope == "service" else None,
        "organisation": getattr(s, "organisation", None),
        "organisation_id": getattr(s, "organisation_id", None),
        "network": getattr(s, "network", None),
        "network_name": getattr(s, "network_name", None),
        "network_id": getattr(s, "network_id", None),
        "link": f"/portal/services/{gid}" if scope == "service" else None,
        "items": [],
        "letters": [],
        "next_visit": None,
        "reports": [],
        "phase": None,
    }


def _ensure(
    groups: dict[tuple[str, int], dict[str, Any]], key: tuple[str, int], orgs: dict[int, str], nets: dict[int, Any]
) -> dict[str, Any]:
    """The group of ``key``: a Trust's or a network's own, made on first use from the names known."""
    got = groups.get(key)
    if got is not None:
        return got
    scope, gid = key
    if scope == "organisation":
        any_svc = next((n for n in nets.values() if n.organisation_id == gid), None)
        got = _group(scope, gid, orgs.get(gid, f"Trust {gid}"), None)
        got["organisation"] = got["name"]
        if any_svc is not None:
            got.update(network=any_svc.network, network_name=any_svc.network_name, network_id=any_svc.network_id)
    elif scope == "network":
        net = nets.get(gid)
        got = _group(scope, gid, net.network_name if net else f"Network {gid}", None)
        if net is not None:
            got.update(network=net.network, network_name=net.network_name, network_id=gid)
    else:
        got = _group(scope, gid, f"Service {gid}", None)
    groups[key] = got
    return got


def _order(g: dict[str, Any]) -> tuple[Any, ...]:
    rank = {"network": 0, "organisation": 1, "service": 2}[g["scope"]]
    return (g["organisation"] or "", rank, g["network"] or "", g["name"] or "", g["id"])


# ------------------------------------------------------------------ one letter, to download


def letter_to_download(
    session: Session, principal: Principal, message_id: int
) -> tuple[OutboxMessage, list[Attachment]]:
    """A letter about an item the principal can see, and the files it carried (NotFound, in the
    same words, for a missing one, another Trust's, or an incident row that is no letter)."""
    missing = NotFound(f"letter {message_id} not found")
    m = session.get(OutboxMessage, message_id) if is_row_id(message_id) else None
    if m is None or m.category == "incident" or m.kind not in kinds() or m.status not in SHOWN_LETTERS:
        raise missing
    try:
        work.get_visible(session, principal, m.kind, m.item_id)
    except NotFound:
        raise missing from None
    files = session.execute(select(Attachment).where(_A.c.idempotency_key == m.idempotency_key)).scalars()
    return m, [f for f in files if f.data is not None]
