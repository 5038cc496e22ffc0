"""The demo's people sign in to the web application: each account gets the one demo passphrase,
and the demo prints who they are at the end.

The demo database is a training database: one shared, printed passphrase is fine there (and
only there); a real installation's people set their own (``peerwatch user password``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from cli.output import console
from models import Network, Organisation, Service
from models.accounts import RoleGrant, User
from states.clock import Clock
from states.principal import NETWORK, ORGANISATION, SERVICE, Principal
from states.services import signin

# Passes the password policy (NCSC: length, not composition; not on the deny-list).
DEMO_PASSWORD = "training passphrase"
WEB_URL = "http://127.0.0.1:8000"


def set_demo_passwords(session: Session, admin: Principal, clock: Clock) -> int:
    """Every person's account (the cast and the administrator) gets ``DEMO_PASSWORD``, set by
    the administrator (audited ``password_set``). Returns how many."""
    users = session.exec(select(User).where(User.status == "active").order_by(col(User.id))).all()
    for user in users:
        signin.set_password(session, admin, clock, user.id, DEMO_PASSWORD)
    return len(users)


def _roles(session: Session, user_id: int) -> str:
    grants = session.exec(
        select(RoleGrant)
        .where(RoleGrant.user_id == user_id, col(RoleGrant.revoked_at).is_(None))
        .order_by(col(RoleGrant.id))
    ).all()
    shown = []
    for g in grants:
        net = session.get(Network, g.scope_id) if g.scope == NETWORK and g.scope_id is not None else None
        place = (
            session.get(Service, g.scope_id)
            if g.scope == SERVICE
            else session.get(Organisation, g.scope_id)
            if g.scope == ORGANISATION
            else None
        )
        shown.append(f"{g.role} ({net.code})" if net is not None else f"{g.role} ({place.name})" if place else g.role)
    return ", ".join(shown)


def print_sign_in(
    db: Any, db_path: Path, ids: dict[str, int], end: date, manager: str, portal: tuple[str, str, str] | None = None
) -> None:
    """Who can sign in to the web application, with what, and where to find the story's
    twice-inadequate serious concern (``manager``: the Network Manager whose work it is)."""
    with Session(db) as s:
        users = s.exec(select(User).where(User.status == "active").order_by(col(User.id))).all()
        rows = [(u.name, u.email, _roles(s, u.id or 0), DEMO_PASSWORD) for u in users]
        nm = s.exec(select(User).where(User.name == manager)).one()
    console.print(
        "\nSign in to the web application (a training database: every demo account has the same passphrase)",
        markup=False,
        soft_wrap=True,
    )
    header = ("account", "email", "roles", "password")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        console.print("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(),
                      markup=False, soft_wrap=True, highlight=False)  # fmt: skip
    console.print(
        f"Web: make web (or PEERWATCH_DATABASE_URL=sqlite:///{db_path.resolve()} .venv/bin/peerwatch web), "
        f"then {WEB_URL}",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"Sign in as {nm.name} <{nm.email}> (Network Manager, Cheshire & Mersey): the twice-inadequate serious "
        f"concern SC-{ids['SC-mersey']} is in My work, its quarterly monitoring review to record. This training "
        f"database stands at {end:%a %d %b %Y}: actions happen on that day (peerwatch installation training-day "
        "moves it).",
        markup=False,
        soft_wrap=True,
    )
    if portal is not None:
        lead, asha, risk = portal
        console.print(
            f"The Trust portal: sign in as {lead} (Service Lead, Severnside Trauma Unit): 'What is asked of us' "
            f"lists the serious concern {risk} awaiting the Trust's formal response, by when and what happens if it "
            f"is missed; send the response (and the draft action plan) there, then sign in as {asha} (Network "
            "Manager, West Midlands): the response waits in My work to be judged.",
            markup=False,
            soft_wrap=True,
        )
