"""The commands at the top of ``peerwatch``: init, chase, dispatch, diagram, serve and demo.

cli/app.py mounts them only when one of them is typed (or for help): Prefect (serve, demo) and
Jinja2 (dispatch) are imported inside the command that needs them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from cli.diagram import mermaid
from cli.output import console, print_json, table
from cli.seed import seed_reference
from models import session_scope
from states.engine.sweep import run_sweep
from states.policy import Policy

app = typer.Typer()


@app.command()
def init(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also load the demo networks, Trusts, services and contacts.")
    ] = False,
) -> None:
    """Create the database tables (and, with --demo, the demo reference data)."""
    run = of(ctx)
    eng = run.db()
    if demo:
        with session_scope() as s:
            seed_reference(s)
    out = {"database": str(eng.url), "demo": demo}
    print_json(out) if run.json else console.print(
        f"database ready: {eng.url}" + (" (demo data loaded)" if demo else "")
    )


@app.command()
def chase(ctx: typer.Context) -> None:
    """Run today's chase sweep in this process (the `chase` flow runs the same code)."""
    run = of(ctx)
    summary = run_sweep(run.db(), run.clock())
    if run.json:
        print_json({"as_of": summary.as_of, "actions": summary.actions, "skipped": summary.skipped})
        return
    table(
        f"chase as of {summary.as_of}: {len(summary.actions)} action(s)",
        ["kind", "id", "deadline", "due", "action", "now"],
        [(a["kind"], a["id"], a["deadline"], a["due_on"], a["action"], a.get("to_state", "")) for a in summary.actions],
    )
    for sk in summary.skipped:
        console.print(f"skipped {sk['kind']} {sk['id']}: {sk['reason']}")


@app.command()
def dispatch(ctx: typer.Context) -> None:
    """Send what is queued in the outbox (PEERWATCH_MAIL=folder|smtp)."""
    from notifications.dispatch import dispatch as send  # lazy: start-up time (Jinja2)
    from notifications.transports import transport_from_env  # lazy: start-up time (with the above)

    run = of(ctx)
    transport = transport_from_env()
    with Session(run.db(), expire_on_commit=False) as s:
        summary = send(s, transport, run.clock(), Policy.from_env())
    data = {
        "emails_sent": summary.sent_messages,
        "messages_sent": summary.sent_rows,
        "retried": summary.retried,
        "failed": summary.failed,
        "still_failed": summary.still_failed,
        "redelivered": summary.redelivered,
        "recovered_sent": summary.recovered_sent,
        "requeued": summary.requeued,
        "in_doubt": summary.in_doubt,
    }
    print_json(data) if run.json else console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()))


@app.command()
def diagram(kind: Annotated[str, typer.Argument(help="risk")]) -> None:
    """Print a kind's state diagram (Mermaid), drawn from the machine itself."""
    sys.stdout.write(mermaid(kind))


@app.command()
def serve() -> None:
    """Serve the chase, dispatch and fire deployments (schedules from prefect.yaml)."""
    from flows.deployments import serve_all  # lazy: start-up time (Prefect)

    serve_all()


@app.command()
def demo(
    keep_server: Annotated[
        bool, typer.Option(help="Leave the local Prefect server running to browse the runs.")
    ] = False,
) -> None:
    """Run the end-to-end demonstration on a fresh SQLite database with real Prefect flows."""
    from cli.demo import run_demo  # lazy: start-up time (Prefect)

    run_demo(keep_server=keep_server)
