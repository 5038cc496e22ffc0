"""``peerwatch visit``: peer review visits, their panels and the visit day (000 s5.2-5.3); show,
list, fire and history are the generic ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print
from cli.output import console, print_json, table
from models import session_scope
from states.services.intake import propose_visit
from states.services.visit_day import visit_day
from states.views.weighting import candidates

NAME = "visit"
app = typer.Typer(help="Peer review visits, panels and the visit day.", no_args_is_help=True)


@app.command("propose")
def visit_propose(
    ctx: typer.Context,
    service: Annotated[int, typer.Option(help="Service id.")],
    role: ROLE = None,
    reason: Annotated[str | None, typer.Option(help="Why: weighting score, validated self-assessment, ...")] = None,
) -> None:
    """Propose a visit to a service."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = propose_visit(s, service, principal=who.principal, clock=who.clock, reason=reason)
        run.created("visit", out.row.id, state=out.row.state)


@app.command("candidates")
def visit_candidates(
    ctx: typer.Context, network: Annotated[str, typer.Option(help="Network code, e.g. WMTN.")]
) -> None:
    """Services ranked by the visit weighting score (docs/visits.md)."""
    run = of(ctx)
    with Session(run.db()) as s:
        ranked = candidates(s, network, run.today())
    if run.json:
        print_json(ranked)
        return
    table(
        f"visit candidates, {network}",
        ["rank", "service", "trust", "score", "last visit", "open IR/SC/GC", "max score", "in progress"],
        [
            (
                n,
                c["service"],
                c["trust"],
                c["score"],
                c["last_visit"] or "never",
                f"{c['open_ir']}/{c['open_sc']}/{c['open_gc']}",
                c["max_risk_score"],
                "yes" if c["visit_in_progress"] else "",
            )
            for n, c in enumerate(ranked, start=1)
        ],
    )


@app.command("panel-add")
def visit_panel_add(
    ctx: typer.Context,
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    reviewer: Annotated[int, typer.Option(help="Reviewer id.")],
    role: ROLE = None,
    observer: Annotated[bool, typer.Option("--observer", help="Attends as an observer.")] = False,
) -> None:
    """Invite a reviewer onto the panel (refused, with the reason, if conflicted)."""
    fire_and_print(
        of(ctx),
        "visit",
        visit_id,
        "add_panel_member",
        role=role,
        note=None,
        params={"reviewer_id": reviewer, "observer": observer},
    )


@app.command("declare")
def visit_declare(
    ctx: typer.Context,
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    reviewer: Annotated[int, typer.Option(help="Reviewer id.")],
    role: ROLE = None,
    conflicts: Annotated[str | None, typer.Option(help="Conflicts declared, if any.")] = None,
) -> None:
    """Record a reviewer's returned conflict-of-interest declaration."""
    fire_and_print(
        of(ctx),
        "visit",
        visit_id,
        "record_declaration",
        role=role,
        note=None,
        params={"reviewer_id": reviewer, "conflicts": conflicts or ""},
    )


@app.command("feedback")
def visit_feedback(
    ctx: typer.Context,
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    role: ROLE = None,
    ir: Annotated[
        list[str] | None, typer.Option(help="An immediate risk found: 'title' or 'title|standard ref' (repeatable).")
    ] = None,
    sc: Annotated[list[str] | None, typer.Option(help="A serious concern found (repeatable).")] = None,
    gc: Annotated[list[str] | None, typer.Option(help="A general concern found (repeatable).")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record high level feedback: raises each IR/SC/GC found on the day and starts the report."""
    risks = []
    for level, found in (("IR", ir), ("SC", sc), ("GC", gc)):
        for text in found or []:
            title, _, ref = text.partition("|")
            risks.append({"level": level, "title": title.strip(), "standard_ref": ref.strip() or None})
    fire_and_print(of(ctx), "visit", visit_id, "give_feedback", role=role, note=note, params={"risks": risks})


@app.command("agenda")
def visit_agenda(
    ctx: typer.Context,
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    ics: Annotated[str | None, typer.Option(help="Also write the day as an ICS calendar file here.")] = None,
) -> None:
    """The visit day from the SOP schedule (walk-around dropped when virtual)."""
    run = of(ctx)
    with Session(run.db()) as s:
        day = visit_day(s, visit_id, run.today(), calendar=bool(ics))
    sessions = day.sessions
    if ics:
        from notifications.ics import visit_calendar  # lazy: start-up time (icalendar, for --ics only)

        Path(ics).write_bytes(
            visit_calendar(
                f"Visit-{visit_id}",
                day.service.name,
                day.network.name,
                sessions,
                day.people,
                run.clock().now(),
                installation=day.installation,
                organizer=day.organizer,
                sequence=day.visit.version,
            )
        )
    if run.json:
        print_json({"visit": visit_id, "sessions": sessions, "ics": ics})
        return
    table(
        f"Visit {visit_id}: {day.service.name}, {sessions[0]['start']:%a %d %b %Y} ({'virtual' if day.visit.mode == 'virtual' else 'in person'})",
        ["from", "to", "session", "who"],
        [(f"{x['start']:%H:%M}", f"{x['end']:%H:%M}", x["title"], x["who"]) for x in sessions],
    )
    if ics:
        console.print(f"calendar written to {ics} ({len(sessions)} events, {len(day.people)} attendees)")


add_item_commands(app, NAME)
