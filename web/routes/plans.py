"""Action plans in the portal (issue 16 item 4): a service's plans (``/services/{id}/plans``), one
plan (``/plans/{id}``: its actions, owners, milestones with dates and working days left, status,
comments, evidence, and the forms this person may use now), and the forms: open a plan, add or
remove an action (with its milestones), add a milestone, submit, agree or return with comments,
record a quarterly update, complete an action with evidence (files as multipart), mark a
milestone done, complete the plan, carry it forward.

Every form carries the CSRF token and the plan's version; the use cases in
``states/services/action_plans.py`` decide and refuse (a stale version is 409 and the page shows
the plan as it is now). A plan or service the person may not see is 404, as a missing one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from models.db import begin_write
from states.errors import InvalidInput, MissingActor, NotFound, PeerwatchError
from states.services import action_plans as plans
from states.services import plan_pages
from web.deps import Who, form, posted, uploaded
from web.render import page, redirect
from web.routes.manage import Me, db, errors_of, flag, need, need_date, opt, opt_date, opt_int, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

MILESTONE_ROWS = 3  # milestone rows offered with a new action (more can be added after)
DONE = {
    "open": "Plan opened",
    "add_action": "Action added",
    "remove_action": "Action removed",
    "add_milestone": "Milestone added",
    "submit": "Plan submitted to the network",
    "agree": "Plan agreed",
    "return_plan": "Plan returned to the service with comments",
    "record_update": "Progress update recorded",
    "complete_action": "Action completed",
    "mark_milestone_done": "Milestone marked done",
    "complete": "Plan completed",
    "carry_forward": "Open actions carried into next year's plan",
}


def _page(
    request: Request, me: Who, plan_id: int, errors: list[dict[str, Any]] | None = None, code: int = 200
) -> HTMLResponse:
    with db(request) as s:
        data = plan_pages.plan_page(s, me.principal, plan_id, me.clock)
    done = request.query_params.get("done", "")
    mine = data["last"].get("user_id") == me.principal.user_id and data["last"].get("trigger") == done
    return page(
        request,
        "plans/plan.html",
        me,
        status_code=code,
        data=data,
        errors=errors or [],
        banner=DONE.get(done) if mine else None,
        milestone_rows=range(1, MILESTONE_ROWS + 1),
    )


def _version(fields: dict[str, str]) -> int:
    version = opt_int(fields, "version", "the plan's version")
    if version is None:
        raise InvalidInput("the form has no plan version: open the plan again")
    return version


async def _do(request: Request, me: Who, plan_id: str, trigger: str, run: Any) -> Response:
    """Run one use case in its own transaction; a refusal shows the plan again with its reason."""
    pid = path_id(plan_id)
    fields = await form(request, me)
    try:
        with db(request) as s:
            begin_write(s)
            plans.plan_of(s, me.principal, pid)  # another Trust's plan: not found, whatever the form says
            run(s, fields, _version(fields))
            s.commit()
    except (NotFound, MissingActor):
        raise
    except PeerwatchError as exc:
        return _page(request, me, pid, errors_of(exc), status_of(exc))
    return redirect(f"/plans/{pid}?done={trigger}")


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan_view(request: Request, plan_id: str, me: Me) -> HTMLResponse:
    """One plan: its actions, owners, milestones, status, comments and what I may do now."""
    return _page(request, me, path_id(plan_id))


@router.get("/services/{service_id}/plans", response_class=HTMLResponse)
def service_plans(request: Request, service_id: str, me: Me) -> HTMLResponse:
    """A service's plans, and the form to open one."""
    return _service_page(request, me, path_id(service_id), [])


def _service_page(
    request: Request,
    me: Who,
    sid: int,
    errors: list[dict[str, Any]],
    code: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    with db(request) as s:
        data = plan_pages.plans_for_service(s, me.principal, sid, me.clock)
    return page(request, "plans/service.html", me, status_code=code, data=data, errors=errors, values=values or {})


@router.post("/services/{service_id}/plans")
async def create_plan(request: Request, service_id: str, me: Me) -> Response:
    """Open a plan for the service's programme year (from a report or a risk, if given)."""
    sid = path_id(service_id)
    fields = await form(request, me)
    try:
        year = opt_int(fields, "programme_year", "the programme year")
        if year is None:
            raise InvalidInput("enter the programme year (the year it starts on 1 April)")
        with db(request) as s:
            begin_write(s)
            row = plans.create_plan(
                s,
                me.principal,
                sid,
                year,
                report_id=opt_int(fields, "report_id", "the report"),
                risk_id=opt_int(fields, "risk_id", "the risk"),
                title=opt(fields, "title"),
                clock=me.clock,
            )
            s.commit()
            pid = row.id
    except (NotFound, MissingActor):
        raise
    except PeerwatchError as exc:
        return _service_page(request, me, sid, errors_of(exc), status_of(exc), fields)
    return redirect(f"/plans/{pid}?done=open")


def _milestones(fields: dict[str, str]) -> list[tuple[str, Any]]:
    out = []
    for n in range(1, MILESTONE_ROWS + 1):
        text, due = opt(fields, f"milestone_{n}"), opt_date(fields, f"milestone_{n}_due", f"milestone {n}'s date")
        if text is None and due is None:
            continue
        if text is None or due is None:
            raise InvalidInput(f"milestone {n}: give both its text and its date")
        out.append((text, due))
    return out


@router.post("/plans/{plan_id}/actions")
async def add_action(request: Request, plan_id: str, me: Me) -> Response:
    def run(s: Any, f: dict[str, str], version: int) -> None:
        plans.add_action(
            s,
            me.principal,
            path_id(plan_id),
            need(f, "text", "the action"),
            need(f, "owner_name", "the action's owner"),
            opt(f, "owner_role") or "service-lead",
            flag(f, "interim"),
            opt_int(f, "recommendation_id", "the recommendation"),
            _milestones(f),
            version=version,
            clock=me.clock,
        )

    return await _do(request, me, plan_id, "add_action", run)


@router.post("/plans/{plan_id}/actions/{action_id}/remove")
async def remove_action(request: Request, plan_id: str, action_id: str, me: Me) -> Response:
    def run(s: Any, f: dict[str, str], version: int) -> None:
        plans.remove_action(s, me.principal, path_id(plan_id), path_id(action_id), version=version, clock=me.clock)

    return await _do(request, me, plan_id, "remove_action", run)


@router.post("/plans/{plan_id}/actions/{action_id}/milestones")
async def add_milestone(request: Request, plan_id: str, action_id: str, me: Me) -> Response:
    def run(s: Any, f: dict[str, str], version: int) -> None:
        plans.add_milestone(
            s,
            me.principal,
            path_id(plan_id),
            path_id(action_id),
            need(f, "text", "the milestone"),
            need_date(f, "due_on", "the milestone's date"),
            version=version,
            clock=me.clock,
        )

    return await _do(request, me, plan_id, "add_milestone", run)


@router.post("/plans/{plan_id}/actions/{action_id}/complete")
async def complete_action(request: Request, plan_id: str, action_id: str, me: Me) -> Response:
    """Complete an action with its evidence: a statement and files (multipart ``files``)."""
    try:
        await form(request, me)  # the CSRF token first: no file is read for a forged form
        files = await _files(request)
    finally:
        for value in (await posted(request)).getlist("files"):
            if isinstance(value, UploadFile):
                await value.close()

    def run(s: Any, f: dict[str, str], version: int) -> None:
        plans.complete_action(
            s,
            me.principal,
            path_id(plan_id),
            path_id(action_id),
            f.get("evidence", ""),
            files,
            version=version,
            clock=me.clock,
        )

    return await _do(request, me, plan_id, "complete_action", run)


async def _files(request: Request) -> list[tuple[str, bytes]]:
    """The files sent (web.deps.uploaded: counted and sized before read; the use case judges them)."""
    return await uploaded(request, "files")


@router.post("/plans/{plan_id}/milestones/{milestone_id}/done")
async def milestone_done(request: Request, plan_id: str, milestone_id: str, me: Me) -> Response:
    def run(s: Any, f: dict[str, str], version: int) -> None:
        plans.mark_milestone_done(
            s, me.principal, path_id(plan_id), path_id(milestone_id), version=version, clock=me.clock
        )

    return await _do(request, me, plan_id, "mark_milestone_done", run)


@router.post("/plans/{plan_id}/steps/{trigger}")
async def step(request: Request, plan_id: str, trigger: str, me: Me) -> Response:
    """Submit, agree, return with comments, record an update, complete, carry forward."""
    if trigger not in plans.PLAN_TRIGGERS:
        raise NotFound(f"a plan has no step {trigger!r}")

    def run(s: Any, f: dict[str, str], version: int) -> None:
        plans.act(s, me.principal, path_id(plan_id), trigger, note=opt(f, "note"), version=version, clock=me.clock)

    return await _do(request, me, plan_id, trigger, run)
