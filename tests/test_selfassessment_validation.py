"""Self-assessment validation, total achievement and escalation below fifty percent."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Service
from models.selfassessment import StandardSet
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, MissingActor, NotFound, PermissionDenied
from states.machines.standards import (
    total_achievement,
)
from states.principal import Grant, Principal
from states.services.standards import load_standard_sets
from tests.factories import person
from tests.support_selfassessment import (
    ACC,
    DAY,
    OFFICE,
    S,
    circulate,
    emails,
    fill,
    import_filled,
    items_of,
    letters_to,
    library,  # noqa: F401 (pytest fixtures)
    reach,
    ten_standard_set,
    xlsx,
)

# ---------------------------------------------------------------- validation, achievement, escalation


def test_validation_records_beside_the_declaration_and_needs_a_reason_to_overrule_the_figure(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = reach(session, db, services, clock, S.RECEIVED)
    with pytest.raises(InvalidInput, match="the figure 98 gives Met"):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            principal=person("Jo", OFFICE),
            clock=clock,  # type: ignore[arg-type]
            params={"ref": "1.2", "status": "Unmet"},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="no 'Partially Met' band"):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            principal=person("Jo", OFFICE),
            clock=clock,  # type: ignore[arg-type]
            params={"ref": "2.2", "status": "Partially Met"},
        )
    session.rollback()
    with pytest.raises(NotFound):
        engine.fire(
            session,
            "selfassessment",
            row.id,
            "validate_item",
            principal=person("Jo", OFFICE),
            clock=clock,  # type: ignore[arg-type]
            params={"ref": "7.7", "status": "Met"},
        )
    session.rollback()
    engine.fire(
        session,
        "selfassessment",
        row.id,
        "validate_item",
        principal=person("Jo", OFFICE),
        clock=clock,  # type: ignore[arg-type]
        params={"ref": "1.2", "status": "Unmet"},
        note="figure excludes out-of-hours admissions",
    )
    engine.fire(
        session,
        "selfassessment",
        row.id,
        "validate_item",
        principal=person("Jo", OFFICE),
        clock=clock,  # type: ignore[arg-type]
        params={"ref": "2.1", "status": "Unmet"},
        note="no attendance audit seen",
    )
    session.commit()
    with pytest.raises(GuardRefused, match="are_all_items_validated"):
        engine.fire(
            session, "selfassessment", row.id, "complete_validation", principal=person("Jo", OFFICE), clock=clock
        )  # type: ignore[arg-type]
    session.rollback()
    out = engine.fire(session, "selfassessment", row.id, "accept_all", principal=person("Jo", OFFICE), clock=clock)  # type: ignore[arg-type]
    session.commit()
    items = items_of(session, row)
    assert {r: (i.self_status, i.validated_status) for r, i in items.items()} == {
        "1.1": ("Met", "Met"),
        "1.2": ("Met", "Unmet"),
        "1.3": ("Partially Met", "Partially Met"),
        "1.4": ("Unmet", "Unmet"),
        "2.1": ("Partially Met", "Unmet"),
        "2.2": ("Met", "Met"),
    }
    assert items["1.2"].validation_note == "figure excludes out-of-hours admissions"
    # Met 1.1, 2.2; Partially Met 1.3 -> 2.5 / 6 = 41.7%: below 50%, escalated
    assert out.row.achievement == 41.7 and out.row.state == S.VALIDATED
    assert [m.template for m in letters_to(session, row)][-1] == "achievement_escalation"


def test_total_achievement_formula_and_local_policy_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    assert total_achievement(["Met", "Partially Met", "Unmet", "Unmet"], 4) == 37.5
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_WEIGHT_PARTLY", "0.25")
    assert total_achievement(["Met", "Partially Met", "Unmet", "Unmet"], 4) == pytest.approx(31.25)
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_WEIGHT_MET", "lots")
    with pytest.raises(InvalidInput, match="PEERWATCH_SELFASSESSMENT_WEIGHT_MET"):
        total_achievement(["Met"], 1)


@pytest.mark.parametrize(
    ("met", "partly", "achievement", "escalated"), [(4, 1, 45.0, True), (5, 0, 50.0, False), (4, 2, 50.0, False)]
)
def test_below_fifty_percent_is_escalated_to_icbs_and_regional_quality_leads(
    db: Engine,
    session: Session,
    services: dict[str, int],
    clock: FixedClock,
    met: int,
    partly: int,
    achievement: float,
    escalated: bool,
) -> None:
    load_standard_sets(
        session,
        [ten_standard_set("Adult Critical Care", "10", "2026-04-01")],
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(DAY),
    )
    session.commit()
    row = circulate(session, services, clock)
    statuses = ["Met"] * met + ["Partially Met"] * partly + ["Unmet"] * (10 - met - partly)
    answers = {f"{n}.1": (s, None, "", "work plan") for n, s in enumerate(statuses, start=1)}
    import_filled(db, row, fill(xlsx(session, row), answers), clock)
    session.expire_all()
    out = engine.fire(session, "selfassessment", row.id, "accept_all", principal=person("Jo", OFFICE), clock=clock)  # type: ignore[arg-type]
    session.commit()
    assert out.row.achievement == achievement
    letters = [m for m in letters_to(session, row) if m.template == "achievement_escalation"]
    assert bool(letters) is escalated
    if escalated:
        (letter,) = letters
        net = session.get(Service, services[ACC]).network_id  # type: ignore[union-attr]
        assert {p["email"] for p in letter.to} == emails(session, "icb", network_id=net) | emails(
            session, "regional-quality-lead", network_id=net
        )
        assert "below 50% total achievement (45.0%)" in rendered(letter).subject
        assert (
            "4 Met" in rendered(letter).body_text
            and "1 Partially Met" in rendered(letter).body_text
            and "5 Unmet" in rendered(letter).body_text
        )


# ---------------------------------------------------------------- who may load standards (issue 14)


def test_standard_sets_are_loaded_by_staff_granted_for_the_whole_installation(
    session: Session, services: dict[str, int]
) -> None:
    """The library is the installation's: a staff role held only for one network does not load
    a set (it would change every network's), nor does an auditor or nobody; nothing is stored.
    A staff role for the installation does, and the audit event names the account."""
    sets = [ten_standard_set("Adult Critical Care", "10", "2026-04-01")]
    net = session.get(Service, services[ACC]).network_id  # type: ignore[union-attr]
    scoped = Principal(
        person("Wyn Midlands", "network-manager").user_id, "Wyn Midlands", (Grant("network-manager", "network", net),)
    )
    refusals: list[tuple[object, type[Exception], str]] = [
        (scoped, PermissionDenied, "holds network-manager only for a network, Trust or service: .* nothing loaded"),
        (person("Al Auditor", "auditor"), PermissionDenied, "may not load standard sets: needs one of"),
        ("Jo Office", MissingActor, "nobody is identified as acting to load standard sets"),
    ]
    for principal, exc, message in refusals:
        with pytest.raises(exc, match=message):
            load_standard_sets(session, sets, principal=principal, clock=FixedClock(DAY))  # type: ignore[arg-type]
        session.rollback()
    assert [session.exec(select(func.count()).select_from(t)).one() for t in (StandardSet, AuditEvent)] == [0, 0]
    jo = person("Jo Office", OFFICE)
    (loaded,) = load_standard_sets(session, sets, principal=jo, clock=FixedClock(DAY))
    session.commit()
    (event,) = engine.changes(session, "standard_set", [loaded["id"]])
    assert (event.trigger, event.user_id, event.actor, event.role) == (
        "load_standard_set",
        jo.user_id,
        "Jo Office",
        OFFICE,
    )
