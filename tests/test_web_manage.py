"""The staff application's creation, outbox and contacts pages (issue 15), through FastAPI's
TestClient on a real database with real accounts and sessions (states.services.signin): each
page for a role that may, 403 for one that may not, 404 for another network's row; a created
item with its audit event by the person; a form without its CSRF token refused, nothing made."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Contact, OutboxMessage, Reviewer, Risk, Visit
from models.accounts import PendingChange, User
from models.tables import IN_DOUBT, Complaint, Network, OutboxStatus
from states import engine
from states.clock import FixedClock, SystemClock, local_date
from states.principal import Principal
from states.services import signin
from tests import support_accounts
from tests.factories import MRH, person
from web.app import create_app

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "quilted marmot evening drizzle 83"
TODAY = local_date(SystemClock().now())


def signed_in(db_url: str, db: Engine, name: str, roles: tuple[str, ...], **scope: Any) -> tuple[TestClient, Principal]:
    """A TestClient signed in (a real session cookie) as a new account holding ``roles``."""
    principal = support_accounts.account(db, name, roles, **scope)
    with Session(db, expire_on_commit=False) as s:
        signin.set_password(s, principal, SystemClock(), None, PASSWORD)
        email = s.get(User, principal.user_id).email  # type: ignore[union-attr]
        s.commit()
    done = signin.sign_in(db, email, PASSWORD, "127.0.0.1", SystemClock())
    client = TestClient(create_app(db_url), base_url="http://testserver")
    client.cookies.set("peerwatch_session", done.token)
    return client, principal


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def get_ok(client: TestClient, url: str) -> str:
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 200, (url, r.status_code, r.text[:500])
    return r.text


def count(db: Engine, model: Any) -> int:
    with Session(db) as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def network_id(db: Engine, code: str) -> int:
    with Session(db) as s:
        net = s.exec(select(Network).where(Network.code == code)).one()
        assert net.id is not None
        return net.id


# ---------------------------------------------------------------- creating items


def test_a_network_manager_raises_a_risk_and_it_is_audited_as_theirs(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    client, nm = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    html = get_ok(client, "/create/risk")
    assert MRH in html and 'type="radio"' in html and 'value="SC"' in html
    r = client.post(
        "/create/risk",
        data={"csrf_token": csrf_of(html), "service": str(services[MRH]), "level": "SC", "title": "No consultant cover",
              "visit_date": TODAY.isoformat(), "impact": "4", "likelihood": "3", "doctors_in_training": "yes"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    m = re.fullmatch(r"/items/risk/(\d+)", r.headers["location"])
    assert m, r.headers["location"]
    with Session(db) as s:
        risk = s.get(Risk, int(m.group(1)))
        assert risk is not None and risk.title == "No consultant cover" and risk.level == "SC"
        assert risk.doctors_in_training and risk.impact == 4 and risk.state == "identified"
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "risk", AuditEvent.item_id == risk.id)).one()
        assert ev.trigger == "raise" and ev.user_id == nm.user_id and ev.role == "network-manager"


def test_a_refused_risk_shows_the_reason_in_an_error_summary_and_creates_nothing(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    client, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    html = get_ok(client, "/create/risk")
    before = count(db, Risk)
    r = client.post(
        "/create/risk",
        data={"csrf_token": csrf_of(html), "service": str(services[MRH]), "level": "SC", "title": "Later",
              "visit_date": date(2099, 1, 4).isoformat()},
    )  # fmt: skip
    assert r.status_code == 422
    assert "nhsuk-error-summary" in r.text and "after today" in r.text
    assert 'value="Later"' in r.text  # the form keeps what was typed
    assert count(db, Risk) == before


def test_creating_without_the_csrf_token_is_refused_and_creates_nothing(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    client, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    before = count(db, Risk)
    for token in (None, "forged"):
        data = {"service": str(services[MRH]), "level": "SC", "title": "x", "visit_date": TODAY.isoformat()}
        if token:
            data["csrf_token"] = token
        r = client.post("/create/risk", data=data, follow_redirects=False)
        assert r.status_code == 403, r.text[:300]
    assert count(db, Risk) == before


def test_create_pages_are_refused_to_a_role_that_may_not_and_scoped_to_the_network(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    auditor, _ = signed_in(db_url, db, "Ann Auditor", ("auditor",))
    for kind in ("risk", "visit", "complaint"):
        assert auditor.get(f"/create/{kind}").status_code == 403
    wmtn = network_id(db, "WMTN")
    scoped, _ = signed_in(db_url, db, "Wes Office", ("network-office",), scope="network", scope_id=wmtn)
    html = get_ok(scoped, "/create/visit")
    assert MRH in html and "Mersey Harbour Major Trauma Centre" not in html
    r = scoped.post(
        "/create/visit",
        data={"csrf_token": csrf_of(html), "service": str(services["Mersey Harbour Major Trauma Centre"])},
    )
    assert r.status_code == 403 and "nhsuk-error-summary" in r.text
    assert count(db, Visit) == 0
    r = scoped.post("/create/visit", data={"csrf_token": csrf_of(html), "service": str(services[MRH])},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/items/visit/")
    assert scoped.get("/create/nothing").status_code == 404


def test_a_complaint_is_received_from_the_form(db_url: str, db: Engine, services: dict[str, int]) -> None:
    client, office = signed_in(db_url, db, "Olu Office", ("network-office",))
    html = get_ok(client, "/create/complaint")
    r = client.post(
        "/create/complaint",
        data={"csrf_token": csrf_of(html), "network": "WMTN", "category": "arrangements", "from_name": "Pat Jones",
              "from_email": "pat.jones@example.nhs.uk", "summary": "The visit date moved twice",
              "received": TODAY.isoformat()},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    with Session(db) as s:
        c = s.exec(select(Complaint)).one()
        assert c.category == "arrangements" and c.complainant_name == "Pat Jones"
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "complaint", AuditEvent.item_id == c.id)).one()
        assert ev.user_id == office.user_id


# ---------------------------------------------------------------- the outbox


def _letters(db: Engine, raise_risk: Any, service: str = MRH) -> list[int]:
    """A risk notified formally (its letters queued), as a Network Manager does."""
    risk = raise_risk("SC", service=service)
    with Session(db) as s:
        engine.fire(s, "risk", risk.id, "send_formal_notification",
                    principal=person("Dr Asha Patel", "network-manager"), clock=FixedClock(date(2026, 12, 11)))  # fmt: skip
        s.commit()
        return [m.id for m in s.exec(select(OutboxMessage).where(OutboxMessage.item_id == risk.id))]  # type: ignore[misc]


def _set(db: Engine, message_id: int, status: str, error: str) -> None:
    with Session(db) as s:
        m = s.get(OutboxMessage, message_id)
        assert m is not None
        m.status, m.last_error = OutboxStatus(status), error
        m.next_attempt_at = datetime(2026, 1, 1, tzinfo=UTC)
        s.add(m)
        s.commit()


def test_an_operator_sees_the_incidents_and_retries_a_failed_letter(
    db_url: str, db: Engine, services: dict[str, int], raise_risk: Any
) -> None:
    failed, doubt = _letters(db, raise_risk)[0], _letters(db, raise_risk)[0]
    _set(db, failed, "failed", "550 mailbox unavailable")
    _set(db, doubt, "sending", IN_DOUBT + "the connection dropped after DATA")
    op, op_p = signed_in(db_url, db, "Olive Operator", ("operator",))
    html = get_ok(op, "/outbox")
    assert 'id="count-failed">1<' in html and 'id="count-in-doubt">1<' in html
    assert f'id="message-{failed}"' in html and "550 mailbox unavailable" in html and 'href="/items/risk/' in html
    r = op.post(f"/outbox/{failed}/retry", data={"csrf_token": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/outbox?done=retried"
    r = op.post(f"/outbox/{doubt}/settle", data={"csrf_token": csrf_of(html), "action": "delivered"},
                follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with Session(db) as s:
        assert s.get(OutboxMessage, failed).status == OutboxStatus.QUEUED  # type: ignore[union-attr]
        assert s.get(OutboxMessage, doubt).status == OutboxStatus.SENT  # type: ignore[union-attr]
        events = s.exec(select(AuditEvent).where(AuditEvent.kind == "outbox")).all()
        assert {(e.item_id, e.trigger, e.user_id) for e in events} == {
            (failed, "retry", op_p.user_id), (doubt, "in_doubt_delivered", op_p.user_id)}  # fmt: skip
    # a letter not failed cannot be retried: the reason is shown, nothing changes
    r = op.post(f"/outbox/{failed}/retry", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 422 and "cannot be retried" in r.text and "nhsuk-error-summary" in r.text
    assert op.post(f"/outbox/{failed}/retry", data={}).status_code == 403  # no CSRF token
    assert op.post("/outbox/99999/retry", data={"csrf_token": csrf_of(html)}).status_code == 404


def test_the_outbox_is_scoped_to_the_persons_network(
    db_url: str, db: Engine, services: dict[str, int], raise_risk: Any
) -> None:
    failed, *_ = _letters(db, raise_risk)
    _set(db, failed, "failed", "550 mailbox unavailable")
    cmm = network_id(db, "CMMTN")
    other, _ = signed_in(db_url, db, "Mo Mersey", ("operator",), scope="network", scope_id=cmm)
    html = get_ok(other, "/outbox")
    assert 'id="count-failed">0<' in html and f'id="message-{failed}"' not in html
    r = other.post(f"/outbox/{failed}/retry", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 404  # another network's letter: not found, as one that does not exist
    with Session(db) as s:
        assert s.get(OutboxMessage, failed).status == OutboxStatus.FAILED  # type: ignore[union-attr]
    auditor, _ = signed_in(db_url, db, "Ann Auditor", ("auditor",))
    html = get_ok(auditor, "/outbox")
    assert f'id="message-{failed}"' not in html and "/retry" not in html


# ---------------------------------------------------------------- contacts and reviewers


def _contact(db: Engine, role: str, network: str = "WMTN") -> Contact:
    with Session(db) as s:
        net = s.exec(select(Network).where(Network.code == network)).one()
        return s.exec(select(Contact).where(Contact.role == role, Contact.network_id == net.id)).one()


def test_contacts_are_listed_in_scope_and_edited_from_a_date(db_url: str, db: Engine, services: dict[str, int]) -> None:
    wmtn = network_id(db, "WMTN")
    office, office_p = signed_in(db_url, db, "Wes Office", ("network-office",), scope="network", scope_id=wmtn)
    html = get_ok(office, "/contacts")
    nm = _contact(db, "network-manager")
    mersey = _contact(db, "network-manager", "CMMTN")
    assert f'href="/contacts/{nm.id}"' in html and f'href="/contacts/{mersey.id}"' not in html
    assert office.get(f"/contacts/{mersey.id}").status_code == 404  # another network's: not found
    html = get_ok(office, f"/contacts/{nm.id}")
    r = office.post(f"/contacts/{nm.id}/edit", data={"csrf_token": csrf_of(html), "email": "new.nm@example.nhs.uk",
                                                     "effective": TODAY.isoformat()}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:600]
    with Session(db) as s:
        new = s.exec(select(Contact).where(Contact.replaces_id == nm.id)).one()
        assert new.email == "new.nm@example.nhs.uk" and new.valid_from == TODAY
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "contact", AuditEvent.item_id == nm.id)).one()
        assert ev.trigger == "replace_contact" and ev.user_id == office_p.user_id
    r = office.post(
        f"/contacts/{mersey.id}/retire", data={"csrf_token": csrf_of(html), "retire_from": TODAY.isoformat()}
    )
    assert r.status_code == 404
    html = get_ok(office, "/contacts/new")
    r = office.post("/contacts/new", data={"csrf_token": csrf_of(html), "role": "network-office", "name": "Kim Clerk",
                                           "email": "kim.clerk@example.nhs.uk", "scope": f"network:{wmtn}"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/contacts?done=added"
    auditor, _ = signed_in(db_url, db, "Ann Auditor", ("auditor",))
    r = auditor.post(f"/contacts/{new.id}/retire", data={"csrf_token": csrf_of(get_ok(auditor, "/contacts")),
                                                         "retire_from": TODAY.isoformat()})  # fmt: skip
    assert r.status_code == 403 and "nhsuk-error-summary" in r.text


def test_an_escalation_address_waits_for_a_second_person_who_is_not_the_proposer(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    cqc = _contact(db, "cqc")
    first, _ = signed_in(db_url, db, "Fay First", ("network-manager",))
    second, second_p = signed_in(db_url, db, "Sid Second", ("regional-lead",))
    html = get_ok(first, f"/contacts/{cqc.id}")
    r = first.post(f"/contacts/{cqc.id}/edit", data={"csrf_token": csrf_of(html), "email": "cqc.new@example.nhs.uk",
                                                     "effective": TODAY.isoformat()}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/contacts?done=proposed"
    with Session(db) as s:
        change = s.exec(select(PendingChange)).one()
        assert s.get(Contact, cqc.id).valid_until is None  # type: ignore[union-attr]  # nothing changed yet
    html = get_ok(first, "/contacts")
    assert f"Withdraw change {change.id}" in html and f"Confirm change {change.id}" not in html
    r = first.post(f"/contacts/changes/{change.id}/confirm", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 403 and "proposed by your own account" in r.text
    mersey, _ = signed_in(db_url, db, "Mo Mersey", ("network-manager",), scope="network",
                          scope_id=network_id(db, "CMMTN"))  # fmt: skip
    html = get_ok(mersey, "/contacts")
    assert f"change-{change.id}" not in html  # another network's change is not listed, nor found
    assert mersey.post(f"/contacts/changes/{change.id}/confirm", data={"csrf_token": csrf_of(html)}).status_code == 404
    html = get_ok(second, "/contacts")
    assert f"Confirm change {change.id}" in html
    r = second.post(
        f"/contacts/changes/{change.id}/confirm", data={"csrf_token": csrf_of(html)}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/contacts?done=confirmed"
    with Session(db) as s:
        assert s.exec(select(PendingChange)).one().status == "confirmed"
        new = s.exec(select(Contact).where(Contact.replaces_id == cqc.id)).one()
        assert new.email == "cqc.new@example.nhs.uk"
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "contact", AuditEvent.item_id == cqc.id)).one()
        assert ev.user_id == second_p.user_id


def test_reviewers_are_added_edited_and_retired(db_url: str, db: Engine, services: dict[str, int]) -> None:
    office, _ = signed_in(db_url, db, "Olu Office", ("network-office",))
    html = get_ok(office, "/reviewers")
    assert "Dr Maya Fenwick" in html
    r = office.post("/reviewers/new", data={"csrf_token": csrf_of(html), "name": "Dr Lee Park", "discipline": "clinician",
                                            "email": "lee.park@example.nhs.uk", "network": "WMTN", "trained": "yes"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:600]
    with Session(db) as s:
        lee = s.exec(select(Reviewer).where(Reviewer.name == "Dr Lee Park")).one()
        assert lee.trained and lee.network_id == network_id(db, "WMTN")
    r = office.post(f"/reviewers/{lee.id}/edit", data={"csrf_token": csrf_of(html), "discipline": "nurse"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    r = office.post(f"/reviewers/{lee.id}/retire", data={"csrf_token": csrf_of(html), "retire_from": TODAY.isoformat()},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    r = office.post("/reviewers/new", data={"csrf_token": csrf_of(html), "name": "X", "email": "x@example.nhs.uk",
                                            "discipline": "astrologer"})  # fmt: skip
    assert r.status_code == 422 and "discipline" in r.text
    with Session(db) as s:
        lee = s.get(Reviewer, lee.id)  # type: ignore[assignment]
        assert lee.discipline == "nurse" and lee.retired_on == TODAY
        events = [e.trigger for e in s.exec(select(AuditEvent).where(AuditEvent.kind == "reviewer",
                                                                     AuditEvent.item_id == lee.id))]  # fmt: skip
        assert events == ["add_reviewer", "edit_reviewer", "retire_reviewer"]
