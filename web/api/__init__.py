"""The JSON API under ``/api/v1``: the use cases the pages offer, for scripts and other systems
(docs/api.md is its reference).

Authenticated by a personal access token (``Authorization: Bearer pw_...``, ``peerwatch token
create``) acting as its owner with the owner's grants now (``web.deps.api_who``); no cookies, so
no CSRF. Every rule is the use case's or the view's: each module parses, calls what the page
calls and shapes the answer (the shapes are web/api/models*.py). Every refusal is a 4xx JSON body
``{"error": "<one line>"}`` (web/errors.py): 401 no or bad token, 403 not allowed, 404 not found
(or another network's: the same answer), 409 a stale version, 422 invalid input, 400 a step its
rules refuse now.

One router, ``router`` (web/app.py includes it): each module's own router is included in it, so
every operation has the token check and the refusal of unknown query parameters.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Security

from web.api import admin, core, create, directory, outbox, portal, working
from web.api.common import BEARER, REFUSALS, known_query
from web.deps import api_who

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    responses=REFUSALS,
    dependencies=[Security(BEARER), Depends(api_who), Depends(known_query)],  # the token first
)
for _module in (core, create, outbox, working, directory, admin, portal):
    router.include_router(_module.router)
