"""``peerwatch perinatal``: perinatal quality concerns on the escalation ladder (seed 004).

``deescalate``, ``record_board_review`` and ``close`` are fired with the generic ``peerwatch perinatal fire ID
TRIGGER``. ``escalate``, ``refer`` (JSOG, CQC inspection) and ``forum-decision`` record what the
receiving forum decided (the office records, the forum decides); ``show``, ``list`` and ``history`` are the generic ones.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.diagram import documented
from cli.items import add_item_commands, fire_and_print
from cli.output import console, print_json
from models import session_scope
from states.clock import local_date, parse_date
from states.errors import InvalidInput
from states.machines.perinatal import levels_context
from states.services.intake import raise_perinatal_concern
from states.services.items import deadline_json, forum_decisions

NAME = "perinatal"
app = typer.Typer(
    help="Perinatal quality surveillance: concerns about maternity and neonatal services, "
    "escalated provider -> LMS/ICS -> regional -> national.",
    no_args_is_help=True,
)


@app.command("raise")
def raise_concern(
    ctx: typer.Context,
    service: Annotated[int, typer.Option(help="Service id of a maternity or neonatal service.")],
    title: Annotated[str, typer.Option(help="What the concern is.")],
    role: ROLE = None,
    source: Annotated[
        str | None, typer.Option(help="The intelligence behind it: dashboard, HSIB, CQC, survey, ...")
    ] = None,
    raised: Annotated[str | None, typer.Option(help="Date raised (default today).")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Raise a concern at the provider (trust board) level; opens the monthly board review."""
    run = of(ctx)
    day = parse_date(raised, "--raised date") if raised else None
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = raise_perinatal_concern(
            s,
            service=service,
            title=title,
            raised=day or local_date(who.clock.now()),
            source=source,
            principal=who.principal,
            clock=who.clock,
            note=note,
        )
        run.created(
            "perinatal concern",
            out.row.id,
            state=out.row.state,
            deadlines=deadline_json(s, "perinatal", out.row.id),  # type: ignore[arg-type]
        )


@app.command("board-review")
def board_review(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="perinatal concern id")],
    role: ROLE = None,
    reviewed_on: Annotated[str | None, typer.Option(help="Date of the board meeting (default today).")] = None,
    note: Annotated[str | None, typer.Option(help="e.g. the board paper reference.")] = None,
) -> None:
    """Record the trust board's monthly review; opens next month's."""
    run = of(ctx)
    fire_and_print(
        run,
        "perinatal",
        item_id,
        "record_board_review",
        role=role,
        note=note,
        params={"reviewed_on": reviewed_on} if reviewed_on else {},
    )


@app.command("levels")
def levels(ctx: typer.Context) -> None:
    """The escalation levels as configured (PEERWATCH_PERINATAL_LEVELS / _FORUMS) and the seed's actions."""
    run = of(ctx)
    data = levels_context()
    if run.json:
        print_json(data)
        return
    for key, lv in data.items():
        console.print(f"[bold]{lv['name']}[/bold] ({key}): {lv['forum']}")
        for a in lv["actions"]:
            console.print(f"  - {a}", markup=False)


@app.command("diagram")
def diagram() -> None:
    """The ladder as a Mermaid state diagram, levels labelled with their configured names."""
    sys.stdout.write(documented("perinatal"))


@app.command("escalate")
def escalate(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="perinatal concern id")],
    decided_on: Annotated[str, typer.Option(help="Date the receiving forum decided to take the concern (YYYY-MM-DD).")],
    note: Annotated[str, typer.Option(help="The reason, as the forum gave it.")],
    agreed_with: Annotated[
        str | None, typer.Option(help="At regional level: the regional chief nurse the committee decided with.")
    ] = None,
    role: ROLE = None,
) -> None:
    """Record the receiving forum's decision to take the concern one level up (LMS/ICS group, regional committee, MSSCG)."""
    run = of(ctx)
    fire_and_print(
        run,
        "perinatal",
        item_id,
        "escalate",
        role=role,
        note=note,
        params={"decided_on": decided_on, **({"agreed_with": agreed_with} if agreed_with else {})},
    )


@app.command("refer")
def refer(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="perinatal concern id")],
    to: Annotated[str, typer.Option(help="jsog or cqc-inspection (unannounced).")],
    decided_on: Annotated[str, typer.Option(help="Date the regional quality committee decided (YYYY-MM-DD).")],
    agreed_with: Annotated[str, typer.Option(help="The regional chief nurse the committee decided with.")],
    note: Annotated[str, typer.Option(help="The committee's reasons.")],
    role: ROLE = None,
) -> None:
    """Record the regional quality committee's decision to refer to JSOG or request an unannounced CQC inspection."""
    run = of(ctx)
    params = {"decided_on": decided_on, "agreed_with": agreed_with}
    key = to.strip().lower().replace("_", "-")
    if key == "jsog":
        fire_and_print(run, "perinatal", item_id, "refer_to_jsog", role=role, note=note, params=params)
    elif key == "cqc-inspection":
        fire_and_print(run, "perinatal", item_id, "request_cqc_inspection", role=role, note=note, params=params)
    else:
        raise InvalidInput(f"--to {to!r}: use jsog or cqc-inspection")


@app.command("forum-decision")
def forum_decision(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="perinatal concern id")],
    forum: Annotated[str, typer.Option(help="The level whose forum decided: lms_ics, regional or national.")],
    decision: Annotated[str, typer.Option(help="What it decided, e.g. 'not to escalate: LMS support suffices'.")],
    decided_on: Annotated[str, typer.Option(help="Date it decided (YYYY-MM-DD).")],
    agreed_with: Annotated[str | None, typer.Option(help="At regional level: the regional chief nurse.")] = None,
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record a forum's decision that moves nothing (e.g. not to escalate)."""
    run = of(ctx)
    fire_and_print(
        run,
        "perinatal",
        item_id,
        "record_forum_decision",
        role=role,
        note=note,
        params={
            "forum": forum,
            "decision": decision,
            "decided_on": decided_on,
            **({"agreed_with": agreed_with} if agreed_with else {}),
        },
    )


@app.command("decisions")
def decisions(ctx: typer.Context, item_id: Annotated[int, typer.Argument(help="perinatal concern id")]) -> None:
    """What each forum decided about the concern, and who recorded it."""
    run = of(ctx)
    with Session(run.db()) as s:
        data = forum_decisions(s, item_id)
    if run.json:
        print_json(data)
        return
    run.rows(
        f"forum decisions on perinatal concern {item_id}",
        ["decided on", "forum", "decision", "agreed with", "recorded by", "on"],
        [
            (
                d["decided_on"],
                d["forum"],
                d["decision"],
                d.get("agreed_with") or "-",
                d["recorded_by"],
                d["recorded_on"],
            )
            for d in data
        ],
    )


add_item_commands(app, NAME)
