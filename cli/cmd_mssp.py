"""``peerwatch mssp``: refer a Trust to the MSSCG and record the MSSCG's decisions (seed 004).

Entry is automatic only from a CQC assessment meeting a rating criterion (``peerwatch cqc
record``); the other routes refer the Trust (``refer``, or the flags of ``cqc record``); the
MSSCG decides entry and exit, and ``decide`` records what it decided. ``show``, ``list``,
``history`` and ``fire`` are the generic ones.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print
from cli.output import console, print_json
from models import session_scope
from states.machines.mssp import CRITERIA, decision_trigger
from states.services.maternity import maternity_service_of
from states.services.mssp import refer_trust
from states.views.directory import organisation_by_name

NAME = "mssp"
app = typer.Typer(
    help="Maternity Safety Support Programme: referrals to the MSSCG and its decisions.", no_args_is_help=True
)


@app.command("refer")
def refer(
    ctx: typer.Context,
    organisation: Annotated[str, typer.Option(help="Trust name.")],
    route: Annotated[
        list[str], typer.Option(help="warning-notice, review-request (DHSC/NHSE) or hsib; repeat for several.")
    ],
    service: Annotated[
        int | None, typer.Option(help="Maternity service id (default: the Trust's one maternity service, if any).")
    ] = None,
    role: ROLE = None,
    note: Annotated[str | None, typer.Option(help="e.g. the HSIB letter or the DHSC request it comes from.")] = None,
) -> None:
    """Refer a Trust to the MSSCG for a decision on entry (no CQC assessment needed)."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        org = organisation_by_name(s, organisation)
        svc = maternity_service_of(s, org, service)
        who = run.acting(s, role)
        case = refer_trust(
            s,
            org.id,  # type: ignore[arg-type]
            svc.id if svc else None,
            route,
            principal=who.principal,
            clock=who.clock,
            note=note,
        )
        result: dict[str, Any] = {
            "id": case.id,
            "state": case.state,
            "organisation": org.name,
            "routes": case.entry_criteria,
            "referred_on": case.referred_on,
        }
    if run.json:
        print_json(result)
        return
    console.print(
        f"MSSP case {result['id']}: {org.name} referred to the MSSCG for a decision on entry, for:", markup=False
    )
    for c in result["routes"]:
        console.print(f"  - {CRITERIA[c]}", markup=False)


@app.command("decide")
def decide(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="MSSP case id")],
    decision: Annotated[
        str, typer.Option(help="On a referred case: enter or not-enter. On a proposed exit: exit or remain.")
    ],
    decided_by: Annotated[
        str, typer.Option(help="Who decided for the MSSCG, e.g. 'MSSCG co-chairs, meeting of 10 Dec'.")
    ],
    decided_on: Annotated[str, typer.Option(help="Date the MSSCG decided (YYYY-MM-DD).")],
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record the MSSCG's decision on entry (referred case) or exit (proposed exit)."""
    run = of(ctx)
    with Session(run.db()) as s:
        trigger = decision_trigger(s, item_id)
    params = {"decision": decision, "decided_by": decided_by, "decided_on": decided_on}
    if trigger == "decide_entry":
        fire_and_print(run, "mssp", item_id, "decide_entry", role=role, note=note, params=params)
    else:
        fire_and_print(run, "mssp", item_id, "decide_exit", role=role, note=note, params=params)


add_item_commands(app, NAME)
