"""Where every network is in its programme, and planning a programme year.

``plan_year`` creates a network's phases for a programme year through the engine (once:
phases are unique per network, year and key) and, at the start of a new cycle, links the
open concerns and actions of the previous one into it (``CarryForward`` rows point at the
items; nothing is copied). ``status`` reports each network's programme year, cycle year,
quarter, current phases and what is outstanding, as of a date.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.cycle import CarryForward, Lateness, ProgrammePhase, Submission
from models.tables import Network, Organisation, Risk, Service
from states import engine
from states.clock import Clock, local_date
from states.machines import lateness
from states.principal import Principal
from states.programmes import cycle_year, phases_for, programme_for, programme_year_of, where
from states.roles import STAFF, SYSTEM
from states.views.quarters import local_quarters, placements, quarters_note

OPEN_RISK = (
    "identified",
    "awaiting_response",
    "chased",
    "further_response_requested",
    "escalated",
    "monitoring",
    "work_programme",
)
OPEN_SUBMISSION = ("requested", "more_info_requested", "received")


def plan_year(session: Session, network: Network, year: int, clock: Clock, *, principal: Principal) -> dict[str, int]:
    """Create the network's phases for a programme year and carry open items into a new cycle,
    audited as ``principal`` (the daily flow passes the system principal; ``peerwatch cycle
    plan`` the person, who needs a role that may plan in the network's scope)."""
    prog = programme_for(network.cycle, network.programme)
    assert network.id is not None
    local = local_quarters(session, network.id, prog, year)
    have = set(
        session.exec(
            select(ProgrammePhase.key).where(
                ProgrammePhase.network_id == network.id, ProgrammePhase.programme_year == year
            )
        ).all()
    )
    created = 0
    for p in phases_for(prog, year, local):
        if p.key in have:
            continue
        row = ProgrammePhase(
            network_id=network.id,
            programme=prog.slug,
            programme_year=year,
            cycle_year=p.cycle_year,
            quarter=p.quarter,
            key=p.key,
            title=p.definition.title,
            opens_on=p.opens_on,
            due_on=p.due_on,
            state="new",
        )
        engine.create(
            session,
            "phase",
            row,
            "plan",
            principal=principal,
            clock=clock,
            note=f"{prog.name} {year}-{str(year + 1)[2:]}",
        )
        created += 1
    carried = carry_forward(session, network, year, clock, principal=principal) if cycle_year(prog, year) == 1 else 0
    return {"phases": created, "carried_forward": carried}


def carry_forward(session: Session, network: Network, year: int, clock: Clock, *, principal: Principal) -> int:
    """Link the network's open concerns and action plans into the cycle starting in ``year``
    (each link an audited change, ``carry_forward``, by ``principal``: the system, or a person
    holding a staff role in the network)."""
    assert network.id is not None
    role = SYSTEM if principal.is_system else principal.require_any(STAFF, "carry items forward", _where(network))
    services = list(session.exec(select(Service.id).where(Service.network_id == network.id)).all())
    if not services:
        return 0
    linked = set(
        session.exec(
            select(CarryForward.item_id).where(
                CarryForward.network_id == network.id, CarryForward.cycle_starts == year, CarryForward.kind == "risk"
            )
        ).all()
    )
    start = date(year, 4, 1)
    n = 0
    for risk in session.exec(
        select(Risk).where(
            col(Risk.service_id).in_(services), col(Risk.state).in_(OPEN_RISK), Risk.identified_on < start
        )
    ):
        if risk.id in linked:
            continue
        link = CarryForward(
            network_id=network.id,
            cycle_starts=year,
            kind="risk",
            item_id=risk.id,  # type: ignore[arg-type]
            state_then=risk.state,
            carried_on=local_date(clock.now()),
        )
        session.add(link)
        session.flush()
        assert link.id is not None
        engine.record_change(
            session,
            "carry_forward",
            link.id,
            "carry_forward",
            principal=principal,
            role=role,
            clock=clock,
            state="carried",
            data={
                "network": network.code,
                "cycle_starts": year,
                "kind": "risk",
                "item_id": risk.id,
                "state_then": risk.state,
            },
        )
        n += 1
    return n


def _where(network: Network) -> dict[str, int | None]:
    return {"service_id": None, "organisation_id": None, "network_id": network.id}


def _label(p: ProgrammePhase) -> str:
    return f"{p.title} ({p.quarter})" if ":" in p.key else p.title


def _submission(s: Submission, orgs: dict[Any, str], late: Lateness | None, day: date) -> dict[str, Any]:
    """One submission as status shows it: ``overdue`` while nothing is received after the due
    date; once received, ``late`` with the days late recorded at receipt (never recomputed)."""
    return {
        "id": s.id,
        "organisation_id": s.organisation_id,
        "doc_type": s.doc_type,
        "state": s.state,
        "organisation": orgs.get(s.organisation_id, ""),
        "due_on": s.due_on.isoformat(),
        "overdue": s.due_on < day and s.state in ("requested", "more_info_requested"),
        "received_on": late.received_on.isoformat() if late else None,
        "late": bool(late and late.days_late > 0),
        "days_late": late.days_late if late else None,
        "working_days_late": late.working_days_late if late else None,
    }


def status(session: Session, day: date) -> list[dict[str, Any]]:
    """Every network's position and what is outstanding, as of ``day``."""
    out = []
    year = programme_year_of(day)
    orgs = {o.id: o.name for o in session.exec(select(Organisation))}
    for net in session.exec(select(Network).order_by(Network.id)):  # type: ignore[arg-type]
        prog = programme_for(net.cycle, net.programme)
        assert net.id is not None
        pos = where(prog, day, local_quarters(session, net.id, prog, year))
        phases = list(
            session.exec(
                select(ProgrammePhase)
                .where(ProgrammePhase.network_id == net.id, ProgrammePhase.programme_year == year)
                .order_by(col(ProgrammePhase.opens_on))
            )
        )
        year_subs = list(
            session.exec(
                select(Submission)
                .where(Submission.network_id == net.id, Submission.programme_year == year)
                .order_by(col(Submission.id))
            )
        )
        subs = [x for x in year_subs if x.state in OPEN_SUBMISSION]
        received = lateness.latest(session, "submission", [x.id for x in year_subs])  # type: ignore[misc]
        carried = session.exec(
            select(CarryForward).where(
                CarryForward.network_id == net.id, CarryForward.cycle_starts == year - cycle_year(prog, year) + 1
            )
        ).all()
        out.append(
            {
                "network": net.code,
                "name": net.name,
                "cycle": net.cycle,
                **pos,
                "quarters": quarters_note(prog),
                "placements": placements(session, net, year),
                "planned": bool(phases),
                "open_phases": [_label(p) for p in phases if p.state == "open"],
                "overdue_phases": [
                    _label(p) for p in phases if p.state == "overdue" or (p.state == "open" and p.due_on < day)
                ],
                "outstanding_submissions": [_submission(s, orgs, received.get(s.id), day) for s in subs],  # type: ignore[arg-type]
                "late_submissions": [
                    _submission(s, orgs, received[s.id], day)
                    for s in year_subs
                    if s.id in received and received[s.id].days_late > 0
                ],
                "carried_forward": [f"{c.kind} {c.item_id} ({c.state_then})" for c in carried],
            }
        )
    return out
