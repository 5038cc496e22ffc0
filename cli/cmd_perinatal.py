"""``peerwatch perinatal``: perinatal quality concerns on the escalation ladder (seed 004).

``escalate``, ``deescalate``, ``record_board_review``, ``refer_to_jsog``, ``request_cqc_inspection``
and ``close`` are fired with the generic ``peerwatch perinatal fire ID TRIGGER``; ``show``,
``list`` and ``history`` are the generic ones too.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

NAME = "perinatal"
app = typer.Typer(help="Perinatal quality surveillance: concerns about maternity and neonatal services, "
                       "escalated provider -> LMS/ICS -> regional -> national.", no_args_is_help=True)


@app.command("raise")
def raise_concern(
    service: Annotated[int, typer.Option(help="Service id of a maternity or neonatal service.")],
    title: Annotated[str, typer.Option(help="What the concern is.")],
    actor: Annotated[str, typer.Option(help="Who is recording it.")] = "",
    role: Annotated[str, typer.Option(help="Actor role: network-office, network-manager, regional-lead, operator.")] = "network-manager",
    source: Annotated[Optional[str], typer.Option(help="The intelligence behind it: dashboard, HSIB, CQC, survey, ...")] = None,
    raised: Annotated[Optional[str], typer.Option(help="Date raised (default today).")] = None,
    note: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Raise a concern at the provider (trust board) level; opens the monthly board review."""
    from cli.main import _created, _db, _deadline_json, clock
    from models import Service, session_scope
    from models.perinatal import PerinatalConcern
    from states import engine
    from states.clock import local_date, parse_date
    from states.errors import InvalidInput, NotFound
    from states.perinatal import PerinatalPolicy

    c = clock()
    day = parse_date(raised, "--raised date") if raised else local_date(c.now())
    _db()
    with session_scope() as s:
        svc = s.get(Service, service)
        if svc is None:
            raise NotFound(f"service {service} not found (peerwatch service list)")
        kinds = PerinatalPolicy.from_env().service_kinds
        if not any(k in svc.kind.lower() for k in kinds):
            raise InvalidInput(f"service {service} ({svc.name}) is a {svc.kind} service: a perinatal concern is about a "
                               f"service whose kind names one of {', '.join(kinds)}")
        row = PerinatalConcern(service_id=service, title=title, raised_on=day, source=source, state="new")
        out = engine.create(s, "perinatal", row, "raise", actor=actor, role=role, clock=c, note=note)
        _created("perinatal concern", out.row.id, state=out.row.state, deadlines=_deadline_json(s, "perinatal", out.row.id))


@app.command("board-review")
def board_review(
    item_id: Annotated[int, typer.Argument(help="perinatal concern id")],
    actor: Annotated[str, typer.Option(help="Who is recording it.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-office",
    reviewed_on: Annotated[Optional[str], typer.Option(help="Date of the board meeting (default today).")] = None,
    note: Annotated[Optional[str], typer.Option(help="e.g. the board paper reference.")] = None,
) -> None:
    """Record the trust board's monthly review; opens next month's."""
    from cli.main import _fire_and_print

    _fire_and_print("perinatal", item_id, "record_board_review", actor, role, note,
                    {"reviewed_on": reviewed_on} if reviewed_on else {})


@app.command("levels")
def levels() -> None:
    """The escalation levels as configured (PEERWATCH_PERINATAL_LEVELS / _FORUMS) and the seed's actions."""
    from cli.main import OPTS
    from cli.output import console, print_json
    from states.perinatal import levels_context

    data = levels_context()
    if OPTS.json:
        print_json(data)
        return
    for key, lv in data.items():
        console.print(f"[bold]{lv['name']}[/bold] ({key}): {lv['forum']}")
        for a in lv["actions"]:
            console.print(f"  - {a}", markup=False)


@app.command("diagram")
def diagram() -> None:
    """The ladder as a Mermaid state diagram, levels labelled with their configured names."""
    from states.perinatal import mermaid

    sys.stdout.write(mermaid())
