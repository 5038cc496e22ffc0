"""/api/v1: raising a risk, proposing a visit, receiving a complaint: the use cases of the
create pages (web/routes/create.py; states/services/intake.py), 201 with the item's state and
deadlines. Proposing a visit and receiving a complaint are the network's (as their pages are)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from states.clock import local_date
from states.services import intake
from states.services.items import deadline_json
from web.api.common import WRITE_REFUSALS, ApiWho, NetworkWho, db
from web.api.models import CreatedOut, RiskIn
from web.api.models_work import ComplaintIn, VisitIn

router = APIRouter()


def _created(s: Session, kind: str, out: Any) -> CreatedOut:
    """The new item's answer; commits (the use case's transaction)."""
    row: Any = out.row
    deadlines = deadline_json(s, kind, row.id)
    s.commit()
    return CreatedOut.model_validate(
        {"id": row.id, "kind": kind, "state": row.state, "version": row.version, "deadlines": deadlines}
    )


@router.post(
    "/risks", response_model=CreatedOut, status_code=201, responses=WRITE_REFUSALS, summary="Raise a risk or concern"
)
def raise_risk(request: Request, body: RiskIn, who: ApiWho) -> CreatedOut:
    principal = who.principal.acting_as(body.role)
    with db(request) as s:
        out = intake.raise_risk(
            s,
            service=body.service,
            level=body.level,
            title=body.title,
            standard=body.standard,
            visit_date=body.visit_date,
            identified=body.identified,
            impact=body.impact,
            likelihood=body.likelihood,
            doctors_in_training=body.doctors_in_training,
            principal=principal,
            clock=who.clock,
            note=body.note,
        )
        return _created(s, "risk", out)


@router.post("/visits", response_model=CreatedOut, status_code=201, responses=WRITE_REFUSALS, summary="Propose a visit")
def propose_visit(request: Request, body: VisitIn, who: NetworkWho) -> CreatedOut:
    principal = who.principal.acting_as(body.role)
    with db(request) as s:
        out = intake.propose_visit(s, body.service, principal=principal, clock=who.clock, reason=body.reason)
        return _created(s, "visit", out)


@router.post(
    "/complaints", response_model=CreatedOut, status_code=201, responses=WRITE_REFUSALS, summary="Receive a complaint"
)
def receive_complaint(request: Request, body: ComplaintIn, who: NetworkWho) -> CreatedOut:
    principal = who.principal.acting_as(body.role)
    with db(request) as s:
        out = intake.receive_complaint(
            s,
            network=body.network,
            category=body.category,
            from_name=body.from_name,
            from_email=body.from_email,
            summary=body.summary,
            service=body.service,
            about_person=body.about_person,
            received=body.received or local_date(who.clock.now()),
            principal=principal,
            clock=who.clock,
        )
        return _created(s, "complaint", out)
