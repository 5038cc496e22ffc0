"""``peerwatch reviewer``: the pool of reviewers who can sit on panels."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.output import console, print_json, table
from models import session_scope
from states.clock import local_date, parse_date, show
from states.services.contacts import describe, edit_reviewer, retire_reviewer, reviewer_history
from states.services.operator import add_reviewer
from states.views.directory import reviewers

NAME = "reviewer"
app = typer.Typer(help="Reviewers who can sit on panels.", no_args_is_help=True)


@app.command("add")
def reviewer_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    discipline: Annotated[str, typer.Option(help="clinician, nurse, ahp, management, commissioning, service_user")],
    organisation: Annotated[str | None, typer.Option(help="Trust the reviewer works for.")] = None,
    network: Annotated[str | None, typer.Option(help="The reviewer's home network code.")] = None,
    pathway: Annotated[
        list[str] | None, typer.Option(help="A shared pathway the reviewer works in (repeatable).")
    ] = None,
    trained: Annotated[bool, typer.Option("--trained", help="Has had reviewer training.")] = False,
    role: ROLE = None,
) -> None:
    """Add a reviewer to the pool (audited)."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        r = add_reviewer(
            s,
            name=name,
            email=email,
            discipline=discipline,
            organisation=organisation,
            network=network,
            pathways=list(pathway or []),
            trained=trained,
            principal=who.principal,
            clock=who.clock,
        )
        run.created("reviewer", r.id)


@app.command("list")
def reviewer_list(ctx: typer.Context) -> None:
    """List reviewers."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = [
            (r.id, r.name, r.discipline, r.organisation_id, r.network_id, ", ".join(r.pathways), r.trained)
            for r in reviewers(s)
        ]
    run.rows("reviewers", ["id", "name", "discipline", "organisation", "network", "pathways", "trained"], rows)


@app.command("edit")
def reviewer_edit(
    ctx: typer.Context,
    reviewer_id: Annotated[int, typer.Argument(help="reviewer id")],
    effective: Annotated[
        str | None, typer.Option("--from", help="Date of the change (default today; not in the future).")
    ] = None,
    name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    discipline: Annotated[str | None, typer.Option()] = None,
    trained: Annotated[bool | None, typer.Option("--trained/--untrained", help="Has had reviewer training.")] = None,
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change a reviewer's details (audited, with what it was)."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        day = parse_date(effective, "--from date") if effective else local_date(who.clock.now())
        edit_reviewer(
            s,
            reviewer_id,
            changes={"name": name, "email": email, "discipline": discipline, "trained": trained},
            effective=day,
            principal=who.principal,
            clock=who.clock,
            note=note,
        )
    print_json({"id": reviewer_id, "changed_from": day.isoformat()}) if run.json else console.print(
        f"reviewer {reviewer_id} changed"
    )


@app.command("retire")
def reviewer_retire(
    ctx: typer.Context,
    reviewer_id: Annotated[int, typer.Argument(help="reviewer id")],
    effective: Annotated[str, typer.Option("--from", help="Not invited onto panels from this date (YYYY-MM-DD).")],
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Retire a reviewer from the pool from a date (audited)."""
    run = of(ctx)
    day = parse_date(effective, "--from date")
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        retire_reviewer(s, reviewer_id, effective=day, principal=who.principal, clock=who.clock, note=note)
    data = {"id": reviewer_id, "retired_from": day.isoformat()}
    print_json(data) if run.json else console.print(f"reviewer {reviewer_id} retired from {day.isoformat()}")


@app.command("history")
def reviewer_history_cmd(ctx: typer.Context, reviewer_id: Annotated[int, typer.Argument(help="reviewer id")]) -> None:
    """Every audited change to a reviewer: who, when, what it was and became."""
    run = of(ctx)
    with Session(run.db()) as s:
        r, events = reviewer_history(s, reviewer_id)
        changes: list[dict[str, Any]] = [
            {"at": e.at, "change": e.trigger, "actor": e.actor, "role": e.role, "note": e.note, "data": e.data}
            for e in events
        ]
    if run.json:
        print_json({"reviewer": reviewer_id, "name": r.name, "retired_on": r.retired_on, "changes": changes})
        return
    table(
        f"reviewer {reviewer_id}: {r.name}" + (f" (retired from {r.retired_on.isoformat()})" if r.retired_on else ""),
        ["when", "change", "who", "role", "what"],
        [(show(c["at"]), c["change"], c["actor"], c["role"], describe(c["data"])) for c in changes],
    )
