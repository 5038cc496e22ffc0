"""Roles in one place (the permission table in the database, changed by administrators), a
read-only auditor, four eyes, and refused attempts audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Proposal, RefusedAttempt, Risk
from models.accounts import PermissionRule
from states import engine, permissions
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, PermissionDenied
from states.machines.spec import get_spec, kinds
from states.principal import Principal
from states.roles import ADMINISTRATOR
from states.services import accounts
from tests.factories import person
from tests.support_accounts import account

NM, RL = "network-manager", "regional-lead"
DAY = FixedClock(date(2026, 12, 18))


@pytest.fixture
def admin(db: Engine) -> Principal:
    return account(db, "Ada Admin", (ADMINISTRATOR,))


def _override(session: Session, admin: Principal, trigger: str, **change: object) -> None:
    accounts.set_permission(session, admin, DAY, "risk", trigger, **change)  # type: ignore[arg-type]
    session.commit()


def test_the_matrix_lists_every_trigger_of_every_kind_and_the_auditor_nowhere(session: Session) -> None:
    rows = permissions.matrix(session)
    assert {(r["kind"], r["trigger"]) for r in rows} == {(k, t) for k in kinds() for t in get_spec(k).triggers()}
    assert all("auditor" not in r["roles"] and "administrator" not in r["roles"] for r in rows)
    assert {(r["kind"], r["trigger"]) for r in rows if r["four_eyes"]} == {("appeal", "decide")}
    assert not any(r["changed"] for r in rows)


def test_an_administrators_override_changes_who_may_fire_a_trigger(
    session: Session, raise_risk: Callable[..., Risk], admin: Principal
) -> None:
    risk = raise_risk("IR")
    _override(session, admin, "send_formal_notification", roles=[RL])
    changed = [r for r in permissions.matrix(session) if r["changed"]]
    assert [(r["kind"], r["trigger"], r["roles"]) for r in changed] == [("risk", "send_formal_notification", [RL])]
    with pytest.raises(PermissionDenied, match="needs one of regional-lead"):
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("a", NM), clock=DAY)
    session.rollback()
    out = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("b", RL), clock=DAY)
    assert out.row.state == "awaiting_response"
    (event,) = session.exec(select(AuditEvent).where(AuditEvent.kind == "permission")).all()
    assert (event.user_id, event.actor, event.role, event.trigger) == (admin.user_id, "Ada Admin", ADMINISTRATOR, "set")
    assert event.data["after"] == {"roles": [RL], "four_eyes": None}


def test_only_an_administrator_changes_the_table(session: Session, db: Engine) -> None:
    manager = account(db, "Jo Manager", (NM,))
    with pytest.raises(PermissionDenied, match="only an administrator"):
        accounts.set_permission(session, manager, DAY, "risk", "withdraw", roles=["operator"])
    assert session.exec(select(func.count()).select_from(PermissionRule)).one() == 0


def test_a_deployment_file_seeds_the_table_once_at_init(session: Session, tmp_path: Path) -> None:
    perms = tmp_path / "perms.yaml"
    perms.write_text("risk:\n  close: [network-manager]\nfour_eyes:\n  report: [approve]\n")
    user, made = accounts.bootstrap(session, DAY, os_login="deploy", permissions_file=perms)
    session.commit()
    assert made and user is not None
    changed = {(r["kind"], r["trigger"]): r for r in permissions.matrix(session) if r["changed"]}
    assert changed[("risk", "close")]["roles"] == [NM] and changed[("report", "approve")]["four_eyes"]
    with pytest.raises(InvalidInput, match="already has overrides"):
        accounts.bootstrap(session, DAY, os_login="deploy", permissions_file=perms)


def test_a_bad_permissions_file_is_refused_with_its_name(session: Session, tmp_path: Path) -> None:
    (tmp_path / "perms.yaml").write_text("risk:\n  close: [janitor]\n")
    with pytest.raises(InvalidInput, match="janitor"):
        accounts.bootstrap(session, DAY, os_login="deploy", permissions_file=tmp_path / "perms.yaml")


def test_the_auditor_stays_read_only_whatever_the_table_says(
    session: Session, raise_risk: Callable[..., Risk], admin: Principal
) -> None:
    risk = raise_risk("IR")
    with pytest.raises(InvalidInput, match="auditor cannot fire"):
        accounts.set_permission(session, admin, DAY, "risk", "send_formal_notification", roles=["auditor", NM])
    session.rollback()
    # even a row written behind the administrators' backs does not make the auditor a writer
    session.exec(  # type: ignore[call-overload]
        text(
            "INSERT INTO permission_rule (kind, trigger, roles, set_at) "
            """VALUES ('risk', 'send_formal_notification', '["auditor", "network-manager"]', CURRENT_TIMESTAMP)"""
        )
    )
    session.commit()
    with pytest.raises(PermissionDenied, match="may not fire 'send_formal_notification'"):
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("a", "auditor"), clock=DAY)


def test_four_eyes_can_be_enabled_by_an_administrator(
    session: Session, raise_risk: Callable[..., Risk], admin: Principal
) -> None:
    risk = raise_risk("IR")
    _override(session, admin, "send_formal_notification", four_eyes=True)
    first = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("Asha", NM), clock=DAY)
    session.commit()
    assert (
        first.proposed and first.row.state == "identified" and first.event.trigger == "propose:send_formal_notification"
    )
    assert session.exec(select(func.count()).select_from(Proposal)).one() == 1
    asha_again = person("Asha", RL, user_id=first.event.user_id)  # the same account, in another of its roles
    with pytest.raises(GuardRefused, match="different person"):
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=asha_again, clock=DAY)
    session.rollback()
    with pytest.raises(GuardRefused, match="differs from what Asha proposed"):
        engine.fire(
            session,
            "risk",
            risk.id,
            "send_formal_notification",
            principal=person("Tom", RL),
            clock=DAY,
            params={"x": "1"},
        )
    session.rollback()
    done = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("Tom", RL), clock=DAY)
    session.commit()
    assert done.row.state == "awaiting_response" and not done.proposed
    assert done.event.data["four_eyes"]["proposed_by"] == "Asha"
    assert session.exec(select(func.count()).select_from(Proposal)).one() == 0


def test_any_other_change_voids_a_proposal(session: Session, raise_risk: Callable[..., Risk], admin: Principal) -> None:
    risk = raise_risk("IR")
    _override(session, admin, "send_formal_notification", four_eyes=True)
    engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("Asha", NM), clock=DAY)
    engine.fire(
        session,
        "risk",
        risk.id,
        "rescore",
        principal=person("Asha", NM),
        clock=DAY,
        params={"impact": 2, "likelihood": 2},
    )
    again = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("Tom", RL), clock=DAY)
    assert again.proposed  # Tom's fire is a fresh proposal: the item changed since Asha's


def test_a_proposal_that_would_be_refused_is_refused_at_once(
    session: Session, raise_risk: Callable[..., Risk], admin: Principal
) -> None:
    risk = raise_risk("IR")
    _override(session, admin, "rescore", four_eyes=True)
    with pytest.raises(InvalidInput, match="1-6"):
        engine.fire(
            session,
            "risk",
            risk.id,
            "rescore",
            principal=person("Asha", NM),
            clock=DAY,
            params={"impact": 9, "likelihood": 1},
        )
    session.rollback()
    assert session.exec(select(func.count()).select_from(Proposal)).one() == 0


def test_an_override_reset_goes_back_to_the_machines_table(
    session: Session, raise_risk: Callable[..., Risk], admin: Principal
) -> None:
    risk = raise_risk("IR")
    _override(session, admin, "send_formal_notification", roles=[RL])
    accounts.reset_permission(session, admin, DAY, "risk", "send_formal_notification")
    session.commit()
    assert not any(r["changed"] for r in permissions.matrix(session))
    out = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("a", NM), clock=DAY)
    assert out.row.state == "awaiting_response"
    events = session.exec(select(AuditEvent.trigger).where(AuditEvent.kind == "permission")).all()
    assert list(events) == ["set", "reset"]


def test_refused_attempts_are_audited_and_nothing_else_changes(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("IR")
    events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    eve, asha = person("Eve", "auditor"), person("Asha", NM)
    with pytest.raises(PermissionDenied):
        engine.fire_or_record(db, "risk", risk.id, "send_formal_notification", principal=eve, clock=DAY)
    with pytest.raises(Exception, match="not allowed from there"):
        engine.fire_or_record(db, "risk", risk.id, "close", principal=asha, clock=DAY, note="x")
    with Session(db) as s:
        refused = s.exec(select(RefusedAttempt).order_by(RefusedAttempt.id)).all()
        assert [(r.kind, r.item_id, r.trigger, r.actor, r.role, r.user_id) for r in refused] == [
            ("risk", risk.id, "send_formal_notification", "Eve", "auditor", eve.user_id),
            ("risk", risk.id, "close", "Asha", NM, asha.user_id),
        ]
        assert "may not" in refused[0].reason and "not allowed" in refused[1].reason
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == events
        assert s.get(Risk, risk.id).version == risk.version  # type: ignore[union-attr]
