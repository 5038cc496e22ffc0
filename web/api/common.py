"""What every /api/v1 module shares: the refusals each operation documents, the bearer scheme,
the refusal of an unknown query parameter, the token's owner as a parameter (``ApiWho``; and
``NetworkWho``, refused unless on the network's side, as the network's pages are), and a
database session. No rule here: the use cases and views decide."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPBearer
from sqlmodel import Session

from states.errors import InvalidInput
from states.services import web_manage
from web.api.models import MAX_ID, ApiError
from web.deps import Who, api_who, engine_of

REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "The request could not be read, or the step's rules refuse it now."},
    401: {"model": ApiError, "description": "No token, or an unknown, revoked or expired one."},
    403: {"model": ApiError, "description": "The token's owner may not do this."},
    404: {"model": ApiError, "description": "No such item, or not one this account may see."},
    422: {"model": ApiError, "description": "Invalid input."},
}
WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    409: {"model": ApiError, "description": "The item changed since the version given."},
}

# Declares the scheme in the OpenAPI (the check is api_who's: a 401 with one line, never FastAPI's own).
BEARER = HTTPBearer(
    auto_error=False, scheme_name="token", description="A personal access token (pw_...): peerwatch token create"
)


def known_query(request: Request) -> None:
    """A query parameter the operation does not take is refused (a misspelt filter would
    otherwise be ignored and answer with everything)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {q.alias for q in dependant.query_params} if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"unknown query parameter {unknown[0][:50]!r}: this operation takes {takes}")


def network_who(request: Request) -> Who:
    """The token's owner, refused (403) unless on the network's side: the outbox, contacts and
    reviewers and creating items are the network's (states.services.web_manage), as on the pages."""
    me = api_who(request)
    web_manage.require_network_side(me.principal, "these operations")
    return me


ApiWho = Annotated[Who, Depends(api_who)]
NetworkWho = Annotated[Who, Depends(network_who)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The item's id.")]


@contextmanager
def db(request: Request) -> Iterator[Session]:
    """A session on the application's database; the caller commits what it changed."""
    with Session(engine_of(request), expire_on_commit=False) as s:
        yield s
