"""``peerwatch selfassessment``: self-assessment declarations and the standards library (000 s5.1, Appendix 2).

show, list, fire and history are the generic ones (cli/items.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print
from cli.output import console, errors, print_json, table
from models import session_scope
from notifications.spreadsheets import render_selfassessment_xlsx
from states import engine
from states.errors import InvalidInput, NotFound
from states.machines.selfassessment import item_view, report_of, spreadsheet
from states.machines.standards import SpreadsheetRejected
from states.services.items import deadline_json
from states.services.selfassessment import import_file, return_due, start
from states.services.standards import load_standard_sets, read_library
from states.views.standards import standard_sets

NAME = "selfassessment"
app = typer.Typer(
    help="Self-assessment declarations (Appendix 2 spreadsheet) and the standards library.", no_args_is_help=True
)
standards_app = typer.Typer(help="The standards library: standard sets per service kind.", no_args_is_help=True)
app.add_typer(standards_app, name="standards")


@standards_app.command("load")
def standards_load(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A JSON or YAML standards library (docs/standards-example.yaml).")],
    role: ROLE = None,
) -> None:
    """Load standard sets (audited); each supersedes the current set of its service kind (it must be newer)."""
    run = of(ctx)
    docs = read_library(file)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        loaded = load_standard_sets(s, docs, principal=who.principal, clock=who.clock)
    if run.json:
        print_json(loaded)
        return
    for x in loaded:
        console.print(
            f"standard set {x['id']} loaded: {x['service_kind']}, {x['name']} version {x['version']}, "
            f"effective {x['effective_from']}, {x['standards']} standard(s)"
            + (f"; supersedes set {x['supersedes']}" if x["supersedes"] else ""),
            markup=False,
        )


@standards_app.command("list")
def standards_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="Only sets for this service kind.")] = None,
    show_standards: Annotated[bool, typer.Option("--standards", help="Also list each set's standards.")] = False,
) -> None:
    """List standard sets, which is in force today, and what superseded the others."""
    run = of(ctx)
    today = run.today()
    with Session(run.db()) as s:
        out = standard_sets(s, today, kind, show_standards)
    if run.json:
        print_json(out)
        return
    table(
        f"standard sets as of {today.isoformat()}",
        ["id", "service kind", "name", "version", "effective", "superseded by", "in force"],
        [
            (
                o["id"],
                o["service_kind"],
                o["name"],
                o["version"],
                o["effective_from"],
                o["superseded_by"],
                "yes" if o["in_force"] else "",
            )
            for o in out
        ],
    )
    if show_standards:
        for o in out:
            table(
                f"set {o['id']}: {o['name']} {o['version']}",
                ["ref", "descriptor", "Met", "Partially Met", "Unmet"],
                [
                    (
                        st["ref"],
                        st["descriptor"],
                        st["criteria_met"],
                        st["criteria_partly"] or "(no band)",
                        st["criteria_unmet"],
                    )
                    for st in o["standards"]
                ],
            )


@app.command("circulate")
def circulate(
    ctx: typer.Context,
    service: Annotated[int, typer.Option(help="Service id.")],
    year: Annotated[int, typer.Option(help="Programme year it starts, e.g. 2026 for 2026-27.")],
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Send the Appendix 2 spreadsheet to the service's Leads/Managers (current standard set); the return is due in 6 weeks."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = start(s, service, year, principal=who.principal, clock=who.clock, note=note)
        run.created(
            "selfassessment",
            out.row.id,
            state=out.row.state,
            deadlines=deadline_json(s, "selfassessment", out.row.id),
        )


@app.command("export")
def export(
    ctx: typer.Context,
    assessment_id: Annotated[int, typer.Argument(help="selfassessment id")],
    out: Annotated[str, typer.Option(help="Where to write the .xlsx file.")],
) -> None:
    """Write the declaration's spreadsheet (with the service's answers, once imported)."""
    run = of(ctx)
    with Session(run.db()) as s:
        _, row = engine.load(s, "selfassessment", assessment_id)
        _name, _type, (_renderer, doc) = spreadsheet(s, row, return_by=return_due(s, row), made=run.clock().now())  # type: ignore[arg-type]
    data = render_selfassessment_xlsx(doc)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print_json({"id": assessment_id, "file": str(path), "bytes": len(data)}) if run.json else console.print(
        f"selfassessment {assessment_id}: {path}", markup=False
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    assessment_id: Annotated[int, typer.Argument(help="selfassessment id")],
    file: Annotated[str, typer.Argument(help="The completed .xlsx returned by the service.")],
    role: ROLE = None,
    letter: Annotated[
        bool,
        typer.Option(
            "--letter/--no-letter",
            help="On refusal, write to the service listing the problems (default); "
            "--no-letter when you picked the wrong file.",
        ),
    ] = True,
) -> None:
    """Import a returned spreadsheet: every row is checked; any problem refuses the whole file (listed, exit 2) and
    the service is sent the problems. Oversized, .xls and .ods files are refused before they are opened."""
    run = of(ctx)
    path = Path(file)
    if not path.is_file():
        raise NotFound(f"file {file!r} not found")
    db = run.db()
    with Session(db) as s:
        who = run.acting(s, role)
    try:
        row = import_file(db, assessment_id, path, principal=who.principal, clock=who.clock, letter=letter)
    except SpreadsheetRejected as exc:
        problems = exc.problems
        if run.json:
            print_json(
                {
                    "id": assessment_id,
                    "imported": False,
                    "problem_count": exc.count,
                    "problems": problems,
                    "letter": letter,
                }
            )
        errors.print(
            f"error: {path.name} refused, nothing imported: {exc.count} problem(s)"
            + (f", the first {len(problems)} listed" if exc.more else ""),
            markup=False,
        )
        for p in problems:
            errors.print(f"  - {p}", markup=False, soft_wrap=True)
        if exc.more:
            errors.print(f"  ... and {exc.more} more", markup=False)
        if letter:
            errors.print(
                "the service has been written to with these problems (peerwatch dispatch sends it)", markup=False
            )
        raise SystemExit(2) from None

    with Session(db) as s:
        report = report_of(s, row)
        deadlines = deadline_json(s, "report", report.id) if report else []  # type: ignore[arg-type]
    if run.json:
        print_json(
            {
                "id": row.id,
                "imported": True,
                "state": row.state,
                "received_on": row.received_on,
                "report_id": report.id if report else None,
                "report_deadlines": deadlines,
            }
        )
        return
    console.print(f"selfassessment {row.id}: {path.name} imported, state {row.state}", markup=False)
    if report:
        console.print(
            f"report {report.id} started" + "".join(f"; {d['name']} due {d['due_on']}" for d in deadlines), markup=False
        )


@app.command("validate")
def validate(
    ctx: typer.Context,
    assessment_id: Annotated[int, typer.Argument(help="selfassessment id")],
    ref: Annotated[str | None, typer.Option(help="Standard Ref No., e.g. 1.2.")] = None,
    status: Annotated[str | None, typer.Option(help="Validated status: Met, Partially Met or Unmet.")] = None,
    note: Annotated[str | None, typer.Option(help="Why (required when it differs from what the figure gives).")] = None,
    accept_all: Annotated[
        bool,
        typer.Option(
            "--accept-all",
            help="Validate every remaining standard as derived from its figure or as declared, and finish.",
        ),
    ] = False,
    complete: Annotated[
        bool,
        typer.Option(
            "--complete", help="Finish validation (every standard validated): computes the total achievement."
        ),
    ] = False,
    role: ROLE = None,
) -> None:
    """Record the network's validated status for one standard, or accept the rest, or finish."""
    run = of(ctx)
    chosen = [x for x in (ref is not None, accept_all, complete) if x]
    if len(chosen) != 1:
        raise InvalidInput("give one of: --ref R --status S [--note], --accept-all, or --complete")
    if accept_all:
        fire_and_print(run, "selfassessment", assessment_id, "accept_all", role=role, note=note, params={})
    elif complete:
        fire_and_print(run, "selfassessment", assessment_id, "complete_validation", role=role, note=note, params={})
    else:
        if not status:
            raise InvalidInput("--ref needs --status (Met, Partially Met or Unmet)")
        fire_and_print(
            run,
            "selfassessment",
            assessment_id,
            "validate_item",
            role=role,
            note=note,
            params={"ref": ref, "status": status},
        )


@app.command("items")
def items(ctx: typer.Context, assessment_id: Annotated[int, typer.Argument(help="selfassessment id")]) -> None:
    """Each standard: declared status, figure, status the figure gives, validated status; and the achievement."""
    run = of(ctx)
    with Session(run.db()) as s:
        _, row = engine.load(s, "selfassessment", assessment_id)
        view = item_view(s, row)  # type: ignore[arg-type]
        report = report_of(s, row)  # type: ignore[arg-type]
    if run.json:
        print_json(
            {
                "id": assessment_id,
                "state": row.state,
                "achievement": row.achievement,  # type: ignore[attr-defined]
                "report_id": report.id if report else None,
                "items": view,
            }
        )
        return
    table(
        f"selfassessment {assessment_id} ({row.state})",
        ["ref", "bands", "declared", "figure", "figure gives", "validated", "evidence", "note"],
        [
            (
                v["ref"],
                v["bands"],
                v["self_status"],
                v["figure"],
                v["derived_status"],
                v["validated_status"],
                v["evidence_location"],
                v["validation_note"],
            )
            for v in view
        ],
    )
    if row.achievement is not None:  # type: ignore[attr-defined]
        console.print(f"total achievement: {row.achievement:.1f}%", markup=False)  # type: ignore[attr-defined]
    if report:
        console.print(f"written report: report {report.id} ({report.state})", markup=False)


add_item_commands(app, NAME)
