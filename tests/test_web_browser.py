"""The web application in real Chromium (Selenium, Debian's chromedriver), served by a real
uvicorn over the test's own database: sign in (a local account, and single sign-on through a
real OpenID provider, oidc-provider-mock), see my work, fire a transition with a parameter,
four eyes by two people in two browsers, a stale form refused, sign out. axe-core runs in
every main page (no serious or critical violation) and each is saved under var/screenshots/.

The harness is tests/support_browser.py; the pages are web/templates/*."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Risk
from models.accounts import User
from states.clock import SystemClock, local_date
from states.principal import Principal
from states.roles import ADMINISTRATOR, NETWORK_MANAGER, REGIONAL_LEAD
from states.services import intake, signin
from tests import support_accounts
from tests.factories import MRH
from tests.support_browser import (
    Browsers,
    Server,
    body_text,
    browsers,  # noqa: F401 (a pytest fixture)
    check_page,
    sign_in,
    start_app,
    start_oidc_provider,
    submit_via,
)

PASSWORD = "a long walk by the river Severn at dusk"
LEADS = (NETWORK_MANAGER, REGIONAL_LEAD)


@dataclass
class People:
    """Two Network Managers (who may both act on the risk) and an administrator."""

    asha: Principal
    ben: Principal
    admin: Principal


EMAILS = {"asha": "asha.patel@example.nhs.uk", "ben": "ben.okafor@example.nhs.uk"}


@pytest.fixture
def people(db: Engine, services: dict[str, int]) -> People:
    asha = support_accounts.account(db, "Dr Asha Patel", LEADS, email=EMAILS["asha"])
    ben = support_accounts.account(db, "Ben Okafor", LEADS, email=EMAILS["ben"])
    admin = support_accounts.account(db, "Ada Admin", (ADMINISTRATOR,), email="ada.admin@example.nhs.uk")
    with Session(db) as s:
        for who in (asha, ben):
            signin.set_password(s, admin, SystemClock(), who.user_id, PASSWORD)
        s.commit()
    return People(asha, ben, admin)


def raise_sc(db: Engine, services: dict[str, int], by: Principal, title: str) -> int:
    """A serious concern found at today's visit (on the real clock, as the server's): identified,
    its formal notification letter due, a deadline the Network Manager owns."""
    clock = SystemClock()
    with Session(db, expire_on_commit=False) as s:
        out = intake.raise_risk(
            s,
            service=services[MRH],
            level="SC",
            title=title,
            standard=None,
            visit_date=local_date(clock.now()),
            identified=None,
            impact=3,
            likelihood=3,
            doctors_in_training=False,
            principal=by,
            clock=clock,
            note=None,
        )
        s.commit()
        assert isinstance(out.row, Risk) and out.row.id is not None
        return out.row.id


@pytest.fixture
def app(db_url: str, db: Engine, tmp_path: Path) -> Iterator[Server]:
    server = start_app(tmp_path)
    yield server
    server.stop()


def test_sign_in_with_a_password_lands_on_my_work(
    app: Server, people: People, browsers: Browsers, services: dict[str, int]
) -> None:
    driver = browsers.new()
    driver.get(app.url("/sign-in"))
    check_page(driver, "sign-in")
    sign_in(driver, app, EMAILS["asha"], "not the password at all, no")
    assert "/sign-in" in driver.current_url
    check_page(driver, "sign-in-refused")
    sign_in(driver, app, EMAILS["asha"], PASSWORD)
    assert driver.current_url == app.url("/")
    assert "Dr Asha Patel" in body_text(driver)
    check_page(driver, "my-work-empty")


def test_single_sign_on_through_a_real_openid_provider(
    db_url: str, db: Engine, people: People, browsers: Browsers, tmp_path: Path
) -> None:
    provider = start_oidc_provider(
        tmp_path, [{"sub": "asha-at-cis2", "email": EMAILS["asha"], "email_verified": True, "name": "Asha Patel"}]
    )
    env = {
        "PEERWATCH_OIDC_ISSUER": provider.base,
        "PEERWATCH_OIDC_CLIENT_ID": "peerwatch-test",
        "PEERWATCH_OIDC_CLIENT_SECRET": "a-client-secret-for-the-mock",
    }
    server = start_app(tmp_path, env)
    try:
        driver = browsers.new()
        driver.get(server.url("/outbox"))
        assert "/sign-in" in driver.current_url
        sso = driver.find_element("link text", "Sign in with single sign-on")
        submit_via(driver, sso)
        assert driver.current_url.startswith(provider.base), driver.current_url  # the provider's own page
        submit_via(driver, driver.find_element("css selector", "button[name=sub][value=asha-at-cis2]"))
        assert driver.current_url == server.url("/outbox"), body_text(driver)
        assert "Dr Asha Patel" in body_text(driver)
        with Session(db) as s:
            user = s.exec(select(User).where(User.email == EMAILS["asha"])).one()
            assert (user.oidc_issuer or "").rstrip("/") == provider.base
            assert user.oidc_subject == "asha-at-cis2"

        # An identity the provider vouches for but no account holds gets no access.
        other = browsers.new()
        other.get(server.url("/sign-in"))
        submit_via(other, other.find_element("link text", "Sign in with single sign-on"))
        box = other.find_element("css selector", "input[name=sub]")
        box.send_keys("stranger")
        submit_via(other, box.find_element("xpath", "ancestor::form//button[@type='submit']"))
        assert "/sign-in" in other.current_url or "Sign in to peerwatch" in body_text(other)
        assert "Dr Asha Patel" not in body_text(other)
        check_page(other, "sign-in-sso-refused")
    finally:
        server.stop()
        provider.stop()
