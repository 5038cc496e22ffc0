"""Roles in one place, a read-only auditor, four eyes, and refused attempts audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Proposal, RefusedAttempt, Risk
from states import engine
from states.clock import FixedClock
from states.engine import permissions
from states.errors import GuardRefused, InvalidInput, PermissionDenied
from states.machines.spec import get_spec
from tests.factories import person

NM, RL = "network-manager", "regional-lead"
DAY = FixedClock(date(2026, 12, 18))


@pytest.fixture(autouse=True)
def _fresh_overrides() -> None:
    permissions.forget_overrides()


def test_the_matrix_lists_every_trigger_of_every_kind_and_the_auditor_nowhere() -> None:
    rows = permissions.matrix()
    from states.machines.spec import kinds

    assert {(r["kind"], r["trigger"]) for r in rows} == {(k, t) for k in kinds() for t in get_spec(k).triggers()}
    assert all("auditor" not in r["roles"] for r in rows)
    assert {(r["kind"], r["trigger"]) for r in rows if r["four_eyes"]} == {("appeal", "decide")}


def test_one_file_changes_who_may_fire_a_trigger(
    session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = raise_risk("IR")
    (tmp_path / "perms.yaml").write_text("risk:\n  send_formal_notification: [regional-lead]\n")
    monkeypatch.setenv("PEERWATCH_PERMISSIONS", str(tmp_path / "perms.yaml"))
    with pytest.raises(PermissionDenied, match="needs one of regional-lead"):
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("a", NM), clock=DAY)
    session.rollback()
    out = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("b", RL), clock=DAY)
    assert out.row.state == "awaiting_response"


def test_a_bad_permissions_file_is_refused_with_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "perms.yaml").write_text("risk:\n  close: [janitor]\n")
    monkeypatch.setenv("PEERWATCH_PERMISSIONS", str(tmp_path / "perms.yaml"))
    with pytest.raises(InvalidInput, match="janitor"):
        permissions.matrix()


def test_the_auditor_is_read_only_even_if_a_file_grants_it(
    session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = raise_risk("IR")
    (tmp_path / "perms.yaml").write_text("risk:\n  send_formal_notification: [auditor, network-manager]\n")
    monkeypatch.setenv("PEERWATCH_PERMISSIONS", str(tmp_path / "perms.yaml"))
    with pytest.raises(PermissionDenied, match="read-only"):
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("a", "auditor"), clock=DAY)


def test_four_eyes_trigger_can_be_enabled_by_file(
    session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = raise_risk("IR")
    (tmp_path / "perms.yaml").write_text("four_eyes:\n  risk: [send_formal_notification]\n")
    monkeypatch.setenv("PEERWATCH_PERMISSIONS", str(tmp_path / "perms.yaml"))
    first = engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("Asha", NM), clock=DAY)
    session.commit()
    assert (
        first.proposed and first.row.state == "identified" and first.event.trigger == "propose:send_formal_notification"
    )
    assert session.exec(select(func.count()).select_from(Proposal)).one() == 1
    with pytest.raises(GuardRefused, match="different person"):
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person(" asha ", RL), clock=DAY)
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


def test_any_other_change_voids_a_proposal(
    session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = raise_risk("IR")
    (tmp_path / "perms.yaml").write_text("four_eyes:\n  risk: [send_formal_notification]\n")
    monkeypatch.setenv("PEERWATCH_PERMISSIONS", str(tmp_path / "perms.yaml"))
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
    session: Session, raise_risk: Callable[..., Risk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = raise_risk("IR")
    (tmp_path / "perms.yaml").write_text("four_eyes:\n  risk: [rescore]\n")
    monkeypatch.setenv("PEERWATCH_PERMISSIONS", str(tmp_path / "perms.yaml"))
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


def test_refused_attempts_are_audited_and_nothing_else_changes(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("IR")
    events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    with pytest.raises(PermissionDenied):
        engine.fire_or_record(db, "risk", risk.id, "close", principal=person("Eve", "auditor"), clock=DAY, note="x")
    with pytest.raises(Exception, match="not allowed from there"):
        engine.fire_or_record(db, "risk", risk.id, "close", principal=person("Asha", NM), clock=DAY, note="x")
    with Session(db) as s:
        refused = s.exec(select(RefusedAttempt).order_by(RefusedAttempt.id)).all()
        assert [(r.kind, r.item_id, r.trigger, r.actor, r.role) for r in refused] == [
            ("risk", risk.id, "close", "Eve", "auditor"),
            ("risk", risk.id, "close", "Asha", NM),
        ]
        assert "read-only" in refused[0].reason and "not allowed" in refused[1].reason
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == events
        assert s.get(Risk, risk.id).version == risk.version  # type: ignore[union-attr]
