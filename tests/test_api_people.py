"""/api/v1's contacts and reviewers, administration of accounts and the portal's use cases
(web/api/directory.py, admin.py, portal.py) through TestClient with real tokens: each as the
right role; refused (wrong role 403, another network's 404, a hostile body 422) with nothing
changed; and the same audited change as the page's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, Contact, Reviewer, Risk
from models.accounts import PendingChange, RoleGrant, User
from models.portal import RiskResponse
from models.tables import Network
from states.clock import SystemClock, local_date
from states.roles import ADMINISTRATOR, AUDITOR, NETWORK_MANAGER, NETWORK_OFFICE, REGIONAL_LEAD
from states.services import acting, intake
from tests import support_accounts
from tests.factories import MRH
from tests.support_portal_world import contact_of, from_contact
from tests.support_web import csrf_of, sign_in_as
from tests.test_api import TestClient, auth, events, network_id, refused, token_for
from web.app import create_app

TODAY = local_date(SystemClock().now())


@pytest.fixture
def client(db_url: str, db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as c:
        yield c


def staff(db: Engine, name: str, role: str, code: str | None = "WMTN") -> tuple[str, Any]:
    scope = {"scope": "network", "scope_id": network_id(db, code)} if code else {}
    p = support_accounts.account(db, name, (role,), **scope)
    return token_for(db, p), p


def contact(db: Engine, role: str, code: str = "WMTN") -> Contact:
    with Session(db) as s:
        net = s.exec(select(Network).where(Network.code == code)).one()
        return s.exec(select(Contact).where(Contact.role == role, Contact.network_id == net.id)).one()


def table(db: Engine, model: Any) -> list[Any]:
    with Session(db) as s:
        return [r.model_dump() for r in s.exec(select(model).order_by(col(model.id)))]


def trail(db: Engine, kind: str) -> list[tuple[int, str, int | None]]:
    with Session(db) as s:
        q = select(AuditEvent).where(AuditEvent.kind == kind).order_by(col(AuditEvent.id))
        return [(e.item_id, e.trigger, e.user_id) for e in s.exec(q)]


# ---------------------------------------------------------------- contacts


def test_contacts_in_scope_are_listed_and_edited_from_a_date(client: TestClient, db: Engine, services: Any) -> None:
    token, office = staff(db, "Wes Office", NETWORK_OFFICE)
    nm, mersey = contact(db, "network-manager"), contact(db, "network-manager", "CMMTN")
    r = client.get("/api/v1/contacts?all=true&page=1", headers=auth(token))
    assert r.status_code == 200, r.text
    ids = [c["id"] for c in r.json()["rows"]]
    assert nm.id in ids and mersey.id not in ids and r.json()["total"] >= len(ids)
    found = client.get("/api/v1/contacts", headers=auth(token), params={"q": nm.email.upper()}).json()["rows"]
    assert [c["id"] for c in found] == [nm.id]
    r = client.post(f"/api/v1/contacts/{nm.id}/edit", headers=auth(token),
                    json={"email": "new.nm@example.nhs.uk", "effective": TODAY.isoformat()})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["waiting"] is None and body["contact"]["email"] == "new.nm@example.nhs.uk"
    with Session(db) as s:
        new = s.exec(select(Contact).where(Contact.replaces_id == nm.id)).one()
        assert new.id == body["contact"]["id"] and new.valid_from == TODAY
    assert trail(db, "contact") == [(nm.id, "replace_contact", office.user_id),
                                    (new.id, "succeed_contact", office.user_id)]  # fmt: skip
    # refused: another network's contact (404, as a missing one), an auditor, a hostile body; nothing changed
    auditor, _ = staff(db, "Ann Auditor", AUDITOR)
    before, n = table(db, Contact), events(db)
    retire = {"effective": TODAY.isoformat()}
    hidden = refused(client.post(f"/api/v1/contacts/{mersey.id}/retire", headers=auth(token), json=retire), 404)
    absent = refused(client.post("/api/v1/contacts/987654/retire", headers=auth(token), json=retire), 404)
    assert hidden.replace(str(mersey.id), "N") == absent.replace("987654", "N")
    refused(client.post(f"/api/v1/contacts/{new.id}/retire", headers=auth(auditor), json=retire), 403)
    refused(client.post(f"/api/v1/contacts/{new.id}/retire", headers=auth(token), json={}), 422)
    refused(client.post(f"/api/v1/contacts/{new.id}/edit", headers=auth(token),
                        json={"effective": "2026-02-30"}), 422)  # fmt: skip
    refused(client.post("/api/v1/contacts", headers=auth(token), json={"role": "network-office", "name": "Kim",
                                                                       "email": "k@example.nhs.uk", "x": 1}), 422)  # fmt: skip
    refused(client.get("/api/v1/contacts?page=0", headers=auth(token)), 422)
    assert table(db, Contact) == before and events(db) == n
    r = client.post("/api/v1/contacts", headers=auth(token),
                    json={"role": "network-office", "name": "Kim Clerk", "email": "kim.clerk@example.nhs.uk",
                          "network_id": network_id(db, "WMTN")})  # fmt: skip
    assert r.status_code == 201 and r.json()["contact"]["name"] == "Kim Clerk", r.text


def test_an_escalation_address_waits_for_a_second_person_as_on_the_page(
    client: TestClient, db_url: str, db: Engine, services: Any
) -> None:
    cqc = contact(db, "cqc")
    first, first_p = staff(db, "Fay First", NETWORK_MANAGER, None)
    second, second_p = staff(db, "Sid Second", REGIONAL_LEAD, None)
    mersey, _ = staff(db, "Mo Mersey", NETWORK_MANAGER, "CMMTN")
    r = client.post(f"/api/v1/contacts/{cqc.id}/edit", headers=auth(first),
                    json={"email": "cqc.new@example.nhs.uk", "effective": TODAY.isoformat()})  # fmt: skip
    assert r.status_code == 200, r.text
    change = r.json()["waiting"]
    assert change and r.json()["contact"]["id"] == cqc.id and r.json()["contact"]["email"] == cqc.email
    [waiting] = client.get("/api/v1/contacts", headers=auth(first)).json()["waiting"]
    assert (waiting["id"], waiting["mine"], waiting["by"]) == (change, True, "Fay First")
    assert client.get("/api/v1/contacts", headers=auth(mersey)).json()["waiting"] == []
    before, n = table(db, PendingChange), events(db)
    assert "own" in refused(client.post(f"/api/v1/contacts/changes/{change}/confirm", headers=auth(first)), 403)
    refused(client.post(f"/api/v1/contacts/changes/{change}/confirm", headers=auth(mersey)), 404)
    refused(client.post(f"/api/v1/contacts/changes/{change}/confirm", headers=auth(second), json={"n": 1}), 422)
    assert table(db, PendingChange) == before and events(db) == n
    r = client.post(f"/api/v1/contacts/changes/{change}/confirm", headers=auth(second), json={"note": "checked"})
    assert r.status_code == 200, r.text
    assert r.json()["contact"]["email"] == "cqc.new@example.nhs.uk" and r.json()["waiting"] is None
    with Session(db) as s:
        assert s.exec(select(PendingChange)).one().status == "confirmed"
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "contact", AuditEvent.item_id == cqc.id)).one()
        assert ev.user_id == second_p.user_id
    # the page's way, for a second change: proposed by the API, withdrawn on the page, the same audit
    r = client.post(f"/api/v1/contacts/{r.json()['contact']['id']}/retire", headers=auth(first),
                    json={"effective": TODAY.isoformat()})  # fmt: skip
    change = r.json()["waiting"]
    page = sign_in_as(db_url, db, first_p)
    html = page.get("/contacts").text
    assert page.post(f"/contacts/changes/{change}/withdraw", data={"csrf_token": csrf_of(html)},
                     follow_redirects=False).status_code == 303  # fmt: skip
    assert "already withdrawn" in refused(
        client.post(f"/api/v1/contacts/changes/{change}/withdraw", headers=auth(first)), 422
    )
    assert trail(db, "pending_change")[-1][1:] == ("withdraw", first_p.user_id)


def test_a_trusts_contact_is_invited_by_the_network_office(client: TestClient, db: Engine, services: Any) -> None:
    token, _ = staff(db, "Olu Office", NETWORK_OFFICE)
    lead = contact_of(db, "service-lead", service_id=services[MRH])
    trust = token_for(db, from_contact(db, lead, "service", services[MRH]))
    n = events(db)
    refused(client.post(f"/api/v1/contacts/{lead}/invite", headers=auth(trust)), 403)  # the network's, not the Trust's
    assert events(db) == n
    r = client.post(f"/api/v1/contacts/{lead}/invite", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contact_id"] == lead and body["role"] == "service-lead" and body["scope"] == "service"
    with Session(db) as s:
        assert s.get(User, body["user_id"]) is not None
        assert s.exec(select(AuditEvent).where(AuditEvent.kind == "account", AuditEvent.trigger == "invite")).one()


# ---------------------------------------------------------------- reviewers


def test_reviewers_are_added_edited_and_retired(client: TestClient, db: Engine, services: Any) -> None:
    token, _ = staff(db, "Olu Office", NETWORK_OFFICE)
    mersey, _ = staff(db, "Mo Mersey", NETWORK_OFFICE, "CMMTN")
    r = client.post("/api/v1/reviewers", headers=auth(token),
                    json={"name": "Dr Lee Park", "email": "lee.park@example.nhs.uk", "discipline": "clinician",
                          "network": "WMTN", "trained": True})  # fmt: skip
    assert r.status_code == 201, r.text
    lee = r.json()["id"]
    assert r.json()["network_id"] == network_id(db, "WMTN") and r.json()["trained"] is True
    listed = client.get("/api/v1/reviewers", headers=auth(token), params={"q": "lee park"}).json()["rows"]
    assert [(x["id"], x["may_edit"]) for x in listed] == [(lee, True)]
    assert client.get("/api/v1/reviewers", headers=auth(mersey), params={"q": "lee park"}).json()["rows"] == []
    before, n = table(db, Reviewer), events(db)
    refused(client.post(f"/api/v1/reviewers/{lee}/edit", headers=auth(mersey), json={"discipline": "nurse"}), 404)
    refused(client.post(f"/api/v1/reviewers/{lee}/edit", headers=auth(token), json={"discipline": "astrologer"}), 422)
    refused(client.post("/api/v1/reviewers", headers=auth(token), json={"name": "X", "email": "x@example.nhs.uk"}), 422)
    assert table(db, Reviewer) == before and events(db) == n
    r = client.post(f"/api/v1/reviewers/{lee}/edit", headers=auth(token), json={"discipline": "nurse"})
    assert r.status_code == 200 and r.json()["discipline"] == "nurse", r.text
    r = client.post(f"/api/v1/reviewers/{lee}/retire", headers=auth(token), json={"effective": TODAY.isoformat()})
    assert r.status_code == 200 and r.json()["retired_on"] == TODAY.isoformat(), r.text
    assert [t for i, t, _ in trail(db, "reviewer") if i == lee] == ["add_reviewer", "edit_reviewer", "retire_reviewer"]


# ---------------------------------------------------------------- administration


def test_an_administrator_manages_accounts_as_on_the_page(
    client: TestClient, db_url: str, db: Engine, services: Any
) -> None:
    token, admin = staff(db, "Ada Admin", ADMINISTRATOR, None)
    r = client.post("/api/v1/users", headers=auth(token), json={"name": "Nel New", "email": "Nel.New@example.nhs.uk"})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert r.json()["email"] == "nel.new@example.nhs.uk" and r.json()["grants"] == []
    wmtn = network_id(db, "WMTN")
    r = client.post(f"/api/v1/users/{uid}/grants", headers=auth(token),
                    json={"role": NETWORK_OFFICE, "scope": "network", "scope_id": wmtn})  # fmt: skip
    assert r.status_code == 200, r.text
    [grant] = r.json()["grants"]
    assert (grant["role"], grant["scope"], grant["scope_id"]) == (NETWORK_OFFICE, "network", wmtn)
    assert f"{NETWORK_OFFICE}@network:{wmtn}" in next(
        u for u in client.get("/api/v1/users", headers=auth(token)).json()["users"] if u["id"] == uid)["roles"]  # fmt: skip
    # refusals, nothing changed: not an administrator, another account's grant, a hostile body, a missing account
    office, _ = staff(db, "Olu Office", NETWORK_OFFICE)
    other = support_accounts.account(db, "Oth Er", (NETWORK_OFFICE,))
    with Session(db) as s:
        other_grant = s.exec(select(RoleGrant.id).where(RoleGrant.user_id == other.user_id)).one()
    before, n = table(db, RoleGrant), events(db)
    assert "administrator" in refused(client.get("/api/v1/users", headers=auth(office)), 403)
    refused(client.get(f"/api/v1/users/{uid}", headers=auth(office)), 403)
    refused(client.post(f"/api/v1/users/{uid}/disable", headers=auth(office)), 403)
    refused(client.post(f"/api/v1/users/{uid}/grants", headers=auth(office), json={"role": AUDITOR}), 403)
    assert "not one of this account's" in refused(
        client.post(f"/api/v1/users/{uid}/grants/revoke", headers=auth(token), json={"grant": other_grant}), 422
    )
    refused(client.post(f"/api/v1/users/{uid}/grants", headers=auth(token), json={"role": AUDITOR, "scope": "x"}), 422)
    refused(client.post("/api/v1/users/987654/disable", headers=auth(token)), 404)
    refused(client.post(f"/api/v1/users/{admin.user_id}/disable", headers=auth(token)), 422)  # not oneself
    assert table(db, RoleGrant) == before and events(db) == n
    r = client.post(f"/api/v1/users/{uid}/grants/revoke", headers=auth(token), json={"grant": grant["id"]})
    assert r.status_code == 200 and r.json()["grants"][0]["revoked_at"], r.text
    r = client.post(f"/api/v1/users/{uid}/disable", headers=auth(token), json={"note": "left"})
    assert r.status_code == 200 and r.json()["status"] == "disabled", r.text
    r = client.post(f"/api/v1/users/{uid}/enable", headers=auth(token))
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    # the page disables the other account: the same audited change
    page = sign_in_as(db_url, db, admin)
    html = page.get(f"/admin/users/{other.user_id}").text
    assert page.post(f"/admin/users/{other.user_id}/disable", data={"csrf_token": csrf_of(html)},
                     follow_redirects=False).status_code == 303  # fmt: skip
    mine = [(t, u) for i, t, u in trail(db, "account") if i == uid]
    theirs = [(t, u) for i, t, u in trail(db, "account") if i == other.user_id]
    assert mine == [(t, admin.user_id) for t in ("add", "grant", "revoke", "disable", "enable")]
    assert theirs[-1] == mine[3]


def test_no_token_is_made_through_the_api(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    assert not [p for p in doc["paths"] if "token" in p], "a token does not mint tokens"


# ---------------------------------------------------------------- the portal


def _awaiting(db: Engine, services: Any) -> int:
    boss = support_accounts.account(db, f"Boss {events(db)}", (NETWORK_MANAGER,))
    with Session(db, expire_on_commit=False) as s:
        made = intake.raise_risk(
            s, service=services[MRH], level="SC", title="Portal API risk", standard=None,
            visit_date=TODAY - timedelta(days=1), identified=None, impact=None, likelihood=None,
            doctors_in_training=False, principal=boss, clock=SystemClock(), note=None,
        )  # fmt: skip
        s.commit()
        rid = made.row.id
    assert rid is not None
    acting.fire(db, boss, SystemClock(), "risk", rid, "send_formal_notification")
    return rid


def test_the_service_lead_reads_what_is_asked_and_responds_in_text(
    client: TestClient, db: Engine, services: Any
) -> None:
    risk_id = _awaiting(db, services)
    lead = from_contact(db, contact_of(db, "service-lead", service_id=services[MRH]), "service", services[MRH])
    token = token_for(db, lead)
    r = client.get("/api/v1/portal", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["has_portal_role"] is True and r.json()["services"] == 1 and "Portal API risk" in r.text
    with Session(db) as s:
        version = s.get(Risk, risk_id).version  # type: ignore[union-attr]
    nm, _ = staff(db, "Nia Manager", NETWORK_MANAGER)
    n = events(db)
    url = f"/api/v1/risks/{risk_id}/responses"
    refused(client.post(url, headers=auth(nm), json={"text": "for them", "version": version}), 403)
    refused(client.post(url, headers=auth(token), json={"text": "stale", "version": version - 1}), 409)
    refused(client.post(url, headers=auth(token), json={"text": "", "version": version}), 422)
    refused(client.post(url, headers=auth(token), json={"text": "x", "version": version, "files": []}), 422)
    assert events(db) == n
    r = client.post(
        url, headers=auth(token), json={"text": "Interim: a second consultant on call.", "version": version}
    )
    assert r.status_code == 201, r.text
    assert r.json()["number"] == 1 and r.json()["submitted_role"] == "service-lead"
    with Session(db) as s:
        [row] = s.exec(select(RiskResponse).where(RiskResponse.risk_id == risk_id)).all()
        assert row.text == "Interim: a second consultant on call."
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "risk", AuditEvent.item_id == risk_id)
                    .order_by(col(AuditEvent.id).desc())).first()  # fmt: skip
        assert ev is not None and ev.trigger == "submit_response" and ev.user_id == lead.user_id
        assert s.exec(select(func.count()).select_from(RiskResponse)).one() == 1
