"""What the web application's management pages ask that no other use case answers: which
services a person may open an item at, which contacts, reviewers and outbox letters sit in
their scope, and the calendar feed tokens (a personal access token of purpose ``feed``).

Each is a rule (who may see or do what), so it lives here and not in a web handler. Nothing
here changes an item; the feed token's creation is an audited change like any token's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, col, func, select

from models.accounts import AccessToken, PendingChange, User
from models.tables import AuditEvent, Contact, Network, Organisation, OutboxMessage, Reviewer, Service
from models.types import is_row_id
from states.clock import Clock
from states.errors import InvalidInput, MissingActor, NotFound, PermissionDenied
from states.machines.spec import get_spec
from states.permissions import roles_for, rules
from states.principal import INSTALLATION, Principal
from states.roles import ADMINISTRATOR, CONTACT_ROLES, NETWORK_SIDE, STAFF
from states.services import accounts, contacts, outbox, pending_changes, reviewers, trust_accounts
from states.services.editing import EDITORS, places
from states.views import directory
from states.views.outbox import message, scope_clause

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


def visible_contact(session: Session, principal: Principal, contact_id: int) -> Contact:
    """The contact if it is in ``principal``'s scope; NotFound otherwise (as a missing one)."""
    c = contacts.get_contact(session, contact_id)
    if not visible_contacts(session, principal, [c]):
        raise NotFound(f"contact {contact_id} not found (peerwatch contact list)")
    return c


def visible_reviewer(session: Session, principal: Principal, reviewer_id: int) -> Reviewer:
    """The reviewer if in ``principal``'s scope; NotFound otherwise (as a missing one)."""
    r = reviewers.get_reviewer(session, reviewer_id)
    if not visible_reviewers(session, principal, [r]):
        raise NotFound(f"reviewer {reviewer_id} not found (peerwatch reviewer list)")
    return r


def visible_change(session: Session, principal: Principal, change_id: int) -> PendingChange:
    """A proposed change to a contact in ``principal``'s scope; NotFound otherwise."""
    p = pending_changes.get_change(session, change_id, "contact")
    if not visible_pending(session, principal, [p]):
        raise NotFound(f"change {change_id} not found (peerwatch contact pending)")
    return p


PER_PAGE = 50  # contacts or reviewers a page


def contact_list(
    session: Session,
    principal: Principal,
    today: date,
    *,
    every: bool = False,
    q: str = "",
    role: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> dict[str, Any]:
    """The contacts page: the contacts in ``principal``'s scope in force ``today`` (``every``:
    with retired, replaced and future ones), of ``role`` if given, whose name, email or place
    contains ``q`` (any case); one page of them, by id, with the total and number of pages."""
    names = directory.place_names(session)
    q = q.strip().lower()
    rows = []
    for c in visible_contacts(session, principal, directory.contacts(session, today, every)):
        where = directory.where_label(c, names)
        if (role and c.role != role) or not directory.matches(q, c.name, c.email, where):
            continue
        rows.append(
            {"id": c.id, "role": CONTACT_ROLES.get(c.role, c.role), "escalation": c.role in contacts.ESCALATION_ROLES,
             "name": c.name, "email": c.email, "where": where, "from": c.valid_from, "until": c.valid_until,
             "status": contacts.status(c, today)}
        )  # fmt: skip
    return directory.page_of(rows, page, per_page)


def pending_list(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The proposed changes to contacts in ``principal``'s scope, each saying whether it is
    ``principal``'s own (only a different person confirms it; its proposer may withdraw it)."""
    out = []
    for p in visible_pending(session, principal, directory.pending_contact_changes(session)):
        role = str(p.payload.get("role") or "")
        out.append(
            {"id": p.id, "action": p.action, "contact": p.target_id, "role": CONTACT_ROLES.get(role, role),
             "what": contacts.describe({k: v for k, v in p.payload.items() if k != "seen"}),
             "by": p.proposed_name, "mine": p.proposed_by == principal.user_id, "at": p.proposed_at}
        )  # fmt: skip
    return out


def contact_detail(session: Session, principal: Principal, contact_id: int, today: date) -> dict[str, Any]:
    """A contact's page: the row, whether ``principal`` may change it or invite its holder to the
    portal, every holder of the role there and every audited change; NotFound out of scope."""
    c = visible_contact(session, principal, contact_id)
    held, events = contacts.contact_history(session, contact_id)
    names = directory.place_names(session)
    return {
        "c": {"id": c.id, "role": CONTACT_ROLES.get(c.role, c.role), "escalation": c.role in contacts.ESCALATION_ROLES,
              "name": c.name, "email": c.email, "where": directory.where_label(c, names),
              "status": contacts.status(c, today), "open": c.valid_until is None},
        "may_edit": may_edit(session, principal, c),
        "may_invite": trust_accounts.may_invite(session, principal, c, today),
        "holders": [{"id": h.id, "name": h.name, "email": h.email, "from": h.valid_from, "until": h.valid_until,
                     "status": contacts.status(h, today)} for h in held],
        "changes": [{"at": e.at, "change": e.trigger, "actor": e.actor, "role": e.role,
                     "what": contacts.describe(e.data), "note": e.note or ""} for e in events],
    }  # fmt: skip


def reviewer_list(
    session: Session, principal: Principal, today: date, *, q: str = "", page: int = 1, per_page: int = PER_PAGE
) -> dict[str, Any]:
    """The reviewers page: the pool in ``principal``'s scope whose name, email or discipline
    contains ``q`` (any case), one page of them by id, each saying whether it is retired
    ``today`` and whether ``principal`` may change it."""
    names = directory.place_names(session)
    q = q.strip().lower()
    rows = [
        {"id": r.id, "name": r.name, "email": r.email, "discipline": r.discipline,
         "where": directory.where_label(r, names), "pathways": ", ".join(r.pathways), "trained": r.trained,
         "retired": reviewers.retired(r, today), "retired_on": r.retired_on}
        for r in visible_reviewers(session, principal, directory.reviewers(session))
        if directory.matches(q, r.name, r.email, r.discipline)
    ]  # fmt: skip
    out = directory.page_of(rows, page, per_page)
    for row in out["rows"]:  # asked only for the page shown
        row["may_edit"] = may_edit(session, principal, reviewers.get_reviewer(session, row["id"]))
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
    item of a kind: installation-wide grants only), as ``states.services.outbox`` acts on them.
    One query per 500 letters (states.views.outbox.scope_clause), not one per letter."""
    staff = outbox.staff_grants(principal)
    if not staff:
        return []
    if any(g.scope == INSTALLATION for g in staff):
        return list(rows)
    keep: set[int | None] = set()
    ids = [m.id for m in rows if m.id is not None]
    for at in range(0, len(ids), 500):
        chunk = col(OutboxMessage.id).in_(ids[at : at + 500])
        keep.update(session.exec(select(col(OutboxMessage.id)).where(chunk, scope_clause(session, staff, chunk))))
    return [m for m in rows if m.id in keep]


def visible_message(session: Session, principal: Principal, message_id: int) -> int:
    """The letter's id if it is about an item in ``principal``'s staff scope; NotFound otherwise
    (the same whether it does not exist or is another network's: no existence leaks)."""
    if not visible_outbox(session, principal, [message(session, message_id)]):
        raise NotFound(f"outbox message {message_id} not found (peerwatch outbox list)")
    return message_id


def require_network_side(principal: Principal, what: str) -> None:
    """Refuse (PermissionDenied) unless ``principal`` holds a network role or administers the
    installation: the outbox, contacts and reviewers, creating items and the dashboards are the
    network's pages; a Trust's or a commissioner's people have the portal."""
    if principal.is_system or not any(g.role in NETWORK_SIDE for g in principal.grants):
        raise PermissionDenied(f"{what} are the network's pages: yours are in the portal (What is asked of us)")


def may_settle_outbox(principal: Principal) -> bool:
    """Does ``principal`` hold a staff role anywhere (the outbox's retry and settle need one)?"""
    return any(g.role in STAFF for g in principal.grants)


# ---------------------------------------------------------------- what a page may say was done


@dataclass(frozen=True)
class Step:
    """An audited step a page's banner reports: the event's kind and triggers, and what its
    data must hold (``data``: these values; ``has``: this key present)."""

    kind: str
    triggers: frozenset[str]
    data: Mapping[str, Any] = field(default_factory=dict)
    has: str = ""


RECENT_EVENTS = 10_000  # how far back a banner's step is looked for (the redirect follows it at once)


def step(kind: str, *triggers: str, has: str = "", **data: Any) -> Step:
    return Step(kind, frozenset(triggers), data, has)


def just_done(
    session: Session, principal: Principal, done: str, steps: Mapping[str, Step], item_id: int | None = None
) -> str:
    """``done`` if the signed-in person's own latest audit event is that step (about ``item_id``
    when given), else "": a banner says what the person just did, never what a link claims
    (``?done=retired`` on a crafted link shows nothing)."""
    wanted = steps.get(done)
    if wanted is None or principal.is_system:
        return ""
    head = session.exec(select(func.max(AuditEvent.id))).one() or 0
    last = session.exec(  # among the latest events only: a redirect follows the step at once
        select(AuditEvent)
        .where(AuditEvent.user_id == principal.user_id, col(AuditEvent.id) > head - RECENT_EVENTS)
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    if last is None or last.kind != wanted.kind or last.trigger not in wanted.triggers:
        return ""
    if item_id is not None and last.item_id != item_id:
        return ""
    if (wanted.has and wanted.has not in last.data) or any(last.data.get(k) != v for k, v in wanted.data.items()):
        return ""
    return done


# ---------------------------------------------------------------- administrators


def require_administrator(principal: Principal, what: str) -> None:
    """Refuse (PermissionDenied) unless ``principal`` is an administrator: the account pages
    read what only administrators manage (accounts.py refuses the changes the same way)."""
    if principal.is_system or not principal.holds(ADMINISTRATOR):
        raise PermissionDenied(f"{principal.name} may not {what}: only an administrator may")


def account_actions(principal: Principal, user: Mapping[str, Any]) -> dict[str, bool]:
    """What an administrator's page offers on the account ``user`` (``accounts.user_detail``), as
    the use cases would allow it: grants, a password, disabling (never one's own account) and a
    single sign-on link while it is active; re-enabling while disabled; unlinking while linked."""
    active, admin = user["status"] == accounts.ACTIVE, principal.holds(ADMINISTRATOR) and not principal.is_system
    return {
        "grant": admin and active,
        "password": admin and active,
        "disable": admin and active and user["id"] != principal.user_id,
        "enable": admin and user["status"] == accounts.DISABLED,
        "link": admin and active,
        "unlink": admin and user.get("sso") is not None,
    }


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


def token_days(purpose: str, days: int | None) -> int:
    """How long a new token of ``purpose`` lives: ``days`` if given, else a feed token the longest
    a token may (a calendar subscription is set up once), an API token the default."""
    if days is not None:
        return days
    return accounts.MAX_TOKEN_DAYS if purpose == FEED else accounts.DEFAULT_TOKEN_DAYS


def create_own_token(
    session: Session, principal: Principal, clock: Clock, name: str, purpose: str = "api", days: int | None = None
) -> tuple[AccessToken, str]:
    """A token of one's own for the API or calendar feeds (``accounts.TOKEN_PURPOSES``), living
    ``token_days``; audited, shown once (only its hash is kept)."""
    if purpose not in accounts.TOKEN_PURPOSES:
        raise InvalidInput("choose what the token is for: the API or calendar feeds")
    return accounts.create_token(session, principal, clock, name, token_days(purpose, days), purpose=purpose)


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
    "PER_PAGE",
    "RECENT_EVENTS",
    "Step",
    "account_actions",
    "contact_detail",
    "contact_list",
    "contact_scope_choices",
    "creatable_networks",
    "creatable_services",
    "create_feed_token",
    "create_own_token",
    "dashboard_network",
    "dashboard_networks",
    "feed_principal",
    "feed_scope",
    "feeds_for",
    "just_done",
    "may_edit",
    "may_settle_outbox",
    "opening_roles",
    "pending_list",
    "require_administrator",
    "require_network_side",
    "reviewer_list",
    "step",
    "token_days",
    "visible_change",
    "visible_contact",
    "visible_contacts",
    "visible_message",
    "visible_outbox",
    "visible_pending",
    "visible_reviewer",
    "visible_reviewers",
]
