"""The action-plan pages (web/routes/plans.py): a service lead opens and builds a plan, the
Network Manager returns and agrees it, the service completes an action with a file; another
Trust's people get 404; forms need their CSRF token and the plan's version."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models.portal import ActionPlan, PlanAction, Upload
from models.tables import Service
from states.clock import FixedClock
from states.services.recommendations import add_recommendation
from tests.factories import MRH
from tests.support_accounts import account
from tests.support_reports import drafting
from tests.support_web import csrf_of, signed_in

OTHER = "Severnside Trauma Unit"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _version(html: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', html) or re.search(r"</strong> version (\d+)", html)
    assert found is not None, "no version on the page"
    return found.group(1)


@pytest.fixture
def world(db_url: str, db: Engine, services: dict[str, int]) -> dict[str, object]:
    svc = services[MRH]
    with Session(db, expire_on_commit=False) as s:
        row = s.get(Service, svc)
        assert row is not None
        net = row.network_id
        report = drafting(s, services)
        office = account(db, "Olly Office", ("network-office",), scope="network", scope_id=net)
        rec = add_recommendation(
            s, office, report.id, "Appoint a trauma coordinator", "T-14", clock=FixedClock(date.today())
        )
        s.commit()
    lead, _ = signed_in(db_url, db, "Sam Lead", ("service-lead",), scope="service", scope_id=svc)
    nm, _ = signed_in(db_url, db, "Nina Manager", ("network-manager",), scope="network", scope_id=net)
    other, _ = signed_in(db_url, db, "Otto Other", ("service-lead",), scope="service", scope_id=services[OTHER])
    commissioner, _ = signed_in(
        db_url, db, "Cass Commissioner", ("responsible-commissioner",), scope="service", scope_id=svc
    )
    return {
        "svc": svc,
        "report": report.id,
        "rec": rec.id,
        "lead": lead,
        "nm": nm,
        "other": other,
        "commissioner": commissioner,
    }


def _post(client, url: str, data: dict[str, str], page_url: str, **kw):  # type: ignore[no-untyped-def]
    html = client.get(page_url).text
    return client.post(
        url, data={"csrf_token": csrf_of(html), "version": _version(html), **data}, follow_redirects=False, **kw
    )


def test_a_plan_through_the_pages(world: dict[str, object], db: Engine) -> None:
    lead, nm, svc = world["lead"], world["nm"], world["svc"]
    listing = lead.get(f"/services/{svc}/plans")  # type: ignore[attr-defined]
    assert listing.status_code == 200 and "Open an action plan" in listing.text
    made = lead.post(  # type: ignore[attr-defined]
        f"/services/{svc}/plans",
        data={"csrf_token": csrf_of(listing.text), "programme_year": "2026", "report_id": str(world["report"])},
        follow_redirects=False,
    )
    assert made.status_code == 303
    url = made.headers["location"].split("?")[0]
    page = lead.get(made.headers["location"])  # type: ignore[attr-defined]
    assert "Plan opened." in page.text and "Appoint a trauma coordinator" in page.text and "draft" in page.text
    assert lead.get(url + "?done=agree").text.count("Plan agreed") == 0  # a crafted link tells nothing  # type: ignore[attr-defined]

    due = date.today() + timedelta(days=40)
    added = _post(
        lead, url + "/actions",
        {"text": "Recruit a coordinator", "owner_name": "Dr Ann Owner", "owner_role": "service-lead",
         "recommendation_id": str(world["rec"]), "milestone_1": "Post advertised", "milestone_1_due": due.isoformat()},
        url,
    )  # fmt: skip
    assert added.status_code == 303, added.text
    page = lead.get(url).text  # type: ignore[attr-defined]
    assert "Recruit a coordinator" in page and "Dr Ann Owner (Service Lead)" in page and due.isoformat() in page
    assert "answered" in page

    # a stale form is refused (409) and adds nothing; no CSRF token is 403
    stale = lead.post(  # type: ignore[attr-defined]
        url + "/actions",
        data={"csrf_token": csrf_of(page), "version": "1", "text": "Late", "owner_name": "Dr B"},
        follow_redirects=False,
    )
    assert stale.status_code == 409 and "changed since you read it" in stale.text
    forged = lead.post(url + "/actions", data={"version": _version(page), "text": "X", "owner_name": "Y"})  # type: ignore[attr-defined]
    assert forged.status_code == 403
    with Session(db) as s:
        assert len(s.exec(select(PlanAction)).all()) == 1

    # the network cannot submit it; the service does; the Network Manager returns it with comments
    assert "step-submit" not in nm.get(url).text  # type: ignore[attr-defined]
    refused = _post(nm, url + "/steps/submit", {}, url)
    assert refused.status_code == 403
    assert _post(lead, url + "/steps/submit", {}, url).status_code == 303
    assert "step-agree" not in lead.get(url).text  # type: ignore[attr-defined]
    empty = _post(nm, url + "/steps/return_plan", {"note": "  "}, url)
    assert empty.status_code == 422 and "needs a reason" in empty.text
    assert _post(nm, url + "/steps/return_plan", {"note": "Give the post a start date"}, url).status_code == 303
    page = lead.get(url).text  # type: ignore[attr-defined]
    assert "Give the post a start date" in page and "returned" in page
    assert _post(lead, url + "/steps/submit", {}, url).status_code == 303
    assert _post(nm, url + "/steps/agree", {}, url).status_code == 303
    page = lead.get(url).text  # type: ignore[attr-defined]
    assert "record the quarterly progress update" in page and "agreed" in page

    # an update, then the action completed with a file
    assert _post(lead, url + "/steps/record_update", {"note": "Interviews held"}, url).status_code == 303
    with Session(db) as s:
        action = s.exec(select(PlanAction)).one()
    html = lead.get(url).text  # type: ignore[attr-defined]
    bad = lead.post(  # type: ignore[attr-defined]
        f"{url}/actions/{action.id}/complete",
        data={"csrf_token": csrf_of(html), "version": _version(html), "evidence": "Contract"},
        files=[("files", ("contract.pdf", b"MZ\x90\x00\x00", "application/pdf"))],
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "contract.pdf" in bad.text
    done = lead.post(  # type: ignore[attr-defined]
        f"{url}/actions/{action.id}/complete",
        data={"csrf_token": csrf_of(html), "version": _version(html), "evidence": "Signed contract attached"},
        files=[("files", ("contract.pdf", PDF, "application/pdf"))],
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    page = lead.get(done.headers["location"]).text  # type: ignore[attr-defined]
    assert "Action completed." in page and "Signed contract attached" in page and "contract.pdf</a> (version 1" in page
    with Session(db) as s:
        up = s.exec(select(Upload)).one()
        assert up.item_kind == "action_plan" and f'href="/uploads/{up.id}"' in page
    got = lead.get(f"/uploads/{up.id}")  # type: ignore[attr-defined]
    assert got.status_code == 200 and got.content == PDF
    assert world["other"].get(f"/uploads/{up.id}").status_code == 404  # type: ignore[attr-defined]
    assert _post(lead, url + "/steps/complete", {}, url).status_code == 303
    with Session(db) as s:
        assert s.exec(select(ActionPlan)).one().state == "completed"


def test_another_trust_gets_404_and_the_commissioner_only_reads(world: dict[str, object]) -> None:
    lead, other, svc = world["lead"], world["other"], world["svc"]
    listing = lead.get(f"/services/{svc}/plans").text  # type: ignore[attr-defined]
    made = lead.post(  # type: ignore[attr-defined]
        f"/services/{svc}/plans",
        data={"csrf_token": csrf_of(listing), "programme_year": "2026"},
        follow_redirects=False,
    )
    url = made.headers["location"].split("?")[0]
    page = lead.get(url).text  # type: ignore[attr-defined]
    assert other.get(url).status_code == 404  # type: ignore[attr-defined]
    assert other.get(f"/services/{svc}/plans").status_code == 404  # type: ignore[attr-defined]
    token = csrf_of(other.get("/").text)  # type: ignore[attr-defined]
    for path in ("/actions", "/steps/submit", "/actions/1/remove", "/milestones/1/done"):
        r = other.post(
            url + path, data={"csrf_token": token, "version": _version(page), "text": "x", "owner_name": "y"}
        )  # type: ignore[attr-defined]
        assert r.status_code == 404, path
    r = other.post(f"/services/{svc}/plans", data={"csrf_token": token, "programme_year": "2027"})  # type: ignore[attr-defined]
    assert r.status_code == 404
    view = world["commissioner"].get(url)  # type: ignore[attr-defined]
    assert view.status_code == 200 and "<form" not in view.text.split("<main", 1)[-1]
    for bad in ("/plans/abc", "/plans/99999999999999999999", "/plans/0", "/services/x/plans"):
        assert lead.get(bad).status_code == 404, bad  # type: ignore[attr-defined]
    assert lead.post(url + "/steps/open", data={"csrf_token": token}).status_code == 404  # type: ignore[attr-defined]


def test_a_refused_plan_shows_why_and_keeps_what_was_typed(world: dict[str, object]) -> None:
    lead, svc = world["lead"], world["svc"]
    listing = lead.get(f"/services/{svc}/plans").text  # type: ignore[attr-defined]
    r = lead.post(  # type: ignore[attr-defined]
        f"/services/{svc}/plans",
        data={"csrf_token": csrf_of(listing), "programme_year": "nineteen", "title": "Kept <b>title</b>"},
    )
    assert r.status_code == 422 and "whole number" in r.text and "Kept &lt;b&gt;title&lt;/b&gt;" in r.text
    r = lead.post(f"/services/{svc}/plans", data={"csrf_token": csrf_of(listing), "programme_year": "1999"})  # type: ignore[attr-defined]
    assert r.status_code == 422 and "2000 to 2099" in r.text
