"""What the web application's management pages ask that no other use case answers: which
services a person may open an item at, which contacts, reviewers and outbox letters sit in
their scope, and the calendar feed tokens (a personal access token of purpose ``feed``).

Each is a rule (who may see or do what), so it lives here and not in a web handler. Nothing
here changes an item; the feed token's creation is an audited change like any token's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from models.accounts import AccessToken, PendingChange, User
from models.tables import Contact, Network, Organisation, OutboxMessage, Reviewer, Service
from models.types import is_row_id
from states.clock import Clock
from states.errors import MissingActor, NotFound, PermissionDenied
from states.machines.spec import get_spec
from states.permissions import roles_for, rules
from states.principal import INSTALLATION, Principal
from states.roles import ADMINISTRATOR, NETWORK_SIDE, STAFF
from states.services import accounts
from states.services.editing import EDITORS, places

FEED = "feed"


# ---------------------------------------------------------------- creating items


def opening_roles(session: Session, kind: str, trigger: str) -> set[str]:
    """The roles that may fire ``kind``'s opening ``trigger`` (the table in force)."""
    spec = get_spec(kind)
    rows = [t for t in spec.all_transitions if t["trigger"] == trigger]
    return roles_for(spec, trigger, rows, rules(session))


def creatable_services(session: Session, principal: Principal, kind: str, trigger: str) -> list[dict[str, Any]]:
    """The services where ``principal`` holds a role that may fire ``kind``'s opening ``trigger``:
    id, name, Trust, network code, by network, Trust and name."""
    allowed = opening_roles(session, kind, trigger)
    q = (
        select(Service, Organisation, Network)
        .join(Organisation, col(Organisation.id) == Service.organisation_id)
        .join(Network, col(Network.id) == Service.network_id)
        .order_by(col(Network.code), col(Organisation.name), col(Service.name))
    )
    out = []
    for svc, org, net in session.exec(q):
        where = {"service_id": svc.id, "organisation_id": org.id, "network_id": net.id}
        if any(r in allowed for r in principal.roles_at(where)):
            out.append({"id": svc.id, "name": svc.name, "organisation": org.name, "network": net.code})
    return out


def creatable_networks(session: Session, principal: Principal, kind: str, trigger: str) -> list[dict[str, Any]]:
    """The networks where ``principal`` holds a role that may fire ``kind``'s opening ``trigger``
    for the whole network (an installation or network grant): code, name."""
    allowed = opening_roles(session, kind, trigger)
    out = []
    for net in session.exec(select(Network).order_by(col(Network.code))):
        where = {"service_id": None, "organisation_id": None, "network_id": net.id}
        if any(r in allowed for r in principal.roles_at(where)):
            out.append({"code": net.code, "name": net.name})
    return out


# ---------------------------------------------------------------- what sits in a person's scope


def _reaches(principal: Principal, wheres: list[dict[str, int | None]], roles: frozenset[str] | None = None) -> bool:
    return any(g.covers(w) and (roles is None or g.role in roles) for g in principal.grants for w in wheres)


def may_edit(session: Session, principal: Principal, row: Contact | Reviewer) -> bool:
    """Would ``states.services.editing.may_change`` let ``principal`` change ``row``?"""
    return _reaches(principal, places(session, row), frozenset(EDITORS))


def visible_contacts(session: Session, principal: Principal, rows: list[Contact]) -> list[Contact]:
    """The contacts in ``principal``'s scope: national ones for everyone with a grant, the others
    where some grant covers their service, Trust or network."""
    if not principal.grants:
        return []
    return [c for c in rows if _national(c) or _reaches(principal, places(session, c))]


def visible_reviewers(session: Session, principal: Principal, rows: list[Reviewer]) -> list[Reviewer]:
    """The reviewers in ``principal``'s scope (a reviewer with no Trust or network: everyone's)."""
    if not principal.grants:
        return []
    return [r for r in rows if _national(r) or _reaches(principal, places(session, r))]


def _national(row: Contact | Reviewer) -> bool:
    return getattr(row, "service_id", None) is None and row.organisation_id is None and row.network_id is None


def visible_pending(session: Session, principal: Principal, rows: list[PendingChange]) -> list[PendingChange]:
    """The proposed changes to contacts in ``principal``'s scope (an addition: where it would be)."""
    out = []
    for p in rows:
        if p.target_id is not None:
            c = session.get(Contact, p.target_id)
        else:
            c = Contact(
                role=str(p.payload.get("role") or ""),
                name="",
                email="",
                service_id=p.payload.get("service_id"),
                organisation_id=p.payload.get("organisation_id"),
                network_id=p.payload.get("network_id"),
            )
        if c is not None and visible_contacts(session, principal, [c]):
            out.append(p)
    return out


def contact_scope_choices(session: Session, principal: Principal) -> dict[str, list[dict[str, Any]]]:
    """The services, Trusts and networks where ``principal`` may add a contact (by name)."""
    editors = frozenset(EDITORS)
    svcs = [
        {"id": s.id, "name": f"{s.name} ({n.code})"}
        for s, n in session.exec(
            select(Service, Network).join(Network, col(Network.id) == Service.network_id).order_by(col(Service.name))
        )
        if _reaches(
            principal, [{"service_id": s.id, "organisation_id": s.organisation_id, "network_id": s.network_id}], editors
        )
    ]
    orgs = [
        {"id": o.id, "name": o.name}
        for o in session.exec(select(Organisation).order_by(col(Organisation.name)))
        if _reaches(principal, places(session, Contact(role="", name="", email="", organisation_id=o.id)), editors)
    ]
    nets = [
        {"id": n.id, "name": f"{n.name} ({n.code})", "code": n.code}
        for n in session.exec(select(Network).order_by(col(Network.code)))
        if _reaches(principal, [{"service_id": None, "organisation_id": None, "network_id": n.id}], editors)
    ]
    national = any(g.scope == INSTALLATION and g.role in editors for g in principal.grants)
    return {"services": svcs, "organisations": orgs, "networks": nets, "national": [{"id": 0}] if national else []}


def visible_outbox(session: Session, principal: Principal, rows: list[OutboxMessage]) -> list[OutboxMessage]:
    """The letters about items in the scope of ``principal``'s staff grants (a letter about no
    item of a kind: installation-wide grants only), as ``states.services.outbox`` acts on them."""
    staff = [g for g in principal.grants if g.role in STAFF]
    if not staff:
        return []
    if any(g.scope == INSTALLATION for g in staff):
        return list(rows)
    out = []
    for m in rows:
        try:
            spec = get_spec(m.kind)
        except NotFound:
            continue
        row = session.get(spec.model, m.item_id)
        where = spec.recipient_scope(session, row) if row is not None else None
        if where is not None and any(g.covers(where) for g in staff):
            out.append(m)
    return out


def require_network_side(principal: Principal, what: str) -> None:
    """Refuse (PermissionDenied) unless ``principal`` holds a network role or administers the
    installation: the outbox, contacts and reviewers, creating items and the dashboards are the
    network's pages; a Trust's or a commissioner's people have the portal."""
    if principal.is_system or not any(g.role in NETWORK_SIDE for g in principal.grants):
        raise PermissionDenied(f"{what} are the network's pages: yours are in the portal (What is asked of us)")


def may_settle_outbox(principal: Principal) -> bool:
    """Does ``principal`` hold a staff role anywhere (the outbox's retry and settle need one)?"""
    return any(g.role in STAFF for g in principal.grants)


# ---------------------------------------------------------------- administrators


def require_administrator(principal: Principal, what: str) -> None:
    """Refuse (PermissionDenied) unless ``principal`` is an administrator: the account pages
    read what only administrators manage (accounts.py refuses the changes the same way)."""
    if principal.is_system or not principal.holds(ADMINISTRATOR):
        raise PermissionDenied(f"{principal.name} may not {what}: only an administrator may")


# ---------------------------------------------------------------- dashboard and calendar feeds


def _whole_network(net_id: int) -> dict[str, int | None]:
    return {"service_id": None, "organisation_id": None, "network_id": net_id}


def dashboard_networks(session: Session, principal: Principal) -> list[tuple[str, str]]:
    """(code, name) of the networks whose whole dashboard ``principal`` may read: a grant for the
    whole installation or for the network (a Trust's or a service's grant does not show the
    network's other services), by code."""
    nets = session.exec(select(Network).order_by(col(Network.code))).all()
    return [(n.code, n.name) for n in nets if any(g.covers(_whole_network(n.id or 0)) for g in principal.grants)]


def dashboard_network(session: Session, principal: Principal, code: str) -> tuple[str, str]:
    """The network ``code`` if ``principal`` may read its dashboard; NotFound otherwise (the same
    whether it does not exist or is out of scope)."""
    for c, name in dashboard_networks(session, principal):
        if c == code:
            return c, name
    raise NotFound(f"network {code!r} not found")


def feed_scope(session: Session, principal: Principal, network_code: str, service_id: int | None) -> None:
    """Refuse (NotFound) a feed the token's owner may not read: a network's needs a grant for the
    whole network (or installation), a service's one covering the service."""
    net = session.exec(select(Network).where(Network.code == network_code)).first()
    if net is None or net.id is None:
        raise NotFound("no such feed")
    where = _whole_network(net.id)
    if service_id is not None:
        svc = session.get(Service, service_id) if is_row_id(service_id) else None
        if svc is None or svc.network_id != net.id:
            raise NotFound("no such feed")
        where = {"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": net.id}
    if not any(g.covers(where) for g in principal.grants):
        raise NotFound("no such feed")


def feeds_for(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The feeds ``principal`` may subscribe to: each network's it may read whole, and each
    service's its grants cover (network code, service id or None, label)."""
    out: list[dict[str, Any]] = []
    q = select(Service, Network).join(Network, col(Network.id) == Service.network_id).order_by(col(Service.id))
    whole = {c for c, _ in dashboard_networks(session, principal)}
    for code, name in dashboard_networks(session, principal):
        out.append({"network": code, "service": None, "label": f"{name} ({code})"})
    for svc, net in session.exec(q):
        where = {"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": net.id}
        if net.code in whole or any(g.covers(where) for g in principal.grants):
            out.append({"network": net.code, "service": svc.id, "label": f"{svc.name} ({net.code})"})
    return out


def create_feed_token(
    session: Session, principal: Principal, clock: Clock, name: str, days: int = accounts.MAX_TOKEN_DAYS
) -> tuple[AccessToken, str]:
    """A personal token for calendar subscriptions only (``purpose`` feed): it reads the feeds
    its owner's grants reach, and is refused by the API and the ``fire`` flow. Shown once."""
    return accounts.create_token(session, principal, clock, name, days, purpose=FEED)


def feed_principal(session: Session, token: str) -> Principal:
    """The owner of a feed token, if it is known, of purpose ``feed``, unexpired and unrevoked,
    with the owner's grants in force now; MissingActor otherwise (the web answers 404)."""
    if not token or not token.startswith(accounts.TOKEN_PREFIX) or len(token) > 200:
        raise MissingActor("no such feed")
    row = session.exec(select(AccessToken).where(AccessToken.token_hash == accounts._hash_token(token))).first()
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or row.purpose != FEED or _aware(row.expires_at) <= now:
        raise MissingActor("no such feed")
    user = session.get(User, row.user_id)
    if user is None:
        raise MissingActor("no such feed")
    try:
        principal = accounts.principal_for(session, user, "feed")
    except PermissionDenied:
        raise MissingActor("no such feed") from None
    row.last_used_at = now
    session.add(row)
    return principal


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


__all__ = [
    "FEED",
    "contact_scope_choices",
    "creatable_networks",
    "creatable_services",
    "create_feed_token",
    "dashboard_network",
    "dashboard_networks",
    "feed_principal",
    "feed_scope",
    "feeds_for",
    "may_edit",
    "may_settle_outbox",
    "opening_roles",
    "require_administrator",
    "visible_contacts",
    "visible_outbox",
    "visible_pending",
    "visible_reviewers",
]
