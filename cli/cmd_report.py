"""``peerwatch report``: peer review reports and the factual accuracy check (000 s5.4); show, list,
fire and history are the generic ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print
from states.services.items import report_document

NAME = "report"
app = typer.Typer(help="Peer review reports and the factual accuracy check.", no_args_is_help=True)


@app.command("standard")
def report_standard(
    ctx: typer.Context,
    report_id: Annotated[int, typer.Argument(help="report id")],
    ref: Annotated[str, typer.Option(help="Standard reference, e.g. 1.2.")],
    status: Annotated[str, typer.Option(help="Met, Partially Met, Unmet, Not applicable")],
    descriptor: Annotated[str, typer.Option(help="The standard's descriptor.")] = "",
    comment: Annotated[str, typer.Option()] = "",
    role: ROLE = None,
) -> None:
    """Record compliance against one standard in a draft report."""
    fire_and_print(
        of(ctx),
        "report",
        report_id,
        "add_standard",
        role=role,
        note=None,
        params={"ref": ref, "status": status, "descriptor": descriptor, "comment": comment},
    )


@app.command("positive")
def report_positive(
    ctx: typer.Context,
    report_id: Annotated[int, typer.Argument(help="report id")],
    text: Annotated[str, typer.Option(help="A positive development or achievement.")],
    role: ROLE = None,
) -> None:
    """Record a positive development in a draft report."""
    fire_and_print(of(ctx), "report", report_id, "add_positive", role=role, note=None, params={"text": text})


@app.command("inaccuracy")
def report_inaccuracy(
    ctx: typer.Context,
    report_id: Annotated[int, typer.Argument(help="report id")],
    text: Annotated[str, typer.Option(help="The inaccuracy as the service states it.")],
    role: ROLE = None,
    after_visit: Annotated[
        bool, typer.Option("--after-visit", help="The service says this changed after the visit (refused).")
    ] = False,
) -> None:
    """Record an inaccuracy the service states at the factual accuracy check."""
    fire_and_print(
        of(ctx),
        "report",
        report_id,
        "record_inaccuracy",
        role=role,
        note=None,
        params={"text": text, "after_visit": after_visit},
    )


@app.command("decide")
def report_decide(
    ctx: typer.Context,
    report_id: Annotated[int, typer.Argument(help="report id")],
    item: Annotated[int, typer.Option(help="Inaccuracy id (report show).")],
    decision: Annotated[str, typer.Option(help="accepted or rejected")],
    role: ROLE = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Accept or reject an inaccuracy: once as Network Manager, once as Regional Lead (two people)."""
    fire_and_print(
        of(ctx),
        "report",
        report_id,
        "decide_inaccuracy",
        role=role,
        note=note,
        params={"item_id": item, "decision": decision},
    )


@app.command("render")
def report_render(
    ctx: typer.Context,
    report_id: Annotated[int, typer.Argument(help="report id")],
    out: Annotated[str, typer.Option(help="Folder to write the HTML and PDF into.")] = "var/reports",
) -> None:
    """Render a report to HTML and PDF from the stored data."""
    from notifications.documents import render_report_html, render_report_pdf  # lazy: start-up time (Jinja2, fpdf2)

    run = of(ctx)
    with Session(run.db()) as s:
        doc, draft = report_document(s, report_id)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    html, pdf = folder / f"report-{report_id}.html", folder / f"report-{report_id}.pdf"
    html.write_text(render_report_html(doc, draft=draft))
    pdf.write_bytes(render_report_pdf(doc, draft=draft))
    run.say({"id": report_id, "html": str(html), "pdf": str(pdf)}, f"report {report_id}: {html} and {pdf}")


add_item_commands(app, NAME)
