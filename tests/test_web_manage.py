"""The staff application's creation, outbox and contacts pages (issue 15), through FastAPI's
TestClient on a real database with real accounts and sessions (states.services.signin): each
page for a role that may, 403 for one that may not, 404 for another network's row; a created
item with its audit event by the person; a form without its CSRF token refused, nothing made."""

from __future__ import annotations

import re
import warnings
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Risk, Visit
from models.accounts import User
from models.tables import Complaint, Network
from states.clock import SystemClock, local_date
from states.principal import Principal
from states.services import signin
from tests import support_accounts
from tests.factories import MRH
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
