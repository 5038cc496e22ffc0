"""The web application in real Chromium (Selenium, Debian's chromedriver), served by a real
uvicorn over the test's own database: sign in (a local account, and single sign-on through a
real OpenID provider, oidc-provider-mock), see my work, fire a transition with a parameter,
four eyes by two people in two browsers, a stale form refused, sign out. axe-core runs in
every main page (no serious or critical violation) and each is saved under var/screenshots/.

The harness is tests/support_browser.py; the pages are web/templates/*."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import OutboxMessage, Risk
from models.accounts import User
from states.clock import SystemClock, local_date
from states.principal import Principal
from states.roles import ADMINISTRATOR, NETWORK_MANAGER, REGIONAL_LEAD
from states.services import accounts, acting, intake, signin
from tests import support_accounts
from tests.factories import MRH
from tests.support_accounts import EVERY_STAFF_ROLE
from tests.support_browser import (
    Browsers,
    Server,
    blocking,
    body_text,
    browsers,  # noqa: F401 (a pytest fixture)
    check_page,
    eventually,
    require_chromium,
    sign_in,
    start_app,
    start_oidc_provider,
    status,
    submit_via,
)

PASSWORD = "a long walk by the river Severn at dusk"
LEADS = (NETWORK_MANAGER, REGIONAL_LEAD)


@dataclass
class People:
    """Two network leads (who may both act on a risk) and an administrator who holds every staff role."""

    asha: Principal
    ben: Principal
    admin: Principal


EMAILS = {"asha": "asha.patel@example.nhs.uk", "ben": "ben.okafor@example.nhs.uk", "ada": "ada.admin@example.nhs.uk"}


@pytest.fixture
def people(db: Engine, services: dict[str, int]) -> People:
    asha = support_accounts.account(db, "Dr Asha Patel", LEADS, email=EMAILS["asha"])
    ben = support_accounts.account(db, "Ben Okafor", LEADS, email=EMAILS["ben"])
    admin = support_accounts.account(db, "Ada Admin", (*EVERY_STAFF_ROLE, ADMINISTRATOR), email=EMAILS["ada"])
    with Session(db) as s:
        for who in (asha, ben):
            signin.set_password(s, admin, SystemClock(), who.user_id, PASSWORD)
        signin.set_password(s, admin, SystemClock(), None, PASSWORD)  # her own
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


@pytest.fixture(autouse=True)
def _chromium_first() -> None:
    """Skip (or, in CI, fail) before anything is built when Chromium is missing."""
    require_chromium()


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
    assert "/sign-in" in driver.current_url and status(driver) == 401
    assert "not recognised" in driver.find_element("css selector", ".nhsuk-error-summary").text
    assert driver.get_cookie("peerwatch_session") is None
    check_page(driver, "sign-in-refused")
    sign_in(driver, app, EMAILS["asha"], PASSWORD)
    assert driver.current_url == app.url("/")
    assert "Dr Asha Patel" in body_text(driver)
    check_page(driver, "my-work-empty")


def test_a_training_database_says_so_on_every_page(
    db_url: str, db: Engine, services: dict[str, int], tmp_path: Path, browsers: Browsers
) -> None:
    support_accounts.make_training(db)
    trainee = support_accounts.account(db, "Tess Trainee", LEADS, email="tess.trainee@example.nhs.uk")
    with Session(db) as s:
        signin.set_password(s, trainee, SystemClock(), None, PASSWORD)
        s.commit()
    risk = raise_sc(db, services, trainee, "A practice serious concern")
    server = start_app(tmp_path)
    try:
        driver = browsers.new()
        for path in ("/sign-in", "/", "/items/risk", f"/items/risk/{risk}", f"/items/risk/{risk}/act/rescore"):
            if path == "/":
                sign_in(driver, server, "tess.trainee@example.nhs.uk", PASSWORD)
                assert driver.current_url == server.url("/")
            else:
                driver.get(server.url(path))
            banner = driver.find_element("css selector", ".pw-training").text
            assert "Training" in banner and "letters are never sent" in banner, (path, banner)
        check_page(driver, "training-act-rescore")
    finally:
        server.stop()


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


def test_sign_out_ends_the_session(app: Server, people: People, browsers: Browsers) -> None:
    driver = browsers.new()
    sign_in(driver, app, EMAILS["ben"], PASSWORD)
    assert driver.current_url == app.url("/")
    cookie = driver.get_cookie("peerwatch_session")
    assert cookie is not None and cookie["httpOnly"]
    submit_via(driver, driver.find_element("xpath", "//form[@action='/sign-out']//button"))
    assert "/sign-in" in driver.current_url
    assert driver.get_cookie("peerwatch_session") is None
    check_page(driver, "signed-out")

    # Back: the page is not shown again from the browser's back/forward cache (Chrome keeps
    # even no-store pages there): it is asked for again, and the server says sign in.
    driver.back()
    assert eventually(driver, lambda d: "/sign-in" in d.current_url), (
        f"back after sign-out showed {driver.current_url}: {body_text(driver)[:300]!r}"
    )
    assert "Ben Okafor" not in body_text(driver)
    driver.get(app.url("/"))
    assert "/sign-in" in driver.current_url

    # The old cookie, put back by hand, opens nothing: the session ended on the server.
    driver.add_cookie({"name": "peerwatch_session", "value": cookie["value"], "path": "/"})
    driver.get(app.url("/"))
    assert "/sign-in" in driver.current_url
    assert "Ben Okafor" not in body_text(driver)


def version_on_page(driver: Any) -> int:
    """The item's version as its page shows it ("<state> version N. Next: ...")."""
    found = re.search(r"\bversion (\d+)\b", body_text(driver))
    assert found, body_text(driver)[:500]
    return int(found.group(1))


def button(driver: Any, text: str) -> Any:
    """The main content's submit button showing ``text``."""
    return driver.find_element("xpath", f"//main//button[normalize-space()={text!r}]")


def risk_row(db: Engine, risk: int) -> Risk:
    with Session(db) as s:
        row = s.get(Risk, risk)
        assert row is not None
        return row


def test_my_work_shows_my_deadline_and_a_rescore_fires_from_the_item_page(
    app: Server, db: Engine, people: People, browsers: Browsers, services: dict[str, int]
) -> None:
    risk = raise_sc(db, services, people.ben, "Consultant cover below the standard at night")
    driver = browsers.new()
    driver.get(app.url("/"))
    assert driver.current_url == app.url("/sign-in"), "My work without a session goes to sign-in"
    sign_in(driver, app, EMAILS["asha"], PASSWORD)
    assert driver.current_url == app.url("/")
    row = driver.find_element("css selector", f"#deadlines a[href='/items/risk/{risk}']").find_element(
        "xpath", "ancestor::tr"
    )
    assert f"SC-{risk}" in row.text and "formal notification letter" in row.text, row.text
    assert "Midland Royal" in row.text and " 5" in row.text  # the service; 5 working days left
    check_page(driver, "my-work")

    submit_via(driver, driver.find_element("link text", f"SC-{risk}"))
    assert driver.current_url == app.url(f"/items/risk/{risk}")
    before = version_on_page(driver)
    assert before == risk_row(db, risk).version
    check_page(driver, "risk-page")

    submit_via(driver, driver.find_element("css selector", "#triggers").find_element("link text", "Rescore"))
    assert driver.current_url == app.url(f"/items/risk/{risk}/act/rescore")
    check_page(driver, "act-rescore")
    # An impact out of range is refused by the server, beside the field (the form is novalidate).
    driver.find_element("id", "field-impact").send_keys("9")
    driver.find_element("id", "field-likelihood").send_keys("4")
    submit_via(driver, button(driver, "Rescore"))
    assert "There is a problem" in body_text(driver) and status(driver) == 400
    assert driver.find_element("css selector", ".nhsuk-error-summary a").get_attribute("href").endswith("#field-impact")
    check_page(driver, "act-rescore-error")
    assert risk_row(db, risk).version == before  # nothing changed

    impact = driver.find_element("id", "field-impact")
    impact.clear()
    impact.send_keys("5")
    submit_via(driver, button(driver, "Rescore"))
    assert driver.current_url == app.url(f"/items/risk/{risk}?done=rescore")
    assert "Rescore: done" in driver.find_element("css selector", "[role=status]").text
    assert version_on_page(driver) == before + 1
    summary = driver.find_element("id", "summary").text
    assert re.search(r"Impact\s+5\b", summary) and re.search(r"Likelihood\s+4\b", summary), summary
    history = driver.find_element("id", "history").text
    assert "rescore" in history and "Dr Asha Patel" in history, history
    stored = risk_row(db, risk)
    assert (stored.impact, stored.likelihood, stored.version, stored.state) == (5, 4, before + 1, "identified")


def test_four_eyes_by_two_people_in_two_browsers(
    app: Server, db: Engine, people: People, browsers: Browsers, services: dict[str, int]
) -> None:
    risk = raise_sc(db, services, people.ben, "No neonatal outreach team")
    with Session(db) as s:  # an administrator asks for two people on the formal notification
        accounts.set_permission(s, people.admin, SystemClock(), "risk", "send_formal_notification", four_eyes=True)
        s.commit()
    act = f"/items/risk/{risk}/act/send_formal_notification"
    asha, ben = browsers.new(), browsers.new()
    sign_in(asha, app, EMAILS["asha"], PASSWORD)
    sign_in(ben, app, EMAILS["ben"], PASSWORD)

    asha.get(app.url(act))
    assert "This needs two people" in body_text(asha)
    submit_via(asha, button(asha, "Continue"))
    assert "Check your answers" in asha.find_element("tag name", "h1").text
    assert "A second person must confirm it" in body_text(asha)
    check_page(asha, "check-your-answers-four-eyes")
    submit_via(asha, asha.find_element("id", "confirm"))
    assert asha.current_url == app.url(f"/items/risk/{risk}?proposed=send_formal_notification")
    assert "A second person must confirm it" in asha.find_element("css selector", "[role=status]").text
    assert risk_row(db, risk).state == "identified"
    triggers = asha.find_element("id", "triggers").text
    assert "Send formal notification: you proposed it: a second person must confirm it" in triggers, triggers

    # Asha's own proposal is not in her My work; she cannot confirm it herself, and is told why.
    asha.get(app.url("/"))
    assert asha.find_elements("id", "no-proposals"), body_text(asha)
    asha.get(app.url(act))
    assert "you proposed it: a second person must confirm it" in body_text(asha)
    submit_via(asha, button(asha, "Continue"))
    submit_via(asha, asha.find_element("id", "confirm"))
    refused = body_text(asha)
    assert status(asha) == 400
    assert "needs four eyes: Dr Asha Patel proposed it, so a different person must confirm it" in refused, refused
    check_page(asha, "four-eyes-refused")
    assert risk_row(db, risk).state == "identified"

    # Ben sees it waiting in his My work, checks and confirms it: the risk moves on.
    ben.get(app.url("/"))
    waiting = ben.find_element("css selector", f"#proposals a[href='/items/risk/{risk}']").find_element(
        "xpath", "ancestor::tr"
    )
    assert "send formal notification" in waiting.text and "Dr Asha Patel" in waiting.text, waiting.text
    check_page(ben, "my-work-proposals")
    submit_via(ben, ben.find_element("css selector", f"#proposals a[href='{act}']"))
    assert "Dr Asha Patel (network-manager) proposed this" in ben.find_element("id", "proposal").text
    check_page(ben, "act-confirm-proposal")
    submit_via(ben, button(ben, "Continue"))
    submit_via(ben, ben.find_element("id", "confirm"))
    assert ben.current_url == app.url(f"/items/risk/{risk}?done=send_formal_notification")
    assert "now awaiting response" in ben.find_element("css selector", "[role=status]").text
    assert risk_row(db, risk).state == "awaiting_response"
    history = ben.find_element("id", "history").text
    assert "Ben Okafor" in history, history


def test_a_stale_form_is_refused_with_what_changed(
    app: Server, db: Engine, people: People, browsers: Browsers, services: dict[str, int]
) -> None:
    risk = raise_sc(db, services, people.asha, "Transfer times above the standard")
    act = f"/items/risk/{risk}/act/rescore"
    asha, ben = browsers.new(), browsers.new()
    sign_in(asha, app, EMAILS["asha"], PASSWORD, next_path=act)
    sign_in(ben, app, EMAILS["ben"], PASSWORD, next_path=act)
    assert asha.current_url == ben.current_url == app.url(act)
    version = risk_row(db, risk).version
    for driver, impact in ((asha, "4"), (ben, "2")):
        driver.find_element("id", "field-impact").send_keys(impact)
        driver.find_element("id", "field-likelihood").send_keys(impact)

    submit_via(asha, button(asha, "Rescore"))
    assert asha.current_url == app.url(f"/items/risk/{risk}?done=rescore")
    submit_via(ben, button(ben, "Rescore"))
    assert ben.current_url == app.url(act)  # the form again, not the item page
    assert status(ben) == 409
    assert "Someone changed this risk since you opened the form" in body_text(ben)
    changed = ben.find_element("id", "changes").text
    assert "Dr Asha Patel (network-manager) rescore" in changed, changed
    assert f"version {version + 1}" in changed, changed
    check_page(ben, "act-stale")
    stored = risk_row(db, risk)
    assert (stored.impact, stored.likelihood, stored.version) == (4, 4, version + 1)  # Ben's changed nothing

    # Ben's answers are kept; sent again on the fresh form, they count.
    assert ben.find_element("id", "field-impact").get_attribute("value") == "2"
    submit_via(ben, button(ben, "Rescore"))
    assert ben.current_url == app.url(f"/items/risk/{risk}?done=rescore")
    stored = risk_row(db, risk)
    assert (stored.impact, stored.likelihood, stored.version) == (2, 2, version + 2)


# The main pages not already checked on the way in the tests above (My work, an item's page, the
# rescore form, four eyes' check-your-answers), each with a name for its screenshot; {risk} is a
# risk's id. Whose template each is: web/templates/<folder>/ (W: sign_in, base; P: work, items;
# M: the rest).
TOUR = (
    ("risk-list", "/items/risk"),
    ("risk-list-overdue", "/items/risk?overdue=1"),
    ("notified-risk-page", "/items/risk/{notified}"),
    ("letter", "/items/risk/{notified}/letters/{letter}"),
    ("visit-list", "/items/visit"),
    ("complaint-list", "/items/complaint"),
    ("not-found", "/items/risk/99999"),
    ("act-extend-deadline", "/items/risk/{risk}/act/extend_deadline"),
    ("act-withdraw", "/items/risk/{risk}/act/withdraw"),
    ("create", "/create"),
    ("create-risk", "/create/risk"),
    ("dashboard", "/dashboard"),
    ("dashboard-network", "/dashboard/WMTN"),
    ("outbox", "/outbox"),
    ("contacts", "/contacts"),
    ("contact", "/contacts/1"),
    ("reviewers", "/reviewers"),
    ("admin-users", "/admin/users"),
    ("admin-user", "/admin/users/{asha}"),
    ("admin-new-user", "/admin/users/new"),
    ("tokens", "/account/tokens"),
)


def test_axe_finds_no_serious_violation_on_the_main_pages(
    app: Server, db: Engine, people: People, browsers: Browsers, services: dict[str, int]
) -> None:
    risk = raise_sc(db, services, people.asha, "Consultant cover below the standard at night")
    notified = raise_sc(db, services, people.asha, "Midwife staffing below the standard")
    acting.fire(db, people.ben, SystemClock(), "risk", notified, "send_formal_notification")  # letters queued
    with Session(db) as s:
        letter = s.exec(
            select(OutboxMessage.id).where(OutboxMessage.kind == "risk", OutboxMessage.item_id == notified)
        ).first()
    assert letter is not None
    ids = {"risk": risk, "notified": notified, "letter": letter, "asha": people.asha.user_id}
    driver = browsers.new()
    sign_in(driver, app, EMAILS["ada"], PASSWORD)
    found: list[str] = []
    missing: list[str] = []
    for name, path in TOUR:
        driver.get(app.url(path.format(**ids)))
        text = body_text(driver)
        expected = 404 if name == "not-found" else 200
        if status(driver) != expected or "/sign-in" in driver.current_url:
            missing.append(f"{name}: {path} -> {status(driver)} {driver.current_url}: {text[:200]!r}")
        found += blocking(driver, name)

    # Check your answers (a withdrawal is irreversible), reached by answering the form.
    driver.get(app.url(f"/items/risk/{risk}/act/withdraw"))
    note = driver.find_elements("css selector", "main textarea[name=note], main input[name=note]")
    if note:
        note[0].send_keys("Raised in error")
        submit_via(driver, note[0].find_element("xpath", "ancestor::form//button"))
        found += blocking(driver, "check-your-answers")
    else:
        missing.append(f"check-your-answers: no note box on the withdraw form ({driver.current_url})")
    assert not (missing or found), (
        "pages that did not open:\n"
        + "\n".join(missing)
        + "\naxe-core's serious or critical violations:\n"
        + "\n".join(found)
    )
