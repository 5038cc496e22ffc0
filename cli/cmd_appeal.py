"""``peerwatch appeal``: appeals against a published report (000 s8.1); show, list, fire and history
are the generic ones."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print
from states.errors import InvalidInput
from states.services.appeal import submit
from states.services.items import deadline_json

NAME = "appeal"
app = typer.Typer(help="Appeals against a published report.", no_args_is_help=True)


def _grounds(grounds: list[str]) -> list[dict[str, Any]]:
    """``risk:ID`` and ``compliance`` as the appeal's grounds."""
    parsed: list[dict[str, Any]] = []
    for g in grounds:
        if g == "compliance":
            parsed.append({"compliance": True})
        elif g.startswith("risk:") and g[5:].isdigit():
            parsed.append({"risk_id": int(g[5:])})
        else:
            raise InvalidInput(f"--grounds {g!r}: use risk:ID or compliance")
    return parsed


@app.command("submit")
def appeal_submit(
    ctx: typer.Context,
    report: Annotated[int, typer.Option(help="The published report appealed against.")],
    appellant: Annotated[int, typer.Option(help="Contact id of the appellant (must be the Trust's Chief Executive).")],
    statement: Annotated[str, typer.Option(help="The appeal statement.")],
    grounds: Annotated[list[str], typer.Option(help="risk:ID (an IR or SC in the report) or compliance (repeatable).")],
    role: ROLE = None,
) -> None:
    """Record an appeal; a refusal is recorded with its reason and a letter to the appellant, nothing else."""
    run = of(ctx)
    parsed = _grounds(grounds)
    db = run.db()
    with Session(db) as s:
        who = run.acting(s, role)
    row = submit(
        db,
        report_id=report,
        appellant_contact_id=appellant,
        statement=statement,
        grounds=parsed,
        principal=who.principal,
        clock=who.clock,
    )
    with Session(db) as s:
        run.created("appeal", row.id, state=row.state, deadlines=deadline_json(s, "appeal", row.id))  # type: ignore[arg-type]


@app.command("member")
def appeal_member(
    ctx: typer.Context,
    appeal_id: Annotated[int, typer.Argument(help="appeal id")],
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    role: ROLE = None,
) -> None:
    """Invite someone onto the appeal subgroup (refused if involved in the review)."""
    fire_and_print(
        of(ctx), "appeal", appeal_id, "add_subgroup_member", role=role, note=None, params={"name": name, "email": email}
    )


@app.command("decide")
def appeal_decide(
    ctx: typer.Context,
    appeal_id: Annotated[int, typer.Argument(help="appeal id")],
    outcome: Annotated[str, typer.Option(help="upheld, partly_upheld or not_upheld")],
    note: Annotated[str, typer.Option(help="The decision and its reasons.")],
    role: ROLE = None,
    withdraw: Annotated[list[int] | None, typer.Option(help="Risk id to withdraw (repeatable).")] = None,
    regrade: Annotated[list[str] | None, typer.Option(help="RISK_ID=IR|SC (repeatable).")] = None,
) -> None:
    """Decide an appeal (final); upheld or partly upheld applies its changes and re-issues the report."""
    fire_and_print(
        of(ctx),
        "appeal",
        appeal_id,
        "decide",
        role=role,
        note=note,
        params={"outcome": outcome, "withdraw": list(withdraw or []), "regrade": ",".join(regrade or [])},
    )


add_item_commands(app, NAME)
