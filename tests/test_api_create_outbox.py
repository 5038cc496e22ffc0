"""/api/v1's creating (a visit proposed, a complaint received) and the outbox's retry and settle
(web/api/create.py, web/api/outbox.py) through TestClient with real tokens: each as the right
role, each refused (wrong role 403, another network's 404, a hostile body 422) with nothing
changed, and the same result as the page's (the same state and audit event)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, OutboxMessage, Visit
from models.tables import IN_DOUBT, Complaint, OutboxStatus
from states.clock import SystemClock, local_date
from states.roles import AUDITOR, NETWORK_MANAGER, NETWORK_OFFICE, OPERATOR
from states.services import acting, intake
from tests import support_accounts
from tests.factories import MRH
from tests.support_web import csrf_of, sign_in_as
from tests.test_api import MERSEY_MTC, TestClient, auth, events, network_id, refused, token_for
from web.app import create_app

TODAY = local_date(SystemClock().now())


@pytest.fixture
def client(db_url: str, db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as c:
        yield c


def staff(db: Engine, name: str, role: str, code: str = "WMTN") -> tuple[str, Any]:
    """A token, and its owner, for a new account holding ``role`` in the network ``code``."""
    p = support_accounts.account(db, name, (role,), scope="network", scope_id=network_id(db, code))
    return token_for(db, p), p


def rows(db: Engine, model: Any) -> list[tuple[Any, ...]]:
    with Session(db) as s:
        return [(r.id, r.state, r.version) for r in s.exec(select(model).order_by(col(model.id)))]


def last_event(db: Engine, kind: str, item_id: int) -> AuditEvent:
    with Session(db) as s:
        found = s.exec(
            select(AuditEvent)
            .where(AuditEvent.kind == kind, AuditEvent.item_id == item_id)
            .order_by(col(AuditEvent.id).desc())
        ).first()
        assert found is not None
        return found


# ---------------------------------------------------------------- a visit proposed


def test_a_network_manager_proposes_a_visit_as_the_page_does(
    client: TestClient, db_url: str, db: Engine, services: dict[str, int]
) -> None:
    token, nm = staff(db, "Nia Manager", NETWORK_MANAGER)
    r = client.post("/api/v1/visits", headers=auth(token), json={"service": services[MRH], "reason": "routine"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "visit" and body["version"] >= 1
    event = last_event(db, "visit", body["id"])
    assert (event.trigger, event.user_id, event.to_state) == ("propose", nm.user_id, body["state"])
    # the page, for another Network Manager: the same state and the same audited trigger
    _, other = staff(db, "Ned Manager", NETWORK_MANAGER)
    page = sign_in_as(db_url, db, other)
    html = page.get("/create/visit").text
    r = page.post("/create/visit", data={"csrf_token": csrf_of(html), "service": str(services[MRH]),
                                         "reason": "routine"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    page_id = int(r.headers["location"].rsplit("/", 1)[-1])
    page_event = last_event(db, "visit", page_id)
    assert (page_event.trigger, page_event.to_state) == (event.trigger, event.to_state)
    assert rows(db, Visit)[-1][1:] == rows(db, Visit)[-2][1:]  # same state and version
    assert event.role == page_event.role == NETWORK_MANAGER


def test_a_visit_refused_changes_nothing(client: TestClient, db: Engine, services: dict[str, int]) -> None:
    token, _ = staff(db, "Nia Manager", NETWORK_MANAGER)
    auditor, _ = staff(db, "Aud Itor", AUDITOR)
    mersey, _ = staff(db, "Mo Mersey", NETWORK_MANAGER, "CMMTN")
    lead = support_accounts.account(db, "Sal Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    trust = token_for(db, lead)
    before, n = rows(db, Visit), events(db)
    body = {"service": services[MRH]}
    assert "may not" in refused(client.post("/api/v1/visits", headers=auth(auditor), json=body), 403)
    assert "network's" in refused(client.post("/api/v1/visits", headers=auth(trust), json=body), 403)
    r = client.post("/api/v1/visits", headers=auth(mersey), json=body)  # another network's service
    refused(r, r.status_code)
    assert r.status_code in (403, 404)
    refused(client.post("/api/v1/visits", headers=auth(token), json={**body, "extra": 1}), 422)
    refused(client.post("/api/v1/visits", headers=auth(token), json={"service": 2**31}), 422)
    refused(client.post("/api/v1/visits", headers=auth(token), json={**body, "reason": "a\x00b"}), 422)
    refused(client.post("/api/v1/visits", headers=auth(token), json={"service": 999_999}), 404)
    refused(client.post("/api/v1/visits", json=body), 401)
    assert rows(db, Visit) == before and events(db) == n


# ---------------------------------------------------------------- a complaint received


COMPLAINT = {"network": "WMTN", "category": "arrangements", "from_name": "Pat Jones",
             "from_email": "pat.jones@example.nhs.uk", "summary": "The visit date moved twice"}  # fmt: skip


def test_the_network_office_receives_a_complaint(client: TestClient, db: Engine, services: dict[str, int]) -> None:
    token, office = staff(db, "Olu Office", NETWORK_OFFICE)
    r = client.post("/api/v1/complaints", headers=auth(token), json=COMPLAINT)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "complaint" and body["deadlines"], body
    with Session(db) as s:
        c = s.get(Complaint, body["id"])
        assert c is not None and c.complainant_name == "Pat Jones" and c.received_on == TODAY
        assert c.owner_role == NETWORK_OFFICE  # routed by its category
    event = last_event(db, "complaint", body["id"])
    assert (event.trigger, event.user_id) == ("receive", office.user_id)


def test_a_complaint_refused_changes_nothing(client: TestClient, db: Engine, services: dict[str, int]) -> None:
    token, _ = staff(db, "Olu Office", NETWORK_OFFICE)
    mersey, _ = staff(db, "Mo Mersey", NETWORK_OFFICE, "CMMTN")
    auditor, _ = staff(db, "Aud Itor", AUDITOR)
    before, n = rows(db, Complaint), events(db)
    url = "/api/v1/complaints"
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    assert "after today" in refused(client.post(url, headers=auth(token), json={**COMPLAINT, "received": tomorrow}),
                                    422)  # fmt: skip
    refused(client.post(url, headers=auth(token), json={**COMPLAINT, "category": "gossip"}), 422)
    refused(client.post(url, headers=auth(token), json={**COMPLAINT, "network": "NOPE"}), 404)
    refused(client.post(url, headers=auth(token), json={k: v for k, v in COMPLAINT.items() if k != "summary"}), 422)
    refused(client.post(url, headers=auth(mersey), json=COMPLAINT), 403)  # network A's: not in B's scope
    refused(client.post(url, headers=auth(auditor), json=COMPLAINT), 403)
    assert rows(db, Complaint) == before and events(db) == n


# ---------------------------------------------------------------- the outbox


def _letter(db: Engine, services: dict[str, int], service: str, status: str, error: str) -> int:
    """A risk at ``service`` formally notified; its first letter set to ``status``."""
    boss = support_accounts.account(db, f"Boss {service[:6]} {status}", (NETWORK_MANAGER,))
    with Session(db, expire_on_commit=False) as s:
        made = intake.raise_risk(
            s, service=services[service], level="SC", title="Outbox test", standard=None, visit_date=TODAY,
            identified=None, impact=None, likelihood=None, doctors_in_training=False, principal=boss,
            clock=SystemClock(), note=None,
        )  # fmt: skip
        s.commit()
        risk_id = made.row.id
    assert risk_id is not None
    acting.fire(db, boss, SystemClock(), "risk", risk_id, "send_formal_notification")
    with Session(db) as s:
        m = s.exec(select(OutboxMessage).where(OutboxMessage.item_id == risk_id, OutboxMessage.kind == "risk")).first()
        assert m is not None and m.id is not None
        m.status, m.last_error = OutboxStatus(status), error
        m.next_attempt_at = datetime(2026, 1, 1, tzinfo=UTC)
        s.add(m)
        s.commit()
        return m.id


def letters(db: Engine) -> list[tuple[Any, ...]]:
    with Session(db) as s:
        return [(m.id, m.status, m.last_error, m.resend_at) for m in s.exec(select(OutboxMessage))]


def test_an_operator_retries_and_settles_letters_as_on_the_page(
    client: TestClient, db_url: str, db: Engine, services: dict[str, int]
) -> None:
    failed = _letter(db, services, MRH, "failed", "550 mailbox unavailable")
    page_failed = _letter(db, services, MRH, "failed", "550 mailbox unavailable")
    doubt = _letter(db, services, MRH, "sending", IN_DOUBT + "the connection dropped after DATA")
    token, op = staff(db, "Ola Operator", OPERATOR)
    r = client.post(f"/api/v1/outbox/{failed}/retry", headers=auth(token))
    assert r.status_code == 200, r.text
    [letter] = r.json()["letters"]
    assert (letter["id"], letter["kind"], letter["status"]) == (failed, "risk", "queued")
    event = last_event(db, "outbox", failed)
    assert (event.trigger, event.user_id, event.to_state) == ("retry", op.user_id, "queued")
    # the page's retry of another failed letter: the same change, the same audited trigger
    page = sign_in_as(db_url, db, op)
    html = page.get("/outbox").text
    assert page.post(f"/outbox/{page_failed}/retry", data={"csrf_token": csrf_of(html)},
                     follow_redirects=False).status_code == 303  # fmt: skip
    page_event = last_event(db, "outbox", page_failed)
    assert (page_event.trigger, page_event.to_state) == ("retry", "queued")
    # not failed any more: refused with its reason, nothing changed
    before, n = letters(db), events(db)
    assert "cannot be retried" in refused(client.post(f"/api/v1/outbox/{failed}/retry", headers=auth(token)), 422)
    assert "not in doubt" in refused(
        client.post(f"/api/v1/outbox/{failed}/settle", headers=auth(token), json={"action": "hold"}), 422
    )
    refused(client.post(f"/api/v1/outbox/{doubt}/settle", headers=auth(token), json={"action": "burn"}), 422)
    refused(client.post(f"/api/v1/outbox/{doubt}/settle", headers=auth(token), json={}), 422)
    refused(client.post(f"/api/v1/outbox/{2**31}/retry", headers=auth(token)), 422)
    assert letters(db) == before and events(db) == n
    r = client.post(f"/api/v1/outbox/{doubt}/settle", headers=auth(token), json={"action": "delivered"})
    assert r.status_code == 200, r.text
    assert r.json()["letters"][0]["status"] == "sent"
    assert last_event(db, "outbox", doubt).trigger == "in_doubt_delivered"


def test_another_networks_letter_is_404_as_a_missing_one_and_others_are_refused(
    client: TestClient, db: Engine, services: dict[str, int]
) -> None:
    mine = _letter(db, services, MRH, "failed", "550 mailbox unavailable")
    theirs = _letter(db, services, MERSEY_MTC, "failed", "550 mailbox unavailable")
    token, _ = staff(db, "Mo Mersey", OPERATOR, "CMMTN")
    auditor, _ = staff(db, "Aud Itor", AUDITOR)
    lead = support_accounts.account(db, "Sal Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    trust = token_for(db, lead)
    before, n = letters(db), events(db)
    missing = 987_654
    hidden = refused(client.post(f"/api/v1/outbox/{mine}/retry", headers=auth(token)), 404)
    absent = refused(client.post(f"/api/v1/outbox/{missing}/retry", headers=auth(token)), 404)
    assert hidden.replace(str(mine), "N") == absent.replace(str(missing), "N")
    settle = {"action": "hold"}
    refused(client.post(f"/api/v1/outbox/{mine}/settle", headers=auth(token), json=settle), 404)
    # the letters are the staff's: an auditor's is the same 404 (as on the page), its retry-all a 403
    refused(client.post(f"/api/v1/outbox/{mine}/retry", headers=auth(auditor)), 404)
    refused(client.post(f"/api/v1/outbox/{mine}/retry", headers=auth(trust)), 403)
    refused(client.post("/api/v1/outbox/retry-failed", headers=auth(auditor)), 403)
    assert letters(db) == before and events(db) == n
    # every failed letter in my scopes: network B's only
    r = client.post("/api/v1/outbox/retry-failed", headers=auth(token))
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["letters"]] == [theirs]
    with Session(db) as s:
        assert s.get(OutboxMessage, mine).status == OutboxStatus.FAILED  # type: ignore[union-attr]
        assert s.get(OutboxMessage, theirs).status == OutboxStatus.QUEUED  # type: ignore[union-attr]
