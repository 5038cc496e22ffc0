"""``peerwatch web``: serve the web application for network staff (uvicorn, production settings).

One process by default; ``--workers N`` for several (over PostgreSQL: docs/scale.md). Behind
a reverse proxy that terminates TLS, pass ``--proxy-headers`` (and ``--forwarded-allow-ips``
naming the proxy) so the client's real address is used for the sign-in throttles, and set
``PEERWATCH_WEB_SECURE_COOKIES=true`` (docs/web.md).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import console, errors
from models import init_db

NAME = "web"
app = typer.Typer(
    help="Serve the web application for network staff (http://127.0.0.1:8000 by default).",
    invoke_without_command=True,
)


@app.callback()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (more than 1: use PostgreSQL).")] = 1,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers/--no-proxy-headers",
            help="Believe X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a reverse proxy).",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="The proxies' addresses whose forwarded headers are believed (comma-separated).")
    ] = "127.0.0.1",
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = False,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (warning: start-up and errors only).")
    ] = "warning",
) -> None:
    """Serve the pages and /api/v1 until interrupted (Ctrl-C)."""
    import uvicorn  # lazy: start-up time (only this command serves)

    from web.assets import ASSET_DIR, assets_ready  # lazy: start-up time (the web package only here)
    from web.server import PROTOCOL  # lazy: start-up time (uvicorn's protocol classes)

    init_db()  # once, before any worker starts: the newest migration, errors on one line
    if not assets_ready():
        errors.print(f"the NHS.UK stylesheet is missing from {ASSET_DIR}: run `make assets` (pages are unstyled)")
    shown = f"[{host}]" if ":" in host else host
    console.print(f"peerwatch web: http://{shown}:{port}/ (Ctrl-C to stop)", markup=False, highlight=False)
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        reload=False,
        http=PROTOCOL,  # TCP_NODELAY on every connection, with any number of workers (web/server.py)
    )
