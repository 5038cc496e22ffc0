"""Where each step of a network's annual programme sits: its quarter in a year, and where that
comes from (the programme's default, a seed that fixes it, or the network's own move, which is
local policy: ``states/services/cycle_quarters.py``). Read-only.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.cycle import PhaseQuarter
from models.tables import Network
from states.clock import local_date
from states.programmes import Programme, programme_for


def local_quarters(session: Session, network_id: int, prog: Programme, year: int) -> dict[str, str]:
    """The network's own quarter for each moved step, as it applies to programme ``year``."""
    if not prog.quarters_are_local_policy:
        return {}
    rows = session.exec(
        select(PhaseQuarter)
        .where(
            PhaseQuarter.network_id == network_id,
            PhaseQuarter.programme == prog.slug,
            col(PhaseQuarter.from_year) <= year,
        )
        .order_by(col(PhaseQuarter.from_year), col(PhaseQuarter.id))
    ).all()
    return {r.key: r.quarter for r in rows}  # later from_year (and later rows) win


def placements(session: Session, network: Network, year: int) -> list[dict[str, Any]]:
    """Each step of the network's programme: its quarter in ``year`` and where that comes from."""
    prog = programme_for(network.cycle, network.programme)
    moved = (
        {
            r.key: r
            for r in session.exec(
                select(PhaseQuarter)
                .where(
                    PhaseQuarter.network_id == network.id,
                    PhaseQuarter.programme == prog.slug,
                    col(PhaseQuarter.from_year) <= year,
                )
                .order_by(col(PhaseQuarter.from_year), col(PhaseQuarter.id))
            )
        }
        if prog.quarters_are_local_policy
        else {}
    )
    out = []
    for p in prog.phases:
        m = moved.get(p.key)
        if m is not None:
            source = (
                f"local policy: set by {m.set_by} on {local_date(m.set_at).isoformat()} from "
                f"{m.from_year}-{str(m.from_year + 1)[2:]} (programme file default {p.quarter})"
            )
        elif prog.quarters_are_local_policy:
            source = "local policy default (the SOP sets no quarter)"
        else:
            source = prog.quarters_source
        out.append(
            {
                "step": p.key,
                "title": p.title,
                "quarter": m.quarter if m else p.quarter,
                "source": source,
                "editable": prog.quarters_are_local_policy and p.quarter != "every",
            }
        )
    return out


def quarters_note(prog: Programme) -> str:
    """What the quarters shown are, for status output and artifacts."""
    if prog.quarters_are_local_policy:
        return "quarters are local policy (the SOP sets none); the network may move a step: peerwatch cycle set-quarter"
    return f"quarters set by {prog.quarters_source}"
