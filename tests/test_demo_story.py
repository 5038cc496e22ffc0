"""The demo says who was told (issue 12, item 11): each escalation line of its printed story
names, from the outbox rows, the people written to by role, name and organisation (the
Commissioning Lead, the CQC, the TPD and RA, the ASCT). Driven through the engine and the real
sweep on the demo's reference data, with the functions the demo's timeline uses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cli.demo import escalations_since, last_letter_id
from models import Risk
from models.tables import Contact, Network, Service
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from tests.factories import person

MHM, STU = "Mersey Harbour Major Trauma Centre", "Severnside Trauma Unit"
NM, RL = ("Dr Asha Patel", "network-manager"), ("Mr Tom Hughes", "regional-lead")


def _holder(session: Session, service_id: int, role: str) -> str:
    """How the demo must name the network's holder of ``role``: role title, name, network."""
    svc = session.get(Service, service_id)
    assert svc is not None
    c = session.exec(
        select(Contact).where(
            Contact.role == role,
            Contact.network_id == svc.network_id,
            Contact.service_id.is_(None),
            Contact.organisation_id.is_(None),
        )
    ).one()
    net = session.get(Network, svc.network_id)
    assert net is not None
    return f"{c.name} ({net.name})"


def _fire(session: Session, risk_id: int, trigger: str, who: tuple[str, str], day: date) -> str | None:
    before = last_letter_id(session)
    engine.fire(
        session,
        "risk",
        risk_id,
        trigger,
        principal=person(who[0], who[1]),
        clock=FixedClock(day),
        note="as in the demo",
    )
    session.commit()
    return escalations_since(session, before, "risk", risk_id).get(("risk", risk_id))


def test_each_escalation_names_who_was_written_to(
    session: Session,
    db: Engine,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
) -> None:
    # Mersey Harbour: doctors in training, scored 4x4 = 16: the ASCT is told when it is raised.
    before = last_letter_id(session)
    mersey = raise_risk("SC", service=MHM, impact=4, likelihood=4, doctors_in_training=True)
    told = escalations_since(session, before, "risk", mersey.id)[("risk", mersey.id)]
    assert told == f"wrote to Acute Specialised Commissioning Team {_holder(session, services[MHM], 'asct')}"

    _fire(session, mersey.id, "send_formal_notification", RL, date(2026, 12, 18))  # type: ignore[arg-type]
    first = _fire(session, mersey.id, "response_inadequate", NM, date(2027, 1, 14))  # type: ignore[arg-type]
    assert (
        first is not None
        and first.startswith("wrote to Chief Executive ")
        and "(Mersey Harbour Hospitals NHS Trust)" in first
    )
    second = _fire(session, mersey.id, "response_inadequate", RL, date(2027, 1, 26))  # type: ignore[arg-type]
    assert second == "wrote to " + "; ".join(
        [
            f"Commissioning Lead {_holder(session, services[MHM], 'commissioning-lead')}",
            f"Care Quality Commission {_holder(session, services[MHM], 'cqc')}",
            f"Training Programme Director {_holder(session, services[MHM], 'tpd')}",
            f"Regional Advisor {_holder(session, services[MHM], 'ra')}",
        ]
    )

    # Severnside: never answered; the chase sweep escalates it, and the demo's sweep line says to whom.
    severn = raise_risk("SC", service=STU, visit=date(2026, 12, 10))
    _fire(session, severn.id, "send_formal_notification", NM, date(2026, 12, 17))  # type: ignore[arg-type]
    lines: dict[tuple[str, int], str] = {}
    day = date(2027, 1, 4)
    while day <= date(2027, 2, 26) and ("risk", severn.id) not in lines:
        if day.weekday() < 5:
            before = last_letter_id(session)
            run_sweep(db, FixedClock(day))
            session.commit()
            lines.update(escalations_since(session, before))
        day = date.fromordinal(day.toordinal() + 1)
    session.refresh(severn)
    assert severn.state == "escalated"
    assert lines[("risk", severn.id)] == "wrote to " + "; ".join(
        [
            f"Commissioning Lead {_holder(session, services[STU], 'commissioning-lead')}",
            f"Care Quality Commission {_holder(session, services[STU], 'cqc')}",
        ]
    )


def test_a_role_nobody_holds_is_named_as_missing(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    svc = session.get(Service, services[STU])
    assert svc is not None
    for c in session.exec(select(Contact).where(Contact.role == "cqc", Contact.network_id == svc.network_id)):
        session.delete(c)
    session.commit()
    sc = raise_risk("SC", service=STU)
    _fire(session, sc.id, "send_formal_notification", NM, date(2026, 12, 18))  # type: ignore[arg-type]
    _fire(session, sc.id, "response_inadequate", NM, date(2027, 1, 4))  # type: ignore[arg-type]
    told = _fire(session, sc.id, "response_inadequate", NM, date(2027, 1, 20))  # type: ignore[arg-type]
    assert (
        told is not None and "Commissioning Lead" in told and "no Care Quality Commission on file (an incident)" in told
    )
