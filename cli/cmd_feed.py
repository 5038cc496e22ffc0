"""``peerwatch feed``: the calendar feeds (ICS) of every network and service, for Outlook and others.

``feed write`` writes them all where a web server (or the dashboard's folder) publishes them;
``feed show`` prints one to stdout. Both read the date from the global ``--as-of``. Every
feed is a valid calendar even with nothing in it; closed deadlines stay as CANCELLED for
``PEERWATCH_FEED_CANCELLED_DAYS`` (docs/calendar.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console, print_json
from models.installation import installation_id

NAME = "feed"
app = typer.Typer(
    help="Calendar feeds (ICS): every pending deadline, visit and programme meeting, per network and service.",
    no_args_is_help=True,
)


@app.command("write")
def write(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="Folder: <network>/calendar.ics and <network>/services/<id>.ics go under it.")
    ] = Path("var/site"),
) -> None:
    """Write every network's and every service's feed (one read of the database)."""
    from flows.site import write_feeds  # lazy: start-up time (icalendar, Jinja2; help mounts every group)

    run = of(ctx)
    with Session(run.db()) as s:
        paths = write_feeds(s, out, run.clock().now())
        iid = installation_id(s)
    if run.json:
        print_json({"written": [str(p) for p in paths], "installation": iid})
        return
    networks = sorted({p.relative_to(out).parts[0] for p in paths})
    console.print(
        f"{len(paths)} calendar feed(s) written under {out}: {', '.join(networks) or 'no networks'}", markup=False
    )
    console.print(f"  event UIDs carry this installation's id, {iid}", markup=False)
    for code in networks:
        console.print(f"  {out / code / 'calendar.ics'}", markup=False)


@app.command("show")
def show(
    ctx: typer.Context,
    network: Annotated[str, typer.Option(help="Network code, e.g. WMTN.")],
    service: Annotated[int | None, typer.Option(help="Only this service's feed (service id).")] = None,
) -> None:
    """Print one feed (iCalendar, CRLF line endings) to stdout."""
    from flows.site import network_feed  # lazy: start-up time (icalendar, Jinja2; help mounts every group)

    run = of(ctx)
    with Session(run.db()) as s:
        data = network_feed(s, network, run.clock().now(), service)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
