"""/api/v1 for a Trust's and a commissioner's people: what is asked of us (the portal's page,
states.views.portal.what_is_asked) and a risk's formal response, text only, through the use case
the respond page calls (states.services.responses.submit). Files go with a response on the page
(/risks/{id}/respond) only: the API takes none."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from states.services import responses
from states.views import portal as portal_view
from web.api.common import WRITE_REFUSALS, ApiWho, db
from web.api.models import MAX_ID
from web.api.models_people import PortalOut, ResponseIn, ResponseOut
from web.deps import engine_of

router = APIRouter()

RiskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The risk's id.")]


@router.get("/portal", response_model=PortalOut, summary="What is asked of us: every service my roles reach")
def portal(
    request: Request,
    who: ApiWho,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    service: Annotated[int | None, Query(ge=1, le=MAX_ID, description="One service only.")] = None,
) -> dict[str, Any]:
    with db(request) as s:
        return portal_view.what_is_asked(s, who.principal, who.clock, service_id=service, page=page)


@router.post(
    "/risks/{risk_id}/responses",
    response_model=ResponseOut,
    status_code=201,
    responses=WRITE_REFUSALS,
    summary="Send the service's formal response to a risk (text only)",
)
def respond(request: Request, risk_id: RiskId, body: ResponseIn, who: ApiWho) -> dict[str, Any]:
    row = responses.submit(engine_of(request), who.principal, risk_id, body.text, [], who.clock, body.version)
    return {
        "id": row.id, "risk_id": row.risk_id, "number": row.number, "submitted_name": row.submitted_name,
        "submitted_role": row.submitted_role, "submitted_at": row.submitted_at,
    }  # fmt: skip
