"""``peerwatch user``: accounts and their role grants (administrators; each change audited).

An account is a person: a display name, an email, optionally the OS login that maps to it on
this server (the command line's peer authentication). A grant gives a role in a scope: the
whole installation (no option), a network (``--network``), a Trust (``--organisation``) or a
service (``--service``). Revoking keeps the grant as history; disabling an account keeps it
and its audit trail, and revokes its tokens. Administrators and auditors may list and show.

Signing in to the web application (``peerwatch web``): ``user password`` sets a password (one's
own, or an administrator for anyone; NCSC policy: at least 12 characters, no common ones), and
``user sso`` links an account to a single sign-on identity (an administrator).
``user purge-sign-ins`` deletes old sign-in records (the daily chase does it too).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from sqlmodel import Session, select

from cli.context import Context, of
from cli.output import console, table
from models import Network, Organisation, Service
from models.accounts import User
from states.clock import SystemClock
from states.errors import InvalidInput, NotFound
from states.principal import INSTALLATION, NETWORK, ORGANISATION, SERVICE, Principal
from states.roles import ADMINISTRATOR, AUDITOR, GRANTABLE_ROLES
from states.services import accounts, signin, signin_housekeeping

NAME = "user"
app = typer.Typer(
    help="Accounts and role grants: add, list, show, disable, grant, revoke (administrators).", no_args_is_help=True
)
READERS = (ADMINISTRATOR, AUDITOR)


def scope_label(session: Session, scope: str, scope_id: int | None) -> str:
    """A scope as people name it: the installation, a network's code, a Trust's or service's name."""
    if scope == INSTALLATION or scope_id is None:
        return "whole installation"
    row: Any = session.get({NETWORK: Network, ORGANISATION: Organisation, SERVICE: Service}[scope], scope_id)
    if row is None:
        return f"{scope} {scope_id} (gone)"
    return f"{scope} {row.code}" if scope == NETWORK else f"{scope} {scope_id} {row.name}"


def describe(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The principal's grants in force, each with a readable scope."""
    return [
        {"role": g.role, "scope": g.scope, "scope_id": g.scope_id, "where": scope_label(session, g.scope, g.scope_id)}
        for g in principal.grants
    ]


def _scope(
    session: Session, network: str | None, organisation: str | None, service: int | None
) -> tuple[str, int | None]:
    given = [x for x in (network, organisation, service) if x is not None]
    if len(given) > 1:
        raise InvalidInput("give one of --network, --organisation or --service (none: the whole installation)")
    if network is not None:
        net = session.exec(select(Network).where(Network.code == network.strip())).first()
        if net is None and network.strip().isdigit() and len(network.strip()) < 19:
            net = session.get(Network, int(network))
        if net is None:
            raise NotFound(f"network {network!r} not found (peerwatch network list)")
        return NETWORK, net.id
    if organisation is not None:
        org = session.exec(select(Organisation).where(Organisation.name == organisation.strip())).first()
        if org is None and organisation.strip().isdigit() and len(organisation.strip()) < 19:
            org = session.get(Organisation, int(organisation))
        if org is None:
            raise NotFound(f"organisation {organisation!r} not found (peerwatch service list)")
        return ORGANISATION, org.id
    if service is not None:
        return SERVICE, service
    return INSTALLATION, None


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Display name, as letters and the audit trail show it.")],
    email: Annotated[str, typer.Argument(help="Email address (unique).")],
    os_login: Annotated[
        str | None, typer.Option("--os-login", help="The OS login that acts as this account on this server.")
    ] = None,
) -> None:
    """Add an account (no roles yet: grant them)."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        user = accounts.add_user(s, who.principal, who.clock, name=name, email=email, os_login=os_login)
        s.commit()
    run.say(
        {"id": user.id, "name": user.name, "email": user.email, "os_login": user.os_login, "status": user.status},
        f"account {user.id} added: {user.name} <{user.email}>"
        + (f", OS login {user.os_login}" if user.os_login else ", no OS login (cannot use the command line)")
        + f"; now grant a role: peerwatch user grant {user.id} ROLE",
    )


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """Every account with its roles in force (administrators and auditors)."""
    run = of(ctx)
    with Session(run.db()) as s:
        run.principal(s).require_any(READERS, "list accounts")
        rows = accounts.users(s)
    run.rows(
        f"accounts ({len(rows)})",
        ["id", "name", "email", "os_login", "status", "roles", "last_seen_at"],
        [
            (u["id"], u["name"], u["email"], u["os_login"], u["status"], ", ".join(u["roles"]), u["last_seen_at"])
            for u in rows
        ],
    )


@app.command("show")
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Account id, email or OS login.")]) -> None:
    """One account: its grants (revoked ones too, as history) and its tokens."""
    run = of(ctx)
    with Session(run.db()) as s:
        me = run.principal(s)
        detail = accounts.user_detail(s, ref)
        if detail["id"] != me.user_id:
            me.require_any(READERS, "show other accounts")
        for g in detail["grants"]:
            g["where"] = scope_label(s, g["scope"], g["scope_id"])
        user = s.get(User, detail["id"])
        assert user is not None
        detail["password_set_at"] = user.password_set_at
        detail["sso"] = f"{user.oidc_issuer} {user.oidc_subject}" if user.oidc_subject else None
    if run.json:
        run.say(detail, "")
        return
    table(
        f"account {detail['id']}",
        ["field", "value"],
        [
            (k, detail[k])
            for k in ("name", "email", "os_login", "status", "created_at", "last_seen_at", "password_set_at", "sso")
        ],
    )
    table(
        "grants",
        ["grant", "role", "where", "granted", "revoked"],
        [(g["id"], g["role"], g["where"], g["granted_at"], g["revoked_at"] or "") for g in detail["grants"]],
    )
    if detail["tokens"]:
        table(
            "tokens",
            ["id", "name", "prefix", "expires", "revoked"],
            [(t["id"], t["name"], t["prefix"], t["expires_at"], t["revoked_at"] or "") for t in detail["tokens"]],
        )


@app.command("disable")
def disable(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Account id, email or OS login.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Disable an account: it may no longer act; its tokens are revoked; its history is kept."""
    _change_status(ctx, accounts.disable_user, ref, note, "disabled")


@app.command("enable")
def enable(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Account id, email or OS login.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Re-enable a disabled account: its grants stand; its old tokens and sessions stay ended."""
    _change_status(ctx, accounts.enable_user, ref, note, "re-enabled")


def _change_status(ctx: typer.Context, change: Any, ref: str, note: str | None, done: str) -> None:
    """Disable or re-enable ``ref`` through the use case ``change``, as the person running this."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        user = change(s, who.principal, who.clock, ref, note)
        s.commit()
    run.say({"id": user.id, "status": user.status}, f"account {user.id} ({user.name}) {done}")


@app.command("grant")
def grant(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Account id, email or OS login.")],
    role: Annotated[str, typer.Argument(help=f"One of: {', '.join(GRANTABLE_ROLES)}.")],
    network: Annotated[str | None, typer.Option(help="Only in this network (code or id).")] = None,
    organisation: Annotated[str | None, typer.Option(help="Only in this Trust (id or exact name).")] = None,
    service: Annotated[int | None, typer.Option(help="Only for this service (id).")] = None,
) -> None:
    """Grant a role, in one scope (no scope option: the whole installation)."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        scope, scope_id = _scope(s, network, organisation, service)
        row = accounts.grant(s, who.principal, who.clock, ref, role, scope, scope_id)
        where = scope_label(s, scope, scope_id)
        s.commit()
    run.say(
        {"grant_id": row.id, "user_id": row.user_id, "role": row.role, "scope": scope, "scope_id": scope_id},
        f"grant {row.id}: account {row.user_id} holds {row.role} in {where}",
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    grant_id: Annotated[int, typer.Argument(help="The grant's id (peerwatch user show).")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Revoke one grant (kept as history)."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        row = accounts.revoke(s, who.principal, who.clock, grant_id, note)
        s.commit()
    run.say(
        {"grant_id": row.id, "user_id": row.user_id, "role": row.role, "revoked_at": row.revoked_at},
        f"grant {row.id} revoked: account {row.user_id} no longer holds {row.role} there",
    )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to type a password in: give it on standard input with --password-stdin")
    first = typer.prompt("New password (at least 12 characters: a passphrase)", hide_input=True)
    second = typer.prompt("The same again", hide_input=True)
    if first != second:
        raise InvalidInput("the two passwords differ: nothing was changed")
    return str(first)


@app.command("password")
def password(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="Account id, email or OS login (an administrator); none: your own.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
) -> None:
    """Set the password for signing in to the web application (asked twice, not shown).

    NCSC guidance: at least 12 characters (PEERWATCH_PASSWORD_MIN_LENGTH), at most 256, no
    composition rules; common passwords, and ones made of your name or email, are refused.
    The account's web sessions end."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        me = run.principal(s)
        user = accounts.find_user(s, ref if ref else me.user_id)
        if user.id != me.user_id:
            signin.check_admin(me, "set another account's password")
        secret = _read_password(password_stdin)
        user = signin.set_password(s, me, SystemClock(), user.id, secret)
        s.commit()
    run.say(
        {"id": user.id, "password_set_at": user.password_set_at},
        f"password set for account {user.id} ({user.name}) <{user.email}>: sign in with peerwatch web",
    )


@app.command("sso")
def sso(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Account id, email or OS login.")],
    issuer: Annotated[str | None, typer.Option(help="The OpenID provider's issuer URL.")] = None,
    subject: Annotated[str | None, typer.Option(help="The identity's subject (sub) at that provider.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Unlink the account's identity.")] = False,
) -> None:
    """Link an account to a single sign-on identity (OpenID Connect issuer and subject), or
    --remove it (administrators). Unlinked, an identity is mapped once by its verified email."""
    run = of(ctx)
    if remove == (issuer is not None or subject is not None) or (not remove and (issuer is None or subject is None)):
        raise InvalidInput("give --issuer URL and --subject SUB, or --remove")
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        if remove:
            user = signin.unlink_oidc(s, who.principal, who.clock, ref)
        else:
            assert issuer is not None and subject is not None
            user = signin.link_oidc(s, who.principal, who.clock, ref, issuer, subject)
        s.commit()
    run.say(
        {"id": user.id, "oidc_issuer": user.oidc_issuer, "oidc_subject": user.oidc_subject},
        f"account {user.id} ({user.name}) "
        + (
            f"signs on as {user.oidc_subject} at {user.oidc_issuer}" if user.oidc_subject else "has no sign-on identity"
        ),
    )


@app.command("purge-sign-ins")
def purge_sign_ins(
    ctx: typer.Context,
    days: Annotated[
        int | None,
        typer.Option(help="Keep this many days (default: PEERWATCH_SIGNIN_RECORDS_DAYS, else 90).", min=1),
    ] = None,
) -> None:
    """Delete sign-in attempts, and web sessions ended or expired, older than the retention
    (administrators; the daily chase does it too). One audit event gives the counts."""
    run = of(ctx)
    db = run.db()
    with Session(db, expire_on_commit=False) as s:
        me = run.principal(s)
    done = signin_housekeeping.purge_sign_ins(db, me, SystemClock(), days=days)
    run.say(
        {
            "sign_in_attempts": done.attempts,
            "web_sessions": done.sessions,
            "older_than": done.before,
            "days": done.days,
        },
        f"deleted {done.attempts} sign-in attempt(s) and {done.sessions} ended or expired session(s) "
        f"older than {done.days} days",
    )


def print_whoami(run: Context, data: dict[str, Any]) -> None:
    if run.json:
        run.say(data, "")
        return
    if data["via"] == "sudo":  # through sudo as the service account, from the person's own login
        how = f"via sudo as the service account {data.get('service_account')}"
    else:
        how = f"acting as {data['via']}"
    console.print(
        f"{data['name']} <{data['email']}>, account {data['id']} ({data['status']}), "
        + how
        + (f" from the OS login {data['os_login']}" if data["os_login"] else ""),
        markup=False,
    )
    for g in data["grants"]:
        console.print(f"  {g['role']}: {g['where']}", markup=False)
    if not data["grants"]:
        console.print("  no roles: ask an administrator (peerwatch user grant)", markup=False)
    console.print(
        "training database: simulated dates (--as-of) and --as are allowed"
        if data["training"]
        else "not a training database: actions happen now, on the server's clock",
        markup=False,
    )
