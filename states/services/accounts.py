"""Accounts, role grants, personal access tokens and the permission table: the use cases an
administrator runs, and the ways an entry point learns who is acting.

- ``peer_principal``: the CLI's peer authentication (the OS account running the command maps
  to an active account by its ``os_login``; no mapping, no write).
- ``token_principal``: a personal access token (the Prefect ``fire`` flow, the API) acts as
  its owner, with the owner's grants in force now.
- ``training_principal``: ``--as ACCOUNT``, in a training database only.
Administrators (the ``administrator`` role, whole installation) add, disable, grant and
revoke; each change is an audited event on the one chain (kind ``account``, ``permission``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.accounts import SYSTEM_USER_ID, AccessToken, PermissionRule, RoleGrant, User
from models.installation import ROW_ID, Installation, installation_id
from models.tables import AuditEvent, Network, Organisation, Service
from models.types import is_row_id
from states.clock import Clock, SystemClock, today
from states.engine.audit import record_change, record_refusal
from states.errors import InvalidInput, MissingActor, NotFound, PermissionDenied
from states.permissions import check_rule, forget, read_file
from states.principal import INSTALLATION, NETWORK, ORGANISATION, SERVICE, Grant, Principal, check_scope
from states.roles import ADMINISTRATOR, check_grantable, check_side
from states.text import check_email, check_text

ACTIVE, DISABLED, SYSTEM_STATUS = "active", "disabled", "system"
TOKEN_PREFIX = "pw_"
NO_ROLE = "(none)"  # what one does to one's own account (a token of one's own) is done in no role
DEFAULT_TOKEN_DAYS = 90  # a default: tokens expire after 90 days unless --days says otherwise
MAX_TOKEN_DAYS = 366


# ---------------------------------------------------------------- who is acting


def principal_for(
    session: Session, user: User, via: str, prefer: str | None = None, *, clock: Clock | None = None
) -> Principal:
    """The account with its grants in force on the clock's day (the system clock's when None):
    revoked grants left out, and those made from a contact that has since been retired or
    replaced (``valid_until`` on or before that day, Europe/London)."""
    if user.status != ACTIVE:
        raise PermissionDenied(f"account {user.id} ({user.name}) is {user.status}: it may not act")
    day = today(clock or SystemClock())
    grants = session.exec(
        select(RoleGrant)
        .where(
            RoleGrant.user_id == user.id,
            col(RoleGrant.revoked_at).is_(None),
            or_(col(RoleGrant.valid_until).is_(None), col(RoleGrant.valid_until) > day),
        )
        .order_by(col(RoleGrant.id))
    ).all()
    assert user.id is not None
    p = Principal(user.id, user.name, tuple(Grant(g.role, g.scope, g.scope_id) for g in grants), via)
    return p.acting_as(prefer)


def peer_principal(session: Session, os_login: str, prefer: str | None = None) -> Principal:
    """The CLI's peer authentication: the account mapped to this OS login, or refused."""
    user = session.exec(select(User).where(User.os_login == os_login)).first()
    if user is None:
        raise MissingActor(
            f"the OS account {os_login!r} is not mapped to a peerwatch account: nothing was changed "
            f"(an administrator runs: peerwatch user add NAME EMAIL --os-login {os_login})"
        )
    return principal_for(session, user, "cli", prefer)


def training_principal(session: Session, account: str, prefer: str | None = None) -> Principal:
    """``--as ACCOUNT`` (email, OS login, id or exact name): only in a training database."""
    if not is_training(session):
        raise PermissionDenied(
            "--as acts as another account: it is refused outside a training database (peerwatch init --training)"
        )
    user = find_user(session, account)
    return principal_for(session, user, "training", prefer)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_principal(session: Session, token: str, clock: Clock, prefer: str | None = None) -> Principal:
    """The owner of a personal access token, if the token is known, unexpired and unrevoked."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise MissingActor("no valid access token given: create one with peerwatch token create")
    row = session.exec(select(AccessToken).where(AccessToken.token_hash == _hash_token(token))).first()
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or row.purpose != "api":
        raise MissingActor("that access token is unknown or revoked: nothing was changed")
    if row.expires_at <= now:
        raise MissingActor(f"that access token expired on {row.expires_at:%Y-%m-%d}: create a new one")
    user = session.get(User, row.user_id)
    assert user is not None
    row.last_used_at = now
    session.add(row)
    return principal_for(session, user, "token", prefer, clock=clock)


# ---------------------------------------------------------------- the training mark


def is_training(session: Session) -> bool:
    row = session.get(Installation, ROW_ID)
    return bool(row is not None and row.training)


def mark_training(session: Session) -> None:
    """Make this database a training database: only while nothing has been recorded in it."""
    installation_id(session)
    row = session.get(Installation, ROW_ID)
    assert row is not None
    if row.training:
        return
    events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    if events:
        raise InvalidInput(
            "this database already holds real records: a training database is made new (peerwatch init --training "
            "on an empty database)"
        )
    row.training = True
    session.add(row)


# ---------------------------------------------------------------- accounts


def find_user(session: Session, ref: str | int) -> User:
    """An account by id, email, OS login or exact display name."""
    text = str(ref).strip()
    user: User | None = None
    if text.isascii() and text.isdigit() and len(text) < 19 and is_row_id(int(text)):
        user = session.get(User, int(text))
    if user is None:
        user = session.exec(
            select(User).where((func.lower(User.email) == text.lower()) | (User.os_login == text) | (User.name == text))
        ).first()
    if user is None or user.status == SYSTEM_STATUS:
        raise NotFound(f"no account {text!r}")
    return user


def _admin(principal: Principal, what: str) -> None:
    if principal.is_system or not principal.holds(ADMINISTRATOR):
        raise PermissionDenied(f"{principal.name} may not {what}: only an administrator may")


def _audit(session: Session, principal: Principal, clock: Clock, kind: str, item_id: int, action: str, state: str,
           data: dict[str, Any]) -> None:  # fmt: skip
    record_change(
        session, kind, item_id, action, principal=principal, role=ADMINISTRATOR, clock=clock, state=state, data=data
    )


def add_user(
    session: Session,
    principal: Principal,
    clock: Clock,
    *,
    name: str,
    email: str,
    os_login: str | None = None,
) -> User:
    _admin(principal, "add accounts")
    return _add_user(session, principal, clock, name=name, email=email, os_login=os_login)


def _add_user(
    session: Session, principal: Principal | None, clock: Clock, *, name: str, email: str, os_login: str | None
) -> User:
    check_text(name, "name")  # a line separator or control character is refused, not folded away
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("an account needs a name")
    check_email(email, "email")
    email = email.strip().lower()
    if session.exec(select(User).where(func.lower(User.email) == email)).first() is not None:
        raise InvalidInput(f"an account with the email {email} already exists")
    if os_login is not None:
        os_login = os_login.strip()
        if not os_login or any(c.isspace() for c in os_login) or len(os_login) > 64:
            raise InvalidInput(f"OS login {os_login!r}: one word, no spaces")
        if session.exec(select(User).where(User.os_login == os_login)).first() is not None:
            raise InvalidInput(f"the OS login {os_login} is already mapped to an account")
        installation = session.get(Installation, ROW_ID)
        if installation is not None and installation.service_account == os_login:
            raise InvalidInput(
                f"the OS login {os_login} is the service account: it maps to nobody (people act through "
                "sudo as it); nothing was changed"
            )
    user = User(name=name, email=email, os_login=os_login, status=ACTIVE, created_at=clock.now())
    session.add(user)
    session.flush()
    assert user.id is not None
    acting = principal or Principal(user.id, user.name, (Grant(ADMINISTRATOR),), "init")
    _audit(session, acting, clock, "account", user.id, "add", ACTIVE,
           {"name": name, "email": email, "os_login": os_login})  # fmt: skip
    return user


def disable_user(session: Session, principal: Principal, clock: Clock, ref: str, note: str | None = None) -> User:
    _admin(principal, "disable accounts")
    user = find_user(session, ref)
    if user.id == principal.user_id:
        raise InvalidInput("you may not disable your own account: ask another administrator")
    if user.status == DISABLED:
        raise InvalidInput(f"account {user.id} ({user.name}) is already disabled")
    user.status = DISABLED
    session.add(user)
    tokens = session.exec(
        select(AccessToken).where(AccessToken.user_id == user.id, col(AccessToken.revoked_at).is_(None))
    ).all()
    for t in tokens:
        t.revoked_at = clock.now()
        session.add(t)
    assert user.id is not None
    _audit(session, principal, clock, "account", user.id, "disable", DISABLED,
           {"note": note, "tokens_revoked": len(tokens)})  # fmt: skip
    return user


def enable_user(session: Session, principal: Principal, clock: Clock, ref: str, note: str | None = None) -> User:
    """Re-enable a disabled account (administrators; audited ``enable``). Its grants stand; the
    tokens revoked when it was disabled stay revoked, and any session from before is ended."""
    from states.services.signin import end_sessions  # lazy: signin imports this module

    _admin(principal, "re-enable accounts")
    user = find_user(session, ref)
    if user.status != DISABLED:
        raise InvalidInput(f"account {user.id} ({user.name}) is {user.status}, not disabled: nothing was changed")
    user.status = ACTIVE
    session.add(user)
    assert user.id is not None
    ended = end_sessions(session, user.id, clock, "enable")
    _audit(session, principal, clock, "account", user.id, "enable", ACTIVE, {"note": note, "sessions_ended": ended})
    return user


def _check_scope_exists(session: Session, scope: str, scope_id: int | None) -> None:
    check_scope(scope, scope_id)
    table: Any = {NETWORK: Network, ORGANISATION: Organisation, SERVICE: Service}.get(scope)
    if table is not None and (scope_id is None or not is_row_id(scope_id) or session.get(table, scope_id) is None):
        raise NotFound(f"no {scope} {scope_id}")


def grant(
    session: Session,
    principal: Principal,
    clock: Clock,
    ref: str,
    role: str,
    scope: str = INSTALLATION,
    scope_id: int | None = None,
) -> RoleGrant:
    _admin(principal, "grant roles")
    check_grantable(role)
    _check_scope_exists(session, scope, scope_id)
    if role == ADMINISTRATOR and scope != INSTALLATION:
        raise InvalidInput("administrator is held for the whole installation (scope installation)")
    user = find_user(session, ref)
    if user.id == principal.user_id:
        raise PermissionDenied(
            f"{principal.name} may not grant a role to their own account: another administrator grants it "
            "(an administrator fires nothing clinical); nothing was changed"
        )
    same = session.exec(
        select(RoleGrant).where(
            RoleGrant.user_id == user.id,
            RoleGrant.role == role,
            RoleGrant.scope == scope,
            RoleGrant.scope_id == scope_id if scope_id is not None else col(RoleGrant.scope_id).is_(None),
            col(RoleGrant.revoked_at).is_(None),
        )
    ).first()
    if same is not None:
        raise InvalidInput(f"{user.name} already holds {role} in {scope} {scope_id or ''}".strip())
    assert user.id is not None
    check_side(role, scope, live_roles(session, user.id))
    row = RoleGrant(
        user_id=user.id, role=role, scope=scope, scope_id=scope_id, granted_by=principal.user_id, granted_at=clock.now()
    )
    session.add(row)
    session.flush()
    _audit(session, principal, clock, "account", user.id, "grant", user.status,
           {"grant_id": row.id, "role": role, "scope": scope, "scope_id": scope_id})  # fmt: skip
    return row


def live_roles(session: Session, user_id: int) -> set[str]:
    """The roles an account holds now (its grants not revoked; those ending on a date count until
    they are revoked, as a grant made from a contact ends with it)."""
    return set(
        session.exec(select(RoleGrant.role).where(RoleGrant.user_id == user_id, col(RoleGrant.revoked_at).is_(None)))
    )


def revoke(session: Session, principal: Principal, clock: Clock, grant_id: int, note: str | None = None,
           of: str | None = None) -> RoleGrant:  # fmt: skip
    """Revoke a grant (``of``: refused unless it is that account's, as its page offers it)."""
    _admin(principal, "revoke roles")
    row = session.get(RoleGrant, grant_id) if is_row_id(grant_id) else None
    if row is None:
        raise NotFound(f"no grant {grant_id}")
    if of is not None and row.user_id != find_user(session, of).id:
        raise InvalidInput(f"grant {grant_id} is not one of this account's")
    if row.revoked_at is not None:
        raise InvalidInput(f"grant {grant_id} was already revoked")
    if row.role == ADMINISTRATOR and row.user_id == principal.user_id:
        raise InvalidInput("you may not revoke your own administrator role: ask another administrator")
    row.revoked_at, row.revoked_by = clock.now(), principal.user_id
    session.add(row)
    user = session.get(User, row.user_id)
    assert user is not None
    _audit(session, principal, clock, "account", row.user_id, "revoke", user.status,
           {"grant_id": grant_id, "role": row.role, "scope": row.scope, "scope_id": row.scope_id, "note": note})  # fmt: skip
    return row


def users(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(select(User).where(User.status != SYSTEM_STATUS).order_by(col(User.id))).all()
    grants: dict[int, list[str]] = {}
    for g in session.exec(select(RoleGrant).where(col(RoleGrant.revoked_at).is_(None))):
        label = g.role if g.scope == INSTALLATION else f"{g.role}@{g.scope}:{g.scope_id}"
        grants.setdefault(g.user_id, []).append(label)
    return [
        {
            "id": u.id,
            "name": u.name,
            "email": u.email,
            "os_login": u.os_login,
            "status": u.status,
            "roles": grants.get(u.id or 0, []),
            "last_seen_at": u.last_seen_at,
        }
        for u in rows
    ]


_GRANT_FIELDS = ("id", "role", "scope", "scope_id", "granted_by", "granted_at", "revoked_at", "revoked_by", "source",
                 "contact_id", "valid_until")  # fmt: skip


def user_detail(session: Session, ref: str) -> dict[str, Any]:
    user = find_user(session, ref)
    gs = session.exec(select(RoleGrant).where(RoleGrant.user_id == user.id).order_by(col(RoleGrant.id))).all()
    toks = session.exec(select(AccessToken).where(AccessToken.user_id == user.id).order_by(col(AccessToken.id))).all()
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "os_login": user.os_login,
        "status": user.status,
        "created_at": user.created_at,
        "last_seen_at": user.last_seen_at,
        "sso": {"issuer": user.oidc_issuer, "subject": user.oidc_subject} if user.oidc_subject else None,
        "grants": [{k: getattr(g, k) for k in _GRANT_FIELDS} for g in gs],
        "tokens": [_token_row(t) for t in toks],
    }


def seen(session: Session, principal: Principal) -> None:
    """Record that the account acted (its ``last_seen_at``)."""
    if principal.is_system:
        return
    user = session.get(User, principal.user_id)
    if user is not None:
        user.last_seen_at = datetime.now(UTC)
        session.add(user)


# ---------------------------------------------------------------- tokens


def _token_row(t: AccessToken) -> dict[str, Any]:
    return {k: getattr(t, k) for k in ("id", "name", "prefix", "purpose", "created_at", "expires_at", "revoked_at",
                                       "last_used_at")}  # fmt: skip


TOKEN_PURPOSES = ("api", "feed")  # api: the API and the fire flow; feed: calendar subscriptions only


def create_token(
    session: Session,
    principal: Principal,
    clock: Clock,
    name: str,
    days: int = DEFAULT_TOKEN_DAYS,
    purpose: str = "api",
) -> tuple[AccessToken, str]:
    """A new personal access token for the principal's own account; the token is returned
    once and only its hash is kept. It acts with its owner's grants as they are when used;
    ``purpose`` says where (an ``api`` token is refused by the feeds, a ``feed`` one by the API)."""
    if purpose not in TOKEN_PURPOSES:
        raise InvalidInput(f"token purpose {purpose!r}: use one of {', '.join(TOKEN_PURPOSES)}")
    if principal.is_system:
        raise PermissionDenied("the system account has no tokens")
    check_text(name, "token name")
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("name the token (what it is for)")
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"{days} days: a token lives 1 to {MAX_TOKEN_DAYS} days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    row = AccessToken(
        user_id=principal.user_id,
        name=name,
        token_hash=_hash_token(token),
        prefix=token[:10],
        created_at=now,
        expires_at=now + timedelta(days=days),
        purpose=purpose,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    # Done in no role (as signing in is): an auditor, read-only in every role, has tokens too.
    record_change(session, "token", row.id, "create", principal=principal, role=NO_ROLE, clock=clock, state="active",
                  data={"name": name, "prefix": row.prefix, "purpose": purpose,
                        "expires_at": row.expires_at.isoformat()})  # fmt: skip
    return row, token


def tokens(session: Session, principal: Principal) -> list[dict[str, Any]]:
    rows = session.exec(
        select(AccessToken).where(AccessToken.user_id == principal.user_id).order_by(col(AccessToken.id))
    ).all()
    return [_token_row(t) for t in rows]


def revoke_token(session: Session, principal: Principal, clock: Clock, token_id: int) -> AccessToken:
    """Revoke one of my tokens (an administrator may revoke anyone's)."""
    row = session.get(AccessToken, token_id) if is_row_id(token_id) else None
    if row is None or (row.user_id != principal.user_id and not principal.holds(ADMINISTRATOR)):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is not None:
        raise InvalidInput(f"token {token_id} was already revoked")
    row.revoked_at = datetime.now(UTC)
    session.add(row)
    own = row.user_id == principal.user_id
    record_change(session, "token", token_id, "revoke", principal=principal,
                  role=NO_ROLE if own else ADMINISTRATOR, clock=clock, state="revoked",
                  data={"owner": row.user_id, "prefix": row.prefix})  # fmt: skip
    return row


# ---------------------------------------------------------------- permissions


def set_permission(
    session: Session,
    principal: Principal,
    clock: Clock,
    kind: str,
    trigger: str,
    *,
    roles: list[str] | None = None,
    four_eyes: bool | None = None,
) -> PermissionRule:
    """Override who may fire ``kind.trigger`` and/or whether it needs four eyes (audited)."""
    _admin(principal, "change permissions")
    return _set_permission(session, principal, clock, kind, trigger, roles, four_eyes)


def _set_permission(
    session: Session,
    principal: Principal,
    clock: Clock,
    kind: str,
    trigger: str,
    roles: list[str] | None,
    four_eyes: bool | None,
) -> PermissionRule:
    check_rule(kind, trigger, roles)
    if roles is None and four_eyes is None:
        raise InvalidInput("give --roles and/or --four-eyes/--no-four-eyes")
    row = session.exec(
        select(PermissionRule).where(PermissionRule.kind == kind, PermissionRule.trigger == trigger)
    ).first()
    before = {"roles": row.roles, "four_eyes": row.four_eyes} if row is not None else None
    row = row or PermissionRule(kind=kind, trigger=trigger)
    if roles is not None:
        row.roles = sorted(set(roles))
    if four_eyes is not None:
        row.four_eyes = four_eyes
    row.set_by, row.set_at = principal.user_id, clock.now()
    session.add(row)
    session.flush()
    forget(session)
    assert row.id is not None
    _audit(session, principal, clock, "permission", row.id, "set", "overridden",
           {"kind": kind, "trigger": trigger, "before": before,
            "after": {"roles": row.roles, "four_eyes": row.four_eyes}})  # fmt: skip
    return row


def reset_permission(session: Session, principal: Principal, clock: Clock, kind: str, trigger: str) -> None:
    """Back to the machine's own table for ``kind.trigger`` (audited)."""
    _admin(principal, "change permissions")
    check_rule(kind, trigger, None)
    row = session.exec(
        select(PermissionRule).where(PermissionRule.kind == kind, PermissionRule.trigger == trigger)
    ).first()
    if row is None:
        raise InvalidInput(f"{kind}.{trigger} has no override: it already follows the machine's table")
    assert row.id is not None
    _audit(session, principal, clock, "permission", row.id, "reset", "default",
           {"kind": kind, "trigger": trigger, "before": {"roles": row.roles, "four_eyes": row.four_eyes}})  # fmt: skip
    session.delete(row)
    session.flush()
    forget(session)


# ---------------------------------------------------------------- peerwatch init


def bootstrap(
    session: Session,
    clock: Clock,
    *,
    os_login: str,
    name: str | None = None,
    email: str | None = None,
    permissions_file: Path | None = None,
) -> tuple[User | None, bool]:
    """``peerwatch init``: the OS user running it becomes the first administrator, when the
    database has none; a deployment's permissions file seeds the permission table (only
    while it is empty). Returns the account and whether it was made now."""
    admins = session.exec(
        select(RoleGrant).where(RoleGrant.role == ADMINISTRATOR, col(RoleGrant.revoked_at).is_(None))
    ).first()
    made = False
    user = session.exec(select(User).where(User.os_login == os_login)).first()
    if admins is None:
        if user is None:
            user = _add_user(
                session,
                None,
                clock,
                name=name or os_login,
                email=email or f"{os_login}@localhost.localdomain",
                os_login=os_login,
            )
        assert user.id is not None
        me = Principal(user.id, user.name, (Grant(ADMINISTRATOR),), "init")
        row = RoleGrant(user_id=user.id, role=ADMINISTRATOR, scope=INSTALLATION, granted_at=clock.now(), source="init")
        session.add(row)
        session.flush()
        _audit(session, me, clock, "account", user.id, "grant", user.status,
               {"grant_id": row.id, "role": ADMINISTRATOR, "scope": INSTALLATION, "scope_id": None,
                "note": "first administrator, made by peerwatch init"})  # fmt: skip
        made = True
    if permissions_file is not None:
        if session.exec(select(func.count()).select_from(PermissionRule)).one():
            raise InvalidInput("the permission table already has overrides: change them with peerwatch permissions set")
        if user is None or not made:
            holder = user or find_user(session, os_login)
            me = principal_for(session, holder, "cli")
            _admin(me, "seed permissions")
        else:
            me = Principal(user.id or 0, user.name, (Grant(ADMINISTRATOR),), "init")
        for kind, trigger, roles, four_eyes in read_file(permissions_file):
            _set_permission(session, me, clock, kind, trigger, roles, four_eyes)
    return user, made


def system_account(session: Session) -> User:
    user = session.get(User, SYSTEM_USER_ID)
    assert user is not None and user.status == SYSTEM_STATUS
    return user


def record_refused_command(db: Engine, login: str, command: str, reason: str) -> None:
    """A command refused before it reached the engine (who is acting could not be established,
    or may not do it): recorded with the account the OS login maps to, if any, and the login."""
    with Session(db) as s:
        user = s.exec(select(User).where(User.os_login == login)).first()
    who = None if user is None or user.id is None else Principal(user.id, user.name, (), "cli")
    record_refusal(db, "command", None, command, who, None, SystemClock(), reason, {"os_login": login})
