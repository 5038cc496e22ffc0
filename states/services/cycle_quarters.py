"""A network's own quarters for the steps of its annual programme (local policy).

The West Midlands SOP (000 s5) fixes no quarter for its annual steps (DOMAIN.md "Programme
cycles"): the quarters in ``states/programmes/wm-annual.yaml`` are local policy defaults, and a
network may move a step (``set_phase_quarter``). Where each step sits, as read:
``states/views/quarters.py``. A programme whose quarters a seed fixes
(Cheshire & Mersey, 001) may not be moved.

A move applies from a programme year on (default: the current one) and is kept as a
``PhaseQuarter`` row (history: a later move is a new row). Every planned phase of that step
still ``pending`` in that year or after is rescheduled through the engine (``set_quarter`` on
the phase: new dates, the opening deadline replaced, audited with who moved it); a year not yet
planned is planned first, so the move is always audited on the phase it moves. A phase already
open, overdue or complete in the first year is refused: move it from next year.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from models.cycle import PhaseQuarter, ProgrammePhase
from models.tables import Network
from states import engine
from states.clock import Clock, local_date
from states.errors import InvalidInput
from states.principal import Principal
from states.programmes import QUARTERS, phases_for, programme_for, programme_year_of
from states.roles import NETWORK_LEADS, OPERATOR
from states.services.cycle import plan_year

MOVERS = sorted({*NETWORK_LEADS, OPERATOR})


@dataclass
class QuarterSet:
    row: PhaseQuarter
    rescheduled: list[ProgrammePhase]
    planned: int


def set_phase_quarter(
    session: Session,
    network: Network,
    step: str,
    quarter: str,
    *,
    principal: Principal,
    clock: Clock,
    from_year: int | None = None,
    note: str | None = None,
) -> QuarterSet:
    """Move a step of the network's programme to ``quarter`` from ``from_year`` on; the caller commits.

    ``principal`` needs one of ``MOVERS`` in the network's scope; the phases it plans and
    reschedules are fired in that same role."""
    assert network.id is not None
    where = {"service_id": None, "organisation_id": None, "network_id": network.id}
    role = principal.require_any(MOVERS, f"move a programme step of {network.code}", where)
    acting = principal.acting_as(role)
    prog = programme_for(network.cycle, network.programme)
    if not prog.quarters_are_local_policy:
        raise InvalidInput(
            f"{prog.name}: its quarters are set by {prog.quarters_source}, not local policy: a step cannot be moved"
        )
    q = quarter.strip().upper()
    if q not in QUARTERS:
        raise InvalidInput(f"quarter {quarter!r}: use one of {', '.join(QUARTERS)}")
    definition = next((p for p in prog.phases if p.key == step), None)
    if definition is None:
        raise InvalidInput(
            f"step {step!r} is not in {prog.name}: the steps are {', '.join(p.key for p in prog.phases)}"
        )
    if definition.quarter == "every":
        raise InvalidInput(f"step {step!r} happens every quarter: it has no quarter to move")
    today = local_date(clock.now())
    current = programme_year_of(today)
    year = current if from_year is None else from_year
    if year < current:
        raise InvalidInput(
            f"from year {year}-{str(year + 1)[2:]} has passed: move a step from the current programme year "
            f"({current}-{str(current + 1)[2:]}) or a later one"
        )
    end = next(p.due_on for p in phases_for(prog, year, {step: q}) if p.key == step)
    if end < today:
        raise InvalidInput(
            f"{q} of {year}-{str(year + 1)[2:]} ended on {end.isoformat()}: choose a quarter not yet over, "
            f"or move the step from next year (from year {year + 1})"
        )
    existing = session.exec(
        select(ProgrammePhase).where(
            ProgrammePhase.network_id == network.id, ProgrammePhase.key == step, ProgrammePhase.programme_year == year
        )
    ).first()
    if existing is not None and existing.state not in ("new", "pending"):
        raise InvalidInput(
            f"{definition.title} of {year}-{str(year + 1)[2:]} is already {existing.state}: move it from next "
            f"year (from year {year + 1})"
        )
    row = session.exec(
        select(PhaseQuarter).where(
            PhaseQuarter.network_id == network.id,
            PhaseQuarter.programme == prog.slug,
            PhaseQuarter.key == step,
            PhaseQuarter.from_year == year,
        )
    ).first()
    was = row.quarter if row is not None else None
    if row is None:
        row = PhaseQuarter(
            network_id=network.id,
            programme=prog.slug,
            key=step,
            quarter=q,
            from_year=year,
            set_by=principal.name,
            set_role=role,
            set_at=clock.now(),
            note=note,
        )
    else:
        row.quarter, row.set_by, row.set_role, row.set_at, row.note = q, principal.name, role, clock.now(), note
    session.add(row)
    session.flush()
    assert row.id is not None
    engine.record_change(
        session,
        "phase_quarter",
        row.id,
        "set_quarter",
        principal=principal,
        role=role,
        clock=clock,
        from_state=was,
        state=q,
        note=note,
        data={"network": network.code, "programme": prog.slug, "step": step, "from_year": year},
    )
    planned = 0 if existing is not None else plan_year(session, network, year, clock, principal=acting)["phases"]
    # every pending phase of the step from that year on whose quarter this row now sets
    later = session.exec(
        select(PhaseQuarter.from_year).where(
            PhaseQuarter.network_id == network.id,
            PhaseQuarter.programme == prog.slug,
            PhaseQuarter.key == step,
            col(PhaseQuarter.from_year) > year,
        )
    ).all()
    until = min(later, default=None)
    q_rows = select(ProgrammePhase).where(
        ProgrammePhase.network_id == network.id,
        ProgrammePhase.key == step,
        col(ProgrammePhase.programme_year) >= year,
        ProgrammePhase.state == "pending",
    )
    if until is not None:
        q_rows = q_rows.where(col(ProgrammePhase.programme_year) < until)
    moved = []
    for phase in session.exec(q_rows.order_by(col(ProgrammePhase.programme_year))).all():
        dates = next(p for p in phases_for(prog, phase.programme_year, {step: q}) if p.key == step)
        assert phase.id is not None
        engine.fire(
            session,
            "phase",
            phase.id,
            "set_quarter",
            principal=acting,
            clock=clock,
            note=note,
            params={
                "quarter": q,
                "opens_on": dates.opens_on.isoformat(),
                "due_on": dates.due_on.isoformat(),
                "from_year": year,
                "local_policy": True,
            },
        )
        moved.append(phase)
    return QuarterSet(row=row, rescheduled=moved, planned=planned)
