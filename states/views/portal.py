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
or item never appears, because every query filters by those grants in SQL (``work.place``).

One screen: every service reached is in the page's summary (its open and overdue items, its next
date, its next review), and the services are detailed a page at a time (``PER_PAGE``, in the
summary's order; a Trust's and a network's own items on the first page), so a Trust of 200
services and 2,000 open items is one page of figures and ten of details, not 2,000 rows at once.
The page costs a fixed number of queries whatever the number of services and items: the services,
per kind one grouped query for the figures and, for the kinds open on the page, one for the items
with their outstanding deadlines; the letters (one union ranked by a window); the visits; the
phases; the published reports and their letters (``states/views/portal_parts.py``). Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import false, or_, select
from sqlmodel import Session

from models.tables import Attachment, Network, Organisation, OutboxMessage, Service
from models.types import is_row_id
from states.clock import Clock, local_date
from states.errors import NotFound
from states.machines.perinatal_policy import PerinatalPolicy
from states.machines.spec import kinds
from states.principal import INSTALLATION, Grant, Principal
from states.roles import ADMINISTRATOR, COMMISSIONER_ROLES, NETWORK_ROLES, TRUST_ROLES
from states.views import portal_parts as parts
from states.views import work
from states.views.portal_parts import SHOWN_LETTERS, if_missed, role_name
from states.views.work import _table

__all__ = ["if_missed", "role_name"]  # the words of a deadline, for whoever shows one

_A = _table(Attachment)
_SVC, _ORG, _NET = _table(Service), _table(Organisation), _table(Network)

PORTAL_ROLES = frozenset((*TRUST_ROLES, *COMMISSIONER_ROLES))
STAFF_ROLES = frozenset((*NETWORK_ROLES, ADMINISTRATOR))
LETTERS_PER_GROUP = 5  # on the page of every service; one service's page shows more
LETTERS_ON_ONE = 30
PER_PAGE = 10  # services whose items a page details (every service is in its summary)
MAX_PER_PAGE = 200

# ------------------------------------------------------------------ who the portal is for


def has_staff_role(principal: Principal) -> bool:
    """Network staff or an administrator: they keep My work; everyone else is sent to the portal."""
    return any(g.role in STAFF_ROLES for g in principal.grants)


def portal_principal(principal: Principal) -> Principal:
    """The same account with only its Trust and commissioner grants (each in a network, Trust or
    service's scope: the portal never reads a grant for the whole installation)."""
    grants = tuple(g for g in principal.grants if g.role in PORTAL_ROLES and g.scope != INSTALLATION)
    return replace(principal, grants=grants)


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


def what_is_asked(
    session: Session,
    principal: Principal,
    clock: Clock,
    *,
    service_id: int | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> dict[str, Any]:
    """summary (every service reached, and the Trust's or network's own items: open, overdue, next
    date, next review), groups (the services of this page, a Trust's and network's own items on the
    first: each with its open items, what is asked, of whom, by when, if missed; letters, next
    visit, published reports), programmes, rules (what happens if each kind of date is missed),
    totals, page, pages, today. ``service_id``: that one service only (NotFound unless the grants
    reach it)."""
    who = portal_principal(principal)
    today = local_date(clock.now())
    if service_id is not None:
        reachable_service(session, principal, service_id)
    services = _services(session, who.grants)
    counts = parts.overview(session, who, today)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    pages = 1 if service_id is not None else max(1, -(-len(services) // per_page))
    page = min(max(1, page), pages)
    shown = (
        [s for s in services if s.id == service_id]
        if service_id is not None
        else services[(page - 1) * per_page : page * per_page]
    )
    own = service_id is None and page == 1
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    networks: dict[int, Any] = {}
    orgs: dict[int, str] = {}
    for s in services:
        networks.setdefault(s.network_id, s)
        orgs.setdefault(s.organisation_id, s.organisation)
    for s in shown:
        groups[("service", s.id)] = _group("service", s.id, s.name, s)
    ids = [s.id for s in shown]
    days = parts._Days(today)
    wanted = {k for key, c in counts.items() if key in groups or (own and key[0] != "service") for k in c["kinds"]}
    for kind in [k for k in kinds() if k in wanted]:  # a kind with nothing open here costs no query
        for key, item in parts._open_items(session, who, kind, today, days, ids, own):
            _ensure(groups, key, orgs, networks)["items"].append(item)
    per_group = LETTERS_PER_GROUP if service_id is None else LETTERS_ON_ONE
    for r in parts._letters(session, who, ids, own, per_group):
        key = parts._group_key(r.service_id, r.organisation_id, r.network_id)
        _ensure(groups, key, orgs, networks)["letters"].append(parts._letter_row(r))
    visits = parts._next_visits(session, [s.id for s in services], today)
    phases = parts._phases(session, networks, today)
    published = parts._published(session, ids)
    for (scope, gid), g in groups.items():
        g["items"].sort(key=lambda i: (not i["overdue"], min((a["due_on"] for a in i["asks"]), default=date.max)))
        g["overdue"] = sum(1 for i in g["items"] if i["overdue"])
        if scope == "service":
            g["next_visit"] = visits.get(gid)
            g["reports"] = published.get(gid, [])
        g["phase"] = phases.get(g["network_id"]) if g.get("network_id") else None
    ordered = sorted(groups.values(), key=_order)
    return {
        "summary": _summary(services, counts, visits, orgs, networks, per_page, {id(s) for s in shown}),
        "programmes": [
            {"network": n.network, "network_name": n.network_name, **phases[i]} for i, n in networks.items()
        ],
        "rules": _rules(ordered),
        "today": today,
        "groups": ordered,
        "services": len(services),
        "open_items": sum(c["open"] for c in counts.values()),
        "overdue": sum(c["overdue"] for c in counts.values()),
        "page": page,
        "pages": pages,
        "has_portal_role": bool(who.grants),
    }


def _summary(
    services: list[Any],
    counts: dict[tuple[str, int], dict[str, Any]],
    visits: dict[int, dict[str, Any]],
    orgs: dict[int, str],
    networks: dict[int, Any],
    per_page: int,
    here: set[int],
) -> list[dict[str, Any]]:
    """One line per group: its figures and where its details are (this page, another, or none)."""
    out = []
    for key in [k for k in counts if k[0] != "service"]:  # a Trust's or network's own, on page 1
        name = orgs.get(key[1]) if key[0] == "organisation" else getattr(networks.get(key[1]), "network_name", None)
        c = counts[key]
        out.append({"scope": key[0], "id": key[1], "name": name or f"{key[0]} {key[1]}", "page": 1, "open": c["open"],
                    "overdue": c["overdue"], "next_due": c["next_due"], "next_visit": None})  # fmt: skip
    for n, s in enumerate(services):
        c = counts.get(("service", s.id), {"open": 0, "overdue": 0, "next_due": None})
        out.append({"scope": "service", "id": s.id, "name": s.name, "page": n // per_page + 1,
                    "open": c["open"], "overdue": c["overdue"], "next_due": c["next_due"],
                    "next_visit": visits.get(s.id), "here": id(s) in here})  # fmt: skip
    return out


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each kind of date the page shows, numbered, with what happens if it is missed; each ask
    gets the number of its rule (``rule``)."""
    rules: dict[tuple[str, str], dict[str, Any]] = {}
    for g in groups:
        for i in g["items"]:
            for a in i["asks"]:
                key = (i["kind"], a["deadline"])
                if key not in rules:
                    rules[key] = {"n": len(rules) + 1, "kind": i["kind"], "step": a["step"], "owner": a["owner"],
                                  "if_missed": a["if_missed"]}  # fmt: skip
                a["rule"] = rules[key]["n"]
    return list(rules.values())


def _pages(scope: str, gid: int, service_kind: str | None) -> list[dict[str, str]]:
    """A service's own pages in the portal: its action plans, and a maternity or neonatal
    service's monthly board reviews (the perinatal policy's service kinds)."""
    if scope != "service":
        return []
    out = [{"href": f"/services/{gid}/plans", "label": "Action plans"}]
    kinds = PerinatalPolicy.from_env().service_kinds
    if service_kind and any(k in service_kind.lower() for k in kinds):
        out.append({"href": f"/portal/perinatal/{gid}", "label": "Monthly board reviews (perinatal measures)"})
    return out


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
        "pages": _pages(scope, gid, getattr(s, "kind", None)),
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
    if m is None or m.category == "incident" or m.kind not in parts.portal_kinds() or m.status not in SHOWN_LETTERS:
        raise missing
    if not work.to_portal([*m.to, *m.cc]):  # the network's own mail: the same "not found"
        raise missing
    try:
        work.get_visible(session, principal, m.kind, m.item_id)
    except NotFound:
        raise missing from None
    files = session.execute(select(Attachment).where(_A.c.idempotency_key == m.idempotency_key)).scalars()
    return m, [f for f in files if f.data is not None]
