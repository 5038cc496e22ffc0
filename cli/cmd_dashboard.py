"""``peerwatch dashboard``: the Network Manager's morning page, one self-contained HTML file per
network (issue 7 item 2). Read-only: the figures come from ``states/views/register.py``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console, print_json, table
from states.clock import local_date
from states.errors import InvalidInput
from states.views.directory import networks_or_one

NAME = "dashboard"
app = typer.Typer(
    help="The Network Manager's dashboard: one HTML page per network, written (and optionally served).",
    invoke_without_command=True,
)


@app.callback()
def dashboard(
    ctx: typer.Context,
    network: Annotated[str | None, typer.Option(help="Only this network (code, e.g. WMTN).")] = None,
    out: Annotated[Path, typer.Option(help="Folder to write the site into.")] = Path("var/site"),
    serve: Annotated[bool, typer.Option("--serve", help="Then serve the folder on 127.0.0.1 until Ctrl-C.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8800,
) -> None:
    """Write OUT/<network>/index.html and its calendar feeds for each network (and OUT/index.html
    linking them), as of --as-of."""
    from flows.site import write_site  # lazy: start-up time (Jinja2, icalendar; help mounts every group)

    run = of(ctx)
    today = local_date(run.clock().now())
    with Session(run.db()) as s:
        nets = sorted(networks_or_one(s, network), key=lambda n: n.code)  # the pages listed by code
        pages = write_site(s, today, out, [(n.code, n.name) for n in nets])
    if run.json:
        print_json({"as_of": today, "out": str(out), "networks": pages})
    else:
        table(
            f"Dashboard as of {today:%a %d %b %Y}",
            ["network", "open items", "risks", "overdue", "due soon", "escalated"],
            [
                (p["network"], p["open_items"], p["open_risks"], p["overdue"], p["upcoming"], p["escalations"])
                for p in pages
            ],
        )
        console.print(f"pages written: {out / 'index.html'}", markup=False)
    if serve:
        _serve(out, port, console)


def _serve(out: Path, port: int, console: Any) -> None:
    """Serve the folder on 127.0.0.1 (blocking) until Ctrl-C."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # lazy: only for --serve

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), partial(SimpleHTTPRequestHandler, directory=str(out)))
    except OSError as exc:
        raise InvalidInput(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}; try another --port") from None
    with server:
        console.print(f"serving {out} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", markup=False)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            console.print("stopped", markup=False)
