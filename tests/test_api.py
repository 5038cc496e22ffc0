"""The JSON API under /api/v1 (web/api/) through FastAPI's TestClient over the real
application (create_app on this test's database): a personal access token acts as its owner
with the owner's grants now; every refusal is a 4xx with one line and nothing changed.

The fuzzing of the same API against a running server is tests/test_api_fuzz.py."""

from __future__ import annotations

import hashlib
import secrets
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Network, Risk
from models.accounts import AccessToken, User
from states.clock import SystemClock, local_date
from states.machines.spec import kinds
from states.principal import Principal
from states.roles import ADMINISTRATOR, AUDITOR, NETWORK_MANAGER, NETWORK_OFFICE, OPERATOR, REGIONAL_LEAD
from states.services import accounts, intake
from tests import support_accounts
from tests.factories import MRH
from web.app import create_app

with warnings.catch_warnings():  # starlette 1.10 asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

MERSEY_MTC = "Mersey Harbour Major Trauma Centre"


def network_id(db: Engine, code: str) -> int:
    with Session(db) as s:
        net = s.exec(select(Network).where(Network.code == code)).one()
        assert net.id is not None
        return net.id


def token_for(db: Engine, principal: Principal, days: int = 30) -> str:
    """A token made as its owner makes one (peerwatch token create); for an account that holds
    only the auditor role (read-only: it may not record the creation), the row is made directly."""
    if principal.roles() == [AUDITOR]:
        return token_row(db, principal.user_id, days)
    with Session(db) as s:
        _, token = accounts.create_token(s, principal, SystemClock(), "api test", days)
        s.commit()
    return token


def token_row(db: Engine, user_id: int, days: int = 1) -> str:
    token = "pw_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with Session(db) as s:
        s.add(AccessToken(user_id=user_id, name="api test", token_hash=hashlib.sha256(token.encode()).hexdigest(),
                          prefix=token[:10], created_at=now, expires_at=now + timedelta(days=days)))  # fmt: skip
        s.commit()
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def row_of(db: Engine, risk_id: int) -> tuple[str, int, int | None, int | None]:
    with Session(db) as s:
        r = s.get(Risk, risk_id)
        assert r is not None
        return r.state, r.version, r.impact, r.likelihood


def events(db: Engine) -> int:
    with Session(db) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


def refused(resp: Any, status: int) -> str:
    """The refusal's one line (and its status)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["error"], body
    line = body["error"]
    assert isinstance(line, str) and line and "\n" not in line and "Traceback" not in line
    return line


@pytest.fixture
def client(db_url: str, db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as c:
        yield c


@pytest.fixture
def risks(db: Engine, services: dict[str, int]) -> dict[str, int]:
    """An SC raised today at a service of network A (WMTN) and one at network B (CMMTN),
    through the API's own use case by a Network Manager of the whole installation."""
    boss = support_accounts.account(db, "Regional Boss", (NETWORK_MANAGER,))
    out = {}
    today = local_date(SystemClock().now())
    for name, service in (("a", MRH), ("b", MERSEY_MTC)):
        with Session(db, expire_on_commit=False) as s:
            made = intake.raise_risk(
                s,
                service=services[service],
                level="SC",
                title=f"Network {name.upper()} ward staffing",
                standard=None,
                visit_date=today,
                identified=None,
                impact=None,
                likelihood=None,
                doctors_in_training=False,
                principal=boss,
                clock=SystemClock(),
                note=None,
            )
            s.commit()
            assert made.row.id is not None
            out[name] = made.row.id
    return out


@pytest.fixture
def staff(db: Engine, services: dict[str, int]) -> Callable[..., str]:
    """A token for a new account holding ``roles`` in network A (WMTN), or in ``code``."""

    def make(name: str, *roles: str, code: str = "WMTN") -> str:
        p = support_accounts.account(db, name, roles, scope="network", scope_id=network_id(db, code))
        return token_for(db, p)

    return make


# ---------------------------------------------------------------- who the token is


def test_me_is_the_tokens_owner_with_the_grants_now(client: TestClient, db: Engine, staff: Any) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER, REGIONAL_LEAD)
    r = client.get("/api/v1/me", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    wmtn = network_id(db, "WMTN")
    assert body["name"] == "Nia Manager" and body["via"] == "token" and body["training"] is False
    assert body["roles"] == [NETWORK_MANAGER, REGIONAL_LEAD]
    assert body["grants"] == [
        {"role": NETWORK_MANAGER, "scope": "network", "scope_id": wmtn},
        {"role": REGIONAL_LEAD, "scope": "network", "scope_id": wmtn},
    ]
    assert "set-cookie" not in r.headers


def test_no_token_a_bad_one_a_revoked_or_expired_one_is_401(client: TestClient, db: Engine, staff: Any) -> None:
    token = staff("Tom Office", NETWORK_OFFICE)
    assert "access token" in refused(client.get("/api/v1/me"), 401)
    assert refused(client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401)
    assert "unknown or revoked" in refused(client.get("/api/v1/me", headers=auth("pw_" + "x" * 40)), 401)
    assert refused(client.get("/api/v1/me", headers=auth("not-a-token")), 401)
    assert refused(client.get("/api/v1/me", headers=auth("pw_" + "y" * 500)), 401)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    with Session(db) as s:
        row = s.exec(select(AccessToken).where(AccessToken.user_id == _user_id(s, "Tom Office"))).one()
        row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        s.add(row)
        s.commit()
    assert "expired" in refused(client.get("/api/v1/me", headers=auth(token)), 401)
    with Session(db) as s:
        row = s.exec(select(AccessToken).where(AccessToken.user_id == _user_id(s, "Tom Office"))).one()
        row.expires_at, row.revoked_at = datetime.now(UTC) + timedelta(days=1), datetime.now(UTC)
        s.add(row)
        s.commit()
    assert "revoked" in refused(client.get("/api/v1/me", headers=auth(token)), 401)
    r = client.get("/api/v1/me")
    assert r.headers["www-authenticate"].lower().startswith("bearer")


def _user_id(s: Session, name: str) -> int:
    user = s.exec(select(User).where(User.name == name)).one()
    assert user.id is not None
    return user.id


def test_a_disabled_owner_cannot_use_the_token(
    client: TestClient, db: Engine, staff: Any, risks: dict[str, int]
) -> None:
    """Disabling revokes the account's tokens (401); an account disabled with its token left
    unrevoked (a direct edit, a restore) is still refused (403): nothing is read or changed."""
    token = staff("Dee Disabled", NETWORK_MANAGER)
    other = staff("Dan Disabled", NETWORK_MANAGER)
    admin = support_accounts.account(db, "Ada Admin", (ADMINISTRATOR,))
    with Session(db) as s:
        accounts.disable_user(s, admin, SystemClock(), "Dee Disabled")
        user = s.exec(select(User).where(User.name == "Dan Disabled")).one()
        user.status = "disabled"
        s.add(user)
        s.commit()
    before = row_of(db, risks["a"])
    assert refused(client.get("/api/v1/me", headers=auth(token)), 401)
    line = refused(client.get("/api/v1/me", headers=auth(other)), 403)
    assert "disabled" in line
    body = {"trigger": "send_formal_notification"}
    for t, status in ((token, 401), (other, 403)):
        refused(client.post(f"/api/v1/items/risk/{risks['a']}/fire", headers=auth(t), json=body), status)
    assert row_of(db, risks["a"]) == before


def test_cookies_are_not_credentials_for_the_api(client: TestClient, staff: Any) -> None:
    client.cookies.set("peerwatch_session", "anything")
    refused(client.get("/api/v1/me"), 401)


# ---------------------------------------------------------------- reading


def test_my_work_lists_my_networks_deadlines_and_not_anothers(
    client: TestClient, staff: Any, risks: dict[str, int]
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    r = client.get("/api/v1/work", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["limit"] == 50 and body["offset"] == 0 and body["total"] >= 1
    seen = {(d["kind"], d["id"]) for d in body["deadlines"]}
    assert ("risk", risks["a"]) in seen and ("risk", risks["b"]) not in seen
    assert "Network B" not in r.text
    r = client.get("/api/v1/work?limit=1&offset=0", headers=auth(token))
    assert r.status_code == 200 and len(r.json()["deadlines"]) <= 1
    refused(client.get("/api/v1/work?limit=0", headers=auth(token)), 422)
    refused(client.get("/api/v1/work?offset=-1", headers=auth(token)), 422)


def test_a_list_shows_only_the_items_i_may_see_with_filters(
    client: TestClient, staff: Any, risks: dict[str, int]
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    r = client.get("/api/v1/items/risk", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [row["id"] for row in body["rows"]]
    assert ids == [risks["a"]] and body["total"] == 1 and body["page"] == 1
    r = client.get("/api/v1/items/risk?state=closed", headers=auth(token))
    assert r.status_code == 200 and r.json()["rows"] == []
    r = client.get("/api/v1/items/risk?q=staffing", headers=auth(token))
    assert [row["id"] for row in r.json()["rows"]] == [risks["a"]]
    assert "unknown state" in refused(client.get("/api/v1/items/risk?state=nonsense", headers=auth(token)), 422)
    refused(client.get("/api/v1/items/dragon", headers=auth(token)), 422)
    refused(client.get("/api/v1/items/risk?page=0", headers=auth(token)), 422)
    refused(client.get("/api/v1/items/risk?due_before=2026-13-01", headers=auth(token)), 422)


def test_an_item_has_its_state_version_deadlines_history_and_triggers(
    client: TestClient, staff: Any, risks: dict[str, int]
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    r = client.get(f"/api/v1/items/risk/{risks['a']}", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["kind"], body["id"], body["state"], body["version"]) == ("risk", risks["a"], "identified", 2)
    assert [h["trigger"] for h in body["history"]] == ["raise"]
    assert "send_formal_notification" in [t["trigger"] for t in body["triggers"]]
    assert "<" not in str(body.get("states", "")), "no HTML (the diagram) in the API"


def test_another_networks_item_is_404_exactly_as_a_missing_one(
    client: TestClient, staff: Any, risks: dict[str, int]
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    missing = risks["b"] + 1000
    hidden = client.get(f"/api/v1/items/risk/{risks['b']}", headers=auth(token))
    absent = client.get(f"/api/v1/items/risk/{missing}", headers=auth(token))
    assert refused(hidden, 404).replace(str(risks["b"]), "N") == refused(absent, 404).replace(str(missing), "N")
    body = {"trigger": "send_formal_notification"}
    hidden = client.post(f"/api/v1/items/risk/{risks['b']}/fire", headers=auth(token), json=body)
    absent = client.post(f"/api/v1/items/risk/{missing}/fire", headers=auth(token), json=body)
    assert refused(hidden, 404).replace(str(risks["b"]), "N") == refused(absent, 404).replace(str(missing), "N")


@pytest.mark.parametrize("bad", ["0", "-1", str(2**31), str(2**63 - 1), str(2**63), str(2**64 + 5), "1e3", "x"])
def test_ids_outside_64_bits_or_not_numbers_are_refused_not_500(
    client: TestClient, staff: Any, risks: dict[str, int], bad: str
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    for kind in kinds():
        r = client.get(f"/api/v1/items/{kind}/{bad}", headers=auth(token))
        assert r.status_code in (404, 422), (kind, r.text)
        r = client.post(f"/api/v1/items/{kind}/{bad}/fire", headers=auth(token), json={"trigger": "close"})
        assert r.status_code in (404, 422), (kind, r.text)
        refused(r, r.status_code)


# ---------------------------------------------------------------- acting


def test_fire_with_a_param_then_a_stale_version_is_409_with_nothing_changed(
    client: TestClient, db: Engine, staff: Any, risks: dict[str, int]
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    url = f"/api/v1/items/risk/{risks['a']}/fire"
    body = {"trigger": "rescore", "params": {"impact": "4", "likelihood": "5"}, "version": 2}
    r = client.post(url, headers=auth(token), json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["id"], out["kind"], out["trigger"], out["from"], out["state"]) == (
        risks["a"],
        "risk",
        "rescore",
        "identified",
        "identified",
    )
    assert out["version"] == 3 and isinstance(out["letters_queued"], int) and out["proposed"] is False
    assert row_of(db, risks["a"]) == ("identified", 3, 4, 5)
    n = events(db)
    stale = client.post(url, headers=auth(token), json={"trigger": "send_formal_notification", "version": 2})
    assert "version 3, not 2" in refused(stale, 409)
    assert row_of(db, risks["a"]) == ("identified", 3, 4, 5) and events(db) == n
    r = client.post(url, headers=auth(token), json={"trigger": "send_formal_notification", "version": 3})
    assert r.status_code == 200 and r.json()["state"] == "awaiting_response"


def test_a_role_that_may_not_fire_is_403_and_the_row_is_unchanged(
    client: TestClient, db: Engine, staff: Any, risks: dict[str, int]
) -> None:
    url = f"/api/v1/items/risk/{risks['a']}/fire"
    tokens = {
        name: staff(name, role)
        for name, role in (("Aud Itor", AUDITOR), ("Ola Operator", OPERATOR), ("Nat Office", NETWORK_OFFICE))
    }
    token = staff("Nia Manager", NETWORK_MANAGER)
    before, n = row_of(db, risks["a"]), events(db)
    for name, t in tokens.items():
        line = refused(client.post(url, headers=auth(t), json={"trigger": "send_formal_notification"}), 403)
        assert name in line or "may not" in line
    assert "does not hold" in refused(
        client.post(url, headers=auth(token), json={"trigger": "send_formal_notification", "role": REGIONAL_LEAD}),
        403,
    )
    assert row_of(db, risks["a"]) == before and events(db) == n


def test_bad_fire_bodies_are_422_or_400_with_one_line(
    client: TestClient, db: Engine, staff: Any, risks: dict[str, int]
) -> None:
    token = staff("Nia Manager", NETWORK_MANAGER)
    url = f"/api/v1/items/risk/{risks['a']}/fire"
    before = row_of(db, risks["a"])
    refused(client.post(url, headers=auth(token), json={}), 422)
    refused(client.post(url, headers=auth(token), json={"trigger": "rescore", "params": {"impact": 3}}), 422)
    refused(client.post(url, headers=auth(token), json={"trigger": "rescore", "surprise": 1}), 422)
    r = client.post(url, headers={**auth(token), "content-type": "application/json"}, content=b"{not json")
    assert r.status_code in (400, 422)
    refused(r, r.status_code)
    for trigger in ("no_such_trigger", "close"):
        r = client.post(url, headers=auth(token), json={"trigger": trigger})
        assert r.status_code in (400, 403, 422)
        refused(r, r.status_code)
    r = client.post(url, headers=auth(token), json={"trigger": "rescore", "params": {"impact": "9"}})
    refused(r, 422)
    assert row_of(db, risks["a"]) == before


# ---------------------------------------------------------------- raising a risk


def test_raise_a_risk_with_the_fields_of_the_cli(client: TestClient, db: Engine, staff: Any, services: Any) -> None:
    token = staff("Nat Office", NETWORK_OFFICE)
    today = local_date(SystemClock().now())
    body = {"service": services[MRH], "level": "IR", "title": "Resus trolley unchecked", "visit_date": str(today)}
    r = client.post("/api/v1/risks", headers=auth(token), json={**body, "impact": 4, "likelihood": 3})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["kind"] == "risk" and out["state"] == "identified" and out["version"] == 2
    assert any(d["name"] for d in out["deadlines"])
    with Session(db) as s:
        row = s.get(Risk, out["id"])
        assert row is not None and (row.level, row.title, row.impact) == ("IR", "Resus trolley unchecked", 4)
    n = events(db)
    tomorrow = str(today + timedelta(days=1))
    assert "after today" in refused(
        client.post("/api/v1/risks", headers=auth(token), json={**body, "visit_date": tomorrow}), 422
    )
    refused(client.post("/api/v1/risks", headers=auth(token), json={**body, "level": "XX"}), 422)
    refused(client.post("/api/v1/risks", headers=auth(token), json={**body, "service": 2**63}), 422)
    refused(client.post("/api/v1/risks", headers=auth(token), json={**body, "service": 999_999}), 404)
    # a service of another network: not in this account's scope
    r = client.post("/api/v1/risks", headers=auth(token), json={**body, "service": services[MERSEY_MTC]})
    assert r.status_code in (403, 404)
    refused(r, r.status_code)
    refused(client.post("/api/v1/risks", headers=auth(staff("Aud Itor", AUDITOR)), json=body), 403)
    assert events(db) == n


def test_outbox_incidents_for_an_operator(client: TestClient, staff: Any) -> None:
    r = client.get("/api/v1/outbox", headers=auth(staff("Ola Operator", OPERATOR)))
    assert r.status_code == 200, r.text
    assert r.json()["incidents"] == []


def test_the_openapi_names_every_kind_and_the_refusals(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    params = doc["paths"]["/api/v1/items/{kind}"]["get"]["parameters"]
    kind = next(p for p in params if p["name"] == "kind")
    ref = kind["schema"].get("$ref", "")
    enum = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]["enum"] if ref else kind["schema"]["enum"]
    assert "risk" in enum and "visit" in enum and "dragon" not in enum
    fire = doc["paths"]["/api/v1/items/{kind}/{item_id}/fire"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(fire)
    assert doc["paths"] and all(path.startswith("/api/v1/") for path in doc["paths"])  # the pages are not the API
