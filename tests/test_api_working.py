"""/api/v1's working pages on an item (web/api/working.py): a visit's panel, a report's draft and
its factual accuracy decisions, through TestClient with real tokens. Each read and step as the
right role; refused (a Trust's people 403, another network's 404, a stale version 409, a hostile
body 422) with nothing changed; and the same result as the page's form (web/routes/reports.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, Visit
from models.tables import AccuracyItem, PanelMember, Report, Reviewer
from states import engine
from states.clock import SystemClock
from states.roles import AUDITOR, NETWORK_MANAGER, NETWORK_OFFICE, REGIONAL_LEAD
from tests import support_accounts, support_reports
from tests.factories import MRH, person
from tests.support_web import csrf_of, sign_in_as
from tests.test_api import TestClient, auth, events, network_id, refused, token_for
from web.app import create_app


@pytest.fixture
def client(db_url: str, db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as c:
        yield c


def staff(db: Engine, name: str, role: str, code: str = "WMTN") -> tuple[str, Any]:
    p = support_accounts.account(db, name, (role,), scope="network", scope_id=network_id(db, code))
    return token_for(db, p), p


def visit(db: Engine, services: dict[str, int]) -> int:
    office = support_accounts.account(db, "Visit Maker", (NETWORK_OFFICE,))
    with Session(db) as s:
        out = engine.create(s, "visit", Visit(service_id=services[MRH], state="new"), "propose", principal=office,
                            clock=SystemClock())  # fmt: skip
        s.commit()
        assert out.row.id is not None
        return out.row.id


def trail(db: Engine, kind: str, item_id: int) -> list[tuple[str, int | None]]:
    with Session(db) as s:
        q = select(AuditEvent).where(AuditEvent.kind == kind, AuditEvent.item_id == item_id)
        return [(e.trigger, e.user_id) for e in s.exec(q.order_by(col(AuditEvent.id)))]


def carys(db: Engine) -> int:
    with Session(db) as s:
        found = s.exec(select(Reviewer.id).where(Reviewer.name == "Ms Carys Holt")).one()
        return int(found)


def panel_rows(db: Engine, visit_id: int) -> list[tuple[int, bool, date | None]]:
    with Session(db) as s:
        q = select(PanelMember).where(PanelMember.visit_id == visit_id)
        return [(m.reviewer_id, m.observer, m.declared_on) for m in s.exec(q)]


def test_a_panel_is_read_and_managed_as_on_its_page(
    client: TestClient, db_url: str, db: Engine, services: dict[str, int]
) -> None:
    vid, page_vid = visit(db, services), visit(db, services)
    token, office = staff(db, "Olu Office", NETWORK_OFFICE)
    r = client.get(f"/api/v1/visits/{vid}/panel", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["members"] == [] and carys(db) in [c["id"] for c in body["candidates"]]
    assert "add_panel_member" in body["may"] and body["version"] >= 1
    r = client.post(f"/api/v1/visits/{vid}/panel/add_panel_member", headers=auth(token),
                    json={"reviewer_id": carys(db), "version": body["version"]})  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["trigger"] == "add_panel_member" and out["version"] == body["version"] + 1
    # the page's form on another visit: the same panel row, the same audited trigger
    page = sign_in_as(db_url, db, office)
    html = page.get(f"/visits/{page_vid}/panel").text
    r = page.post(f"/visits/{page_vid}/panel/add_panel_member",
                  data={"csrf_token": csrf_of(html), "reviewer_id": str(carys(db))}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    assert panel_rows(db, vid) == panel_rows(db, page_vid) == [(carys(db), False, None)]
    assert trail(db, "visit", vid)[1:] == trail(db, "visit", page_vid)[1:] == [("add_panel_member", office.user_id)]
    # a stale version: 409, nothing changed
    n = events(db)
    stale = client.post(f"/api/v1/visits/{vid}/panel/record_declaration", headers=auth(token),
                        json={"reviewer_id": carys(db), "version": body["version"]})  # fmt: skip
    refused(stale, 409)
    assert panel_rows(db, vid) == [(carys(db), False, None)] and events(db) == n
    r = client.post(f"/api/v1/visits/{vid}/panel/record_declaration", headers=auth(token),
                    json={"reviewer_id": carys(db), "conflicts": ""})  # fmt: skip
    assert r.status_code == 200, r.text
    assert panel_rows(db, vid)[0][2] is not None
    listed = client.get(f"/api/v1/visits/{vid}/panel", headers=auth(token)).json()
    assert [m["reviewer_id"] for m in listed["members"]] == [carys(db)] and listed["members"][0]["declared_on"]


def test_a_panel_refused_changes_nothing(client: TestClient, db: Engine, services: dict[str, int]) -> None:
    vid = visit(db, services)
    token, _ = staff(db, "Olu Office", NETWORK_OFFICE)
    mersey, _ = staff(db, "Mo Mersey", NETWORK_OFFICE, "CMMTN")
    auditor, _ = staff(db, "Aud Itor", AUDITOR)
    lead = support_accounts.account(db, "Sal Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    trust = token_for(db, lead)
    n, before = events(db), panel_rows(db, vid)
    add = {"reviewer_id": carys(db)}
    url = f"/api/v1/visits/{vid}/panel"
    hidden = refused(client.get(url, headers=auth(mersey)), 404)
    assert hidden.replace(str(vid), "N") == refused(client.get(
        "/api/v1/visits/987654/panel", headers=auth(mersey)), 404).replace("987654", "N")  # fmt: skip
    refused(client.post(f"{url}/add_panel_member", headers=auth(mersey), json=add), 404)
    assert "portal" in refused(client.get(url, headers=auth(trust)), 403)
    refused(client.post(f"{url}/add_panel_member", headers=auth(trust), json=add), 403)
    assert client.get(url, headers=auth(auditor)).json()["may"] == []  # reads, takes no step
    refused(client.post(f"{url}/add_panel_member", headers=auth(auditor), json=add), 403)
    refused(client.post(f"{url}/add_panel_member", headers=auth(token), json={**add, "observer": "maybe"}), 422)
    refused(client.post(f"{url}/add_panel_member", headers=auth(token), json={**add, "trigger": "close"}), 422)
    refused(client.post(f"{url}/add_panel_member", headers=auth(token), json={"reviewer_id": 2**31}), 422)
    refused(client.post(f"{url}/give_feedback", headers=auth(token), json={}), 422)  # what was found is required
    refused(client.post(f"{url}/close", headers=auth(token), json=add), 404)  # not a step of this page
    assert "needs a reason" in refused(client.post(f"{url}/remove_panel_member", headers=auth(token), json=add), 422)
    r = client.post(f"{url}/remove_panel_member", headers=auth(token), json={**add, "note": "unwell"})
    assert "not on" in refused(r, 400)  # the step's own rule: nobody to remove
    assert events(db) == n and panel_rows(db, vid) == before


def test_a_report_is_drafted_and_its_inaccuracies_decided_by_two_people(
    client: TestClient, db_url: str, db: Engine, services: dict[str, int]
) -> None:
    with Session(db, expire_on_commit=False) as s:
        report = support_reports.drafting(s, services, date(2026, 11, 12))
        page_report = support_reports.drafting(s, services, date(2026, 11, 12))
    token, office = staff(db, "Olu Office", NETWORK_OFFICE)
    r = client.get(f"/api/v1/reports/{report.id}/draft", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["compliance"] == [] and set(r.json()["may"]) == {"add_standard", "add_positive"}
    standard = {"ref": "1.2", "status": "Partially Met", "comment": "no rota"}
    r = client.post(f"/api/v1/reports/{report.id}/draft/add_standard", headers=auth(token), json=standard)
    assert r.status_code == 200, r.text
    page = sign_in_as(db_url, db, office)
    html = page.get(f"/reports/{page_report.id}/draft").text
    r = page.post(f"/reports/{page_report.id}/draft/add_standard", data={"csrf_token": csrf_of(html), **standard},
                  follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    with Session(db) as s:
        mine, theirs = s.get(Report, report.id), s.get(Report, page_report.id)
        assert mine is not None and theirs is not None
        assert mine.compliance == theirs.compliance and mine.compliance[0]["status"] == "Partially Met"
    assert trail(db, "report", report.id)[1:] == trail(db, "report", page_report.id)[1:]
    n = events(db)
    refused(client.post(f"/api/v1/reports/{report.id}/draft/add_standard", headers=auth(token),
                        json={**standard, "status": "Brilliant"}), 422)  # fmt: skip
    refused(client.post(f"/api/v1/reports/{report.id}/draft/add_positive", headers=auth(token), json={"text": ""}), 422)
    assert events(db) == n
    r = client.post(f"/api/v1/reports/{report.id}/draft/add_positive", headers=auth(token),
                    json={"text": "A strong trauma governance meeting"})  # fmt: skip
    assert r.status_code == 200 and client.get(f"/api/v1/reports/{report.id}/draft", headers=auth(token)).json()[
        "positives"] == ["A strong trauma governance meeting"]  # fmt: skip
    with Session(db) as s:
        engine.fire(s, "report", report.id, "send_for_accuracy_check", principal=person("tester", NETWORK_OFFICE),
                    clock=SystemClock())  # fmt: skip
        s.commit()
    r = client.post(f"/api/v1/reports/{report.id}/accuracy/record_inaccuracy", headers=auth(token),
                    json={"text": "Two consultants, not one"})  # fmt: skip
    assert r.status_code == 200, r.text
    with Session(db) as s:
        item = s.exec(select(AccuracyItem).where(AccuracyItem.report_id == report.id)).one()
    nm, _ = staff(db, "Nia Manager", NETWORK_MANAGER)
    rl, _ = staff(db, "Rhys Lead", REGIONAL_LEAD)
    decide = f"/api/v1/reports/{report.id}/accuracy/decide_inaccuracy"
    assert "decide_inaccuracy" in client.get(f"/api/v1/reports/{report.id}/accuracy", headers=auth(nm)).json()["may"]
    refused(client.post(decide, headers=auth(nm), json={"item_id": item.id, "decision": "maybe"}), 422)
    r = client.post(decide, headers=auth(nm), json={"item_id": item.id, "decision": "accepted"})
    assert r.status_code == 200, r.text
    n = events(db)
    refused(client.post(decide, headers=auth(nm), json={"item_id": item.id, "decision": "rejected"}), 400)  # twice
    assert events(db) == n
    r = client.post(decide, headers=auth(rl), json={"item_id": item.id, "decision": "accepted"})
    assert r.status_code == 200, r.text
    [row] = client.get(f"/api/v1/reports/{report.id}/accuracy", headers=auth(rl)).json()["items"]
    assert (row["manager"], row["manager_actor"], row["lead"], row["lead_actor"], row["outcome"]) == (
        "accepted", "Nia Manager", "accepted", "Rhys Lead", "accepted")  # fmt: skip
