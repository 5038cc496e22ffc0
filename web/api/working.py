"""/api/v1's working pages on an item: a visit's panel, a report's draft and its factual accuracy
decisions (the pages are web/routes/reports.py). Reading calls states.views.manage as the pages
do (another network's item: 404; a Trust's people: 403, their pages are the portal's); each step
is one trigger fired through states.services.acting.fire with the item's version, its fields
typed here (one operation per step, so each body is precise)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from states.clock import local_date
from states.services import acting
from states.views import manage as views
from states.views.work import get_visible
from web.api.common import WRITE_REFUSALS, ApiWho, db
from web.api.models import MAX_ID, FireOut
from web.api.models_work import (
    AccuracyOut,
    DecisionIn,
    DeclarationIn,
    DraftOut,
    FeedbackIn,
    InaccuracyIn,
    PanelMemberIn,
    PanelOut,
    PositiveIn,
    ReviewerIn,
    StandardIn,
    Versioned,
)
from web.deps import Who, engine_of

router = APIRouter()

VisitId = Annotated[int, Path(ge=1, le=MAX_ID, description="The visit's id.")]
ReportId = Annotated[int, Path(ge=1, le=MAX_ID, description="The report's id.")]
PANEL = ("add_panel_member", "remove_panel_member", "record_declaration", "give_feedback")
DRAFT = ("add_standard", "add_positive")
ACCURACY = ("record_inaccuracy", "decide_inaccuracy")


def _working(request: Request, who: Who, kind: str, item_id: int, triggers: tuple[str, ...]) -> dict[str, Any]:
    """The item behind a working page (views.working_page), with what every such answer holds."""
    with db(request) as s:
        row: Any = views.working_page(s, who.principal, kind, item_id)
        out = {
            "kind": kind,
            "id": row.id,
            "state": row.state,
            "version": row.version,
            "place": views.place(s, row),
            "may": sorted(views.firable(s, who.principal, kind, row, triggers)),
        }
        if kind == "visit":
            out.update(views.panel(s, row, local_date(who.clock.now())))
        elif triggers == DRAFT:
            out.update(views.draft(row))
        else:
            out["items"] = views.accuracy(s, item_id)
        return out


def _fire(request: Request, who: Who, kind: str, item_id: int, trigger: str, body: Versioned) -> dict[str, Any]:
    """``trigger`` fired with the body's own fields as its parameters (the page's form fields)."""
    principal = who.principal.acting_as(body.role)
    with db(request) as s:
        get_visible(s, principal, kind, item_id)  # another network's item: 404, as a missing one
    params = body.model_dump(exclude={"note", "version", "role"})
    return acting.fire(
        engine_of(request), principal, who.clock, kind, item_id, trigger, note=body.note, params=params,
        version=body.version,
    )  # fmt: skip


STEP = {"response_model": FireOut, "response_model_by_alias": True, "responses": WRITE_REFUSALS}


# ---------------------------------------------------------------- a visit's panel


@router.get("/visits/{visit_id}/panel", response_model=PanelOut, summary="A visit's panel and who could join it")
def panel(request: Request, visit_id: VisitId, who: ApiWho) -> dict[str, Any]:
    return _working(request, who, "visit", visit_id, PANEL)


@router.post("/visits/{visit_id}/panel/add_panel_member", summary="Invite a reviewer to the panel", **STEP)
def add_panel_member(request: Request, visit_id: VisitId, body: PanelMemberIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "visit", visit_id, "add_panel_member", body)


@router.post("/visits/{visit_id}/panel/remove_panel_member", summary="Remove a reviewer from the panel", **STEP)
def remove_panel_member(request: Request, visit_id: VisitId, body: ReviewerIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "visit", visit_id, "remove_panel_member", body)


@router.post("/visits/{visit_id}/panel/record_declaration", summary="Record a member's declaration", **STEP)
def record_declaration(request: Request, visit_id: VisitId, body: DeclarationIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "visit", visit_id, "record_declaration", body)


@router.post("/visits/{visit_id}/panel/give_feedback", summary="The day's high level feedback", **STEP)
def give_feedback(request: Request, visit_id: VisitId, body: FeedbackIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "visit", visit_id, "give_feedback", body)


# ---------------------------------------------------------------- a report's draft


@router.get("/reports/{report_id}/draft", response_model=DraftOut, summary="A report's draft: compliance, positives")
def draft(request: Request, report_id: ReportId, who: ApiWho) -> dict[str, Any]:
    return _working(request, who, "report", report_id, DRAFT)


@router.post("/reports/{report_id}/draft/add_standard", summary="Record compliance against a standard", **STEP)
def add_standard(request: Request, report_id: ReportId, body: StandardIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "report", report_id, "add_standard", body)


@router.post("/reports/{report_id}/draft/add_positive", summary="Record a positive development", **STEP)
def add_positive(request: Request, report_id: ReportId, body: PositiveIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "report", report_id, "add_positive", body)


# ---------------------------------------------------------------- factual accuracy


@router.get(
    "/reports/{report_id}/accuracy", response_model=AccuracyOut, summary="A report's inaccuracies and the decisions"
)
def accuracy(request: Request, report_id: ReportId, who: ApiWho) -> dict[str, Any]:
    return _working(request, who, "report", report_id, ACCURACY)


@router.post("/reports/{report_id}/accuracy/record_inaccuracy", summary="Record an inaccuracy stated", **STEP)
def record_inaccuracy(request: Request, report_id: ReportId, body: InaccuracyIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "report", report_id, "record_inaccuracy", body)


@router.post("/reports/{report_id}/accuracy/decide_inaccuracy", summary="Decide an inaccuracy (NM or RL)", **STEP)
def decide_inaccuracy(request: Request, report_id: ReportId, body: DecisionIn, who: ApiWho) -> dict[str, Any]:
    return _fire(request, who, "report", report_id, "decide_inaccuracy", body)
