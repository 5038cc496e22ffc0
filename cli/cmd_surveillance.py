"""``peerwatch surveillance``: QNT surveillance decisions after the annual self-report (002 s1.1.1).

Options are proposed with the generic fire command (or ``propose``), e.g.
``peerwatch surveillance fire 3 propose_options --param options=routine,enhanced
--param provider_action="monthly audit"`` (``--role network-manager`` to choose among your roles).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print
from cli.output import console, print_json
from models import session_scope
from states.services.agreements import record_agreement
from states.services.intake import assess_surveillance
from states.services.items import deadline_json

NAME = "surveillance"
app = typer.Typer(
    help="QNT surveillance decisions: indicators, options 1-3, provider and commissioner agreement.",
    no_args_is_help=True,
)


@app.command("assess")
def assess(
    ctx: typer.Context,
    service: Annotated[int, typer.Option(help="Service id.")],
    year: Annotated[int, typer.Option(help="Programme year it starts (1 April), e.g. 2026 for 2026-27.")],
    agreed: Annotated[int, typer.Option(help="Quality indicators previously agreed for the service.")],
    met: Annotated[int, typer.Option(help="Quality indicators met in the self-report.")],
    good_practice: Annotated[
        float | None, typer.Option("--good-practice", help="Good-practice compliance score.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="The service's good-practice compliance threshold.")] = None,
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record the annual self-report: 100% and threshold met -> not required, else a decision is required."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = assess_surveillance(
            s,
            service=service,
            year=year,
            agreed=agreed,
            met=met,
            good_practice=good_practice,
            threshold=threshold,
            principal=who.principal,
            clock=who.clock,
            note=note,
        )
        run.created(
            "surveillance",
            out.row.id,
            state=out.row.state,
            deadlines=deadline_json(s, "surveillance", out.row.id),  # type: ignore[arg-type]
        )


@app.command("propose")
def propose(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="surveillance id")],
    options: Annotated[
        str, typer.Option(help="Combinable: routine (1), enhanced (2), peer_review (3), e.g. routine,enhanced.")
    ],
    provider_action: Annotated[str | None, typer.Option(help="Option 2: the provider's action.")] = None,
    commissioner_action: Annotated[str | None, typer.Option(help="Option 2: the commissioner's action.")] = None,
    role: ROLE = None,
) -> None:
    """Propose surveillance options (same as fire ID propose_options --param ...)."""
    run = of(ctx)
    params: dict[str, Any] = {"options": options}
    if provider_action:
        params["provider_action"] = provider_action
    if commissioner_action:
        params["commissioner_action"] = commissioner_action
    fire_and_print(run, "surveillance", item_id, "propose_options", role=role, note=None, params=params)


@app.command("agree")
def agree(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="surveillance id")],
    party: Annotated[str, typer.Option(help="provider or commissioner")],
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record one party's agreement; once both are in (two different people) the decision is agreed."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = record_agreement(s, item_id, party, principal=who.principal, clock=who.clock, note=note)
        row = out.row
        result = {
            "id": item_id,
            "kind": "surveillance",
            "party": party,
            "state": row.state,
            "version": row.version,
            "visit_id": row.visit_id,
            "letters_queued": out.letters_queued,
            "waiting_for": out.waiting_for,
            "deadlines": deadline_json(s, "surveillance", item_id),
            "recorded_by": who.principal.name,
        }
    if run.json:
        print_json(result)
        return
    console.print(
        f"surveillance {item_id}: {party} agreement recorded by {result['recorded_by']}; now {result['state']} "
        f"(version {result['version']}), {result['letters_queued']} letter(s) queued",
        markup=False,
    )
    if result["waiting_for"]:
        console.print(f"  waiting for: {', '.join(result['waiting_for'])}")
    if result["visit_id"]:
        console.print(f"  peer review visit {result['visit_id']} proposed (option 3)")


add_item_commands(app, NAME)
