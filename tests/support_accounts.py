"""Accounts for tests that go through an entry point (the CLI, the ``fire`` flow): real rows in
the test database, mapped to the OS user running the tests, as ``peerwatch init`` and an
administrator would make them."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cli.context import os_login
from models.accounts import RoleGrant, User
from states.principal import Principal
from states.roles import ADMINISTRATOR, NETWORK_MANAGER, NETWORK_OFFICE, OPERATOR, REGIONAL_LEAD
from states.services import accounts

EVERY_STAFF_ROLE = (NETWORK_OFFICE, NETWORK_MANAGER, REGIONAL_LEAD, OPERATOR)


def account(
    db: Engine,
    name: str,
    roles: tuple[str, ...] = EVERY_STAFF_ROLE,
    *,
    os_login_name: str | None = None,
    email: str | None = None,
    scope: str = "installation",
    scope_id: int | None = None,
) -> Principal:
    """An active account holding ``roles`` in one scope (made directly, as a fixture; the
    administrator's commands that make them are tested in tests/test_accounts*.py)."""
    with Session(db, expire_on_commit=False) as s:
        user = s.exec(select(User).where(User.name == name)).first()
        if user is None:
            slug = "".join(c for c in name.lower() if c.isalnum()) or "someone"
            user = User(name=name, email=email or f"{slug}@example.nhs.uk", os_login=os_login_name, status="active")
            s.add(user)
            s.flush()
        assert user.id is not None
        for role in roles:
            s.add(RoleGrant(user_id=user.id, role=role, scope=scope, scope_id=scope_id, source="test"))
        s.commit()
        return accounts.principal_for(s, user, "test")


def me(
    db: Engine, roles: tuple[str, ...] = (*EVERY_STAFF_ROLE, ADMINISTRATOR), name: str = "Test Operator"
) -> Principal:
    """The OS user running the tests, mapped to an account (the CLI's peer authentication)."""
    return account(db, name, roles, os_login_name=os_login())


def make_training(db: Engine) -> None:
    """Mark the (still empty) test database as a training database."""
    with Session(db) as s:
        accounts.mark_training(s)
        s.commit()
