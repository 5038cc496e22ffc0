"""The portal's pages through the real application (tests/support_web.signed_in): /portal, one
service, a letter as .eml, shared learning, the portal's navigation and "/" sending a Trust user
to the portal; another Trust's service, letter or network is a 404."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import date
from email import policy as email_policy

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Contact, Risk
from models.accounts import User
from models.tables import OutboxMessage, Report, Service
from states import engine
from states.clock import FixedClock
from states.views import learning
from tests.factories import MRH, person
from tests.support_web import signed_in

SEVERN_TU = "Severnside Trauma Unit"


def _org(session: Session, services: dict[str, int], name: str) -> int:
    svc = session.get(Service, services[name])
    assert svc is not None
    return svc.organisation_id


def _notified(session: Session, risk: Risk, clock: FixedClock) -> Risk:
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", "network-manager"),
        clock=clock,  # type: ignore[arg-type]
    )
    session.commit()
    return risk


def _titled(session: Session, risk: Risk, title: str) -> Risk:
    risk.title = title  # a fixture's own data (the title is not a state)
    session.add(risk)
    session.commit()
    return risk


def _letter_of(session: Session, risk: Risk) -> OutboxMessage:
    row = session.exec(
        select(OutboxMessage).where(OutboxMessage.item_id == risk.id, OutboxMessage.kind == "risk")
    ).first()
    assert row is not None
    return row


def test_a_chief_executive_sees_what_is_asked_of_the_trust_and_not_of_another(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
    clock: FixedClock,
) -> None:
    mine = _notified(session, _titled(session, raise_risk("SC", service=SEVERN_TU), "Theatre access delays"), clock)
    theirs = _notified(session, _titled(session, raise_risk("SC", service=MRH), "Rota gaps at Midland"), clock)
    client, _ = signed_in(db_url, db, "Sam Severn", ("chief-executive",), scope="organisation",
                          scope_id=_org(session, services, SEVERN_TU))  # fmt: skip
    with client:
        home = client.get("/", follow_redirects=False)
        assert home.status_code == 303 and home.headers["location"] == "/portal"
        page = client.get("/portal")
        assert page.status_code == 200
        html = page.text
        assert "What is asked of us" in html and "Theatre access delays" in html
        assert "the Trust sends its formal response" in html and "Chief Executive" in html
        assert f'href="/items/risk/{mine.id}"' in html
        assert "Rota gaps at Midland" not in html and f"/items/risk/{theirs.id}" not in html
        assert 'href="/learning"' in html and 'href="/outbox"' not in html  # the portal's navigation
        one = client.get(f"/portal/services/{services[SEVERN_TU]}")
        assert one.status_code == 200 and "Theatre access delays" in one.text
        for bad in (str(services[MRH]), "0", "abc", "99999", "1e3"):
            assert client.get(f"/portal/services/{bad}").status_code == 404
        # the letters: mine downloads as an email, theirs is not found, as a missing one
        row = _letter_of(session, mine)
        assert f"/portal/letters/{row.id}.eml" in html
        got = client.get(f"/portal/letters/{row.id}.eml")
        assert got.status_code == 200 and got.headers["content-type"].startswith("message/rfc822")
        msg = email.message_from_bytes(got.content, policy=email_policy.default)
        assert msg["X-Peerwatch-Template"] == "formal_notification"
        body = msg.get_body(("plain",))
        assert body is not None and "Theatre access delays" in body.get_content()
        assert client.get(f"/portal/letters/{_letter_of(session, theirs).id}.eml").status_code == 404
        assert client.get("/portal/letters/999999.eml").status_code == 404
        assert client.get(f"/items/risk/{theirs.id}").status_code == 404


def test_a_service_lead_sees_only_the_service_and_staff_keep_my_work(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
    clock: FixedClock,
) -> None:
    _notified(session, _titled(session, raise_risk("SC", service=MRH), "Rota gaps at Midland"), clock)
    client, _ = signed_in(db_url, db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    with client:
        html = client.get("/portal").text
        assert "Rota gaps at Midland" in html and "Severnside" not in html
    staff, _ = signed_in(db_url, db, "Nina Manager", ("network-manager",))
    with staff:
        home = staff.get("/")
        assert home.status_code == 200 and "My work" in home.text and 'href="/outbox"' in home.text
        assert "no Trust or commissioner role" in staff.get("/portal").text


def test_shared_learning_page_names_no_one_and_can_be_switched_off(
    db_url: str, db: Engine, session: Session, services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(learning.SETTING, raising=False)
    session.add(Report(service_id=services[MRH], basis_date=date(2026, 6, 1), state="published",
                       published_on=date(2026, 7, 1), summary="Dr Asha Patel said so",
                       compliance=[{"ref": "T-1.1", "status": "Met", "comment": "thanks to Dr Asha Patel"}]))  # fmt: skip
    session.commit()
    client, _ = signed_in(db_url, db, "Sam Severn", ("service-lead",), scope="service", scope_id=services[SEVERN_TU])
    with client:
        page = client.get("/learning")
        assert page.status_code == 200 and MRH in page.text and "T-1.1" in page.text
        people = [*session.exec(select(Contact.name)), *session.exec(select(Contact.email))]
        people += [*session.exec(select(User.name)), *session.exec(select(User.email))]
        people = [p for p in people if p and p != "Sam Severn"]  # the header names the one signed in
        assert not [p for p in people if p in page.text]
        assert "Asha Patel" not in page.text
        assert client.get("/learning/WMTN").status_code == 200
        assert client.get("/learning/CMMTN").status_code == 404  # not a member
        monkeypatch.setenv(learning.SETTING, "off")
        off = client.get("/learning")
        assert off.status_code == 200 and "does not share" in off.text and MRH not in off.text
        assert client.get("/learning/WMTN").status_code == 404
