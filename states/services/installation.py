"""The installation's service account: several people on one server without handing each of
them the audit key.

The audit key file is readable by its owner only (states/engine/keys.py), and so should the
SQLite database be. On a shared server one OS account, the *service account*, owns both;
people run the command line through ``sudo -u <service account> peerwatch ...`` (a sudoers
rule per staff group). sudo itself sets ``SUDO_UID`` to the uid of the person who typed the
command, so peer authentication then maps *that* person, not the service account:

- only when the process's effective uid is the service account named **in the database**
  (set by an administrator: ``peerwatch init --service-account NAME`` on a new installation,
  ``peerwatch installation service-account NAME|--clear`` later), never because an
  environment variable says so: anyone can set ``SUDO_UID`` in their own shell, and a person
  running peerwatch as themselves is themselves whatever it says;
- only when ``SUDO_UID`` is a uid this machine knows that is not the service account's own.

The principal made that way says ``via="sudo"``. The rule itself (``caller_login``) is pure:
the command line hands it the effective uid's login name and ``SUDO_UID``.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from dataclasses import replace

from sqlmodel import Session, col, select

from models.accounts import RoleGrant, User
from models.installation import ROW_ID, Installation, installation_id
from states.clock import Clock
from states.engine.audit import record_change
from states.errors import InvalidInput, PermissionDenied
from states.principal import Principal
from states.roles import ADMINISTRATOR
from states.services import accounts

KIND = "installation"  # the audit events of the installation row
SUDO = "sudo"  # Principal.via of a person mapped through the service account
MAX_UID = 2**32 - 2  # (uid_t)-1 means "no uid"


def _login_of_uid(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def _uid_of_login(login: str) -> int | None:
    try:
        return pwd.getpwnam(login).pw_uid
    except (KeyError, ValueError):  # unknown, or a name with a NUL
        return None


def caller_login(
    service: str | None,
    euid_login: str,
    sudo_uid: str | None,
    login_of_uid: Callable[[int], str | None] | None = None,
    uid_of_login: Callable[[str], int | None] | None = None,
) -> str | None:
    """The login of the person who ran ``sudo -u <service> peerwatch``, or None when the rule
    does not apply: no service account named, the process is not running as it, ``SUDO_UID``
    absent or not a plain uid this machine knows, or the service account's own uid."""
    if not service or euid_login != service or not sudo_uid:
        return None
    login_of_uid = login_of_uid or _login_of_uid  # this machine's accounts (pwd), unless a test gives others
    uid_of_login = uid_of_login or _uid_of_login
    text = sudo_uid.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    uid = int(text)
    if uid > MAX_UID or uid == uid_of_login(service):
        return None
    login = login_of_uid(uid)
    if login is None or login == service:
        return None
    return login


def service_account(session: Session) -> str | None:
    """The OS login named as the service account, or None."""
    row = session.get(Installation, ROW_ID)
    return None if row is None else row.service_account


def peer_login(session: Session, euid_login: str, sudo_uid: str | None) -> str:
    """Whom peer authentication maps: the sudo caller's login when this process runs as the
    service account the database names and ``SUDO_UID`` is a real other uid; else the
    effective uid's login."""
    return caller_login(service_account(session), euid_login, sudo_uid) or euid_login


def peer_principal(session: Session, euid_login: str, sudo_uid: str | None, prefer: str | None = None) -> Principal:
    """The command line's principal: the account mapped to ``peer_login`` (``via="sudo"`` when
    that is the sudo caller), or refused as ``accounts.peer_principal`` refuses."""
    login = peer_login(session, euid_login, sudo_uid)
    principal = accounts.peer_principal(session, login, prefer)
    return replace(principal, via=SUDO) if login != euid_login else principal


def has_administrator(session: Session) -> bool:
    """Does any account hold ``administrator`` now (``peerwatch init`` has made its first)?"""
    row = session.exec(
        select(RoleGrant.id).where(RoleGrant.role == ADMINISTRATOR, col(RoleGrant.revoked_at).is_(None))
    ).first()
    return row is not None


def init_login(session: Session, euid_login: str, sudo_uid: str | None, proposed: str | None) -> str:
    """Whose account ``peerwatch init`` makes the first administrator (or finds): the person
    peer authentication maps by the service account the database names; with ``--service-account``
    on a new installation (no administrator yet), the person who ran ``sudo -u <it> peerwatch
    init``. Refused, before anything is made, when administrators exist and name another (an
    administrator changes it), or when init was not run through sudo as the proposed account.
    The installation's row is made here (its own short transaction), so that init's own
    transaction later changes it without a second writer."""
    installation_id(session)
    configured = service_account(session)
    if proposed is not None:
        proposed = proposed.strip()
    if proposed is None or proposed == configured:
        return caller_login(configured, euid_login, sudo_uid) or euid_login
    if has_administrator(session):
        raise InvalidInput(
            "this installation has administrators already: one of them names the service account "
            f"(peerwatch installation service-account {proposed}); nothing was changed"
        )
    proposed = check_service_account(session, proposed)
    caller = caller_login(proposed, euid_login, sudo_uid)
    if caller is None:
        raise InvalidInput(
            f"init --service-account {proposed} is run through sudo as that account (sudo -u {proposed} peerwatch "
            "init ...), so that you, not the service account, become the first administrator; nothing was changed"
        )
    return caller


def check_service_account(session: Session, name: str) -> str:
    """``name`` as a service account: one word, an OS account on this machine, not root, and
    not a person's login (mapped to an account). Returns it stripped."""
    name = name.strip()
    if not name or any(c.isspace() for c in name) or len(name) > 64:
        raise InvalidInput(f"service account {name!r}: one OS login name, no spaces; nothing was changed")
    uid = _uid_of_login(name)
    if uid is None:
        raise InvalidInput(
            f"there is no OS account {name!r} on this machine (useradd --system it first); nothing was changed"
        )
    if uid == 0:
        raise InvalidInput(
            "the service account may not be root: make a dedicated one (useradd --system); nothing was changed"
        )
    person = session.exec(select(User).where(User.os_login == name)).first()
    if person is not None:
        raise InvalidInput(
            f"the OS login {name} is mapped to account {person.id} ({person.name}): the service account must be "
            "a dedicated login nobody signs in as; nothing was changed"
        )
    return name


def set_service_account(session: Session, principal: Principal, clock: Clock, name: str | None) -> bool:
    """Name the service account (None: no longer any); administrators only, audited (kind
    ``installation``). Returns whether it changed."""
    if principal.is_system or not principal.holds(ADMINISTRATOR):
        raise PermissionDenied(f"{principal.name} may not name the service account: only an administrator may")
    if name is not None:
        name = check_service_account(session, name)
    installation_id(session)
    row = session.get(Installation, ROW_ID)
    assert row is not None
    before = row.service_account
    if before == name:
        return False
    row.service_account = name
    session.add(row)
    record_change(
        session,
        KIND,
        ROW_ID,
        "set_service_account" if name else "clear_service_account",
        principal=principal,
        role=ADMINISTRATOR,
        clock=clock,
        state="service-account" if name else "no-service-account",
        data={"service_account": name, "before": before},
    )
    return True
