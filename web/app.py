"""The web application: ``create_app`` builds it (the database, the routers, the security
headers, the error pages); ``peerwatch web`` serves it with uvicorn (cli/cmd_web.py).

Each router is a module with a module-level ``router`` (an APIRouter), named in ``ROUTERS``:
one line per module, added by whoever writes it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from sqlmodel import Session

from models import init_db
from states.clock import SystemClock
from states.services import accounts
from web import errors, security
from web.assets import ASSET_DIR, assets_ready
from web.deps import Settings

log = logging.getLogger("peerwatch.web")

STATIC = Path(__file__).parent / "static"

API_ROUTER = "web.api"
# The page and API routers, included in this order (each module's ``router``).
ROUTERS: tuple[str, ...] = (
    "web.auth",
    "web.api",
    "web.routes.work",
    "web.routes.items",
    "web.routes.create",
    "web.routes.outbox",
    "web.routes.contacts",
    "web.routes.admin",
    "web.routes.dashboard",
    "web.routes.reports",
    "web.routes.invitation",
    "web.routes.portal",
    "web.routes.responses",
    "web.routes.plans",
    "web.routes.portal_forms",
    "web.routes.portal_uploads",
    "web.routes.account",
)


def create_app(url: str | None = None, settings: Settings | None = None) -> FastAPI:
    """The application over the database at ``url`` (PEERWATCH_DATABASE_URL when None), brought to
    the newest migration, with ``settings`` (from the environment when None)."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the pages' thread pool (anyio's, shared by the worker's event loop): PEERWATCH_WEB_THREADS
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="peerwatch",
        summary="Peer review and quality surveillance of hospital services by clinical networks: "
        "the staff's application and its API",
        # No interactive documentation page: FastAPI's loads Swagger UI from a CDN with an inline
        # script, which the one Content-Security-Policy (web/security.py) forbids. The OpenAPI
        # document below is what clients and schemathesis read.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.clock = SystemClock()  # sessions' clock (a test may stop it)
    app.state.engine = init_db(url)
    with Session(app.state.engine) as s:
        app.state.training = accounts.is_training(s)  # for the pages shown to nobody signed in

    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False, response_class=PlainTextResponse)
    def healthz() -> str:
        """Alive: no database access (the bench's trivial endpoint)."""
        return "ok"

    for name in ROUTERS:
        # The OpenAPI document describes the API only: the pages are for browsers, not clients.
        app.include_router(importlib.import_module(name).router, include_in_schema=name == API_ROUTER)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if assets_ready():
        app.mount("/assets", StaticFiles(directory=ASSET_DIR), name="assets")
    else:
        log.warning("the NHS.UK stylesheet is missing (%s): run `make assets`; pages are unstyled", ASSET_DIR)
    errors.install(app)
    security.install(app, settings, errors.unhandled)
    return app
