"""My work, the lists, an item's page and acting on it, through FastAPI's TestClient on a real
database with real accounts and sessions (states.services.signin): every page renders; a step
with a parameter fired through its form; the check-your-answers page before a withdrawal; a stale
form refused with what changed; another network's item the same 404 as a missing one; a role
without the step refused (403), recorded, the item unchanged."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, OutboxMessage, Risk
from models.accounts import User
from models.tables import Network, RefusedAttempt
from states import engine
from states.clock import SystemClock, local_date
from states.machines.spec import kinds
from states.principal import Principal
from states.services import signin
from tests import support_accounts
from tests.factories import MRH
from web.app import create_app

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "quilted marmot evening drizzle 83"
MERSEY = "Mersey Harbour Major Trauma Centre"


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


def network_id(db: Engine, code: str) -> int:
    with Session(db) as s:
        net = s.exec(select(Network).where(Network.code == code)).one()
        assert net.id is not None
        return net.id


def raise_now(db: Engine, services: dict[str, int], service: str = MRH, level: str = "IR") -> int:
    """A risk raised today on the real clock (a person's web action happens now)."""
    today = local_date(SystemClock().now())
    nm = support_accounts.account(db, "Raising Manager", ("network-manager", "regional-lead"))
    with Session(db, expire_on_commit=False) as s:
        row = Risk(
            service_id=services[service],
            level=level,
            title=f"{level} <b>at</b> visit",
            identified_on=today,
            visit_date=today,
        )
        out = engine.create(s, "risk", row, "raise", principal=nm, clock=SystemClock())
        s.commit()
        assert out.row.id is not None
        return out.row.id


def risk(db: Engine, item_id: int) -> Risk:
    with Session(db, expire_on_commit=False) as s:
        row = s.get(Risk, item_id)
        assert row is not None
        return row


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def version_of(html: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', html)
    assert found, "the form carries no version"
    return found.group(1)


def get_ok(client: TestClient, url: str) -> str:
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 200, (url, r.status_code, r.text[:800])
    return r.text


def reason(html: str) -> str:
    found = re.search(r'pw-reason">(.*?)</p>', html, re.S)
    assert found, html[:500]
    return found.group(1)


def refusals(db: Engine) -> int:
    with Session(db) as s:
        return int(s.exec(select(func.count()).select_from(RefusedAttempt)).one())


@pytest.fixture
def west(db_url: str, db: Engine, services: dict[str, int]) -> tuple[TestClient, Principal]:
    return signed_in(
        db_url, db, "West Manager", ("network-manager", "operator"), scope="network", scope_id=network_id(db, "WMTN")
    )


def test_every_page_renders(db: Engine, services: dict[str, int], west: tuple[TestClient, Principal]) -> None:
    client, _ = west
    item_id = raise_now(db, services)
    home = get_ok(client, "/")
    assert f"/items/risk/{item_id}" in home and "IR &lt;b&gt;at&lt;/b&gt; visit" in home  # escaped
    assert "formal notification" in home
    get_ok(client, "/?overdue=1&page=1")
    for kind in kinds():
        get_ok(client, f"/items/{kind}")
    listed = get_ok(client, f"/items/risk?q=IR-{item_id}&state=identified&due_before=2099-01-01&network=WMTN")
    assert f"/items/risk/{item_id}" in listed
    page = get_ok(client, f"/items/risk/{item_id}")
    assert 'id="history"' in page and "Raising Manager" in page and 'aria-current="step"' in page
    assert f"/items/risk/{item_id}/act/rescore" in page and "<b>at</b>" not in page
    for trigger in ("rescore", "regrade", "withdraw", "send_formal_notification", "extend_deadline"):
        form = get_ok(client, f"/items/risk/{item_id}/act/{trigger}")
        assert 'name="csrf_token"' in form and 'name="version"' in form
    notified = raise_now(db, services)
    with Session(db) as s:
        engine.fire(
            s,
            "risk",
            notified,
            "send_formal_notification",
            principal=support_accounts.account(db, "Other Lead", ("regional-lead",)),
            clock=SystemClock(),
        )
        letters = s.exec(
            select(OutboxMessage).where(OutboxMessage.item_id == notified, OutboxMessage.kind == "risk")
        ).all()
        assert letters, "the formal notification queues its letter"
        s.commit()
        ids = [m.id for m in letters]
    page = get_ok(client, f"/items/risk/{notified}")
    for message_id in ids:
        assert f"/items/risk/{notified}/letters/{message_id}" in page
        unsent = get_ok(client, f"/items/risk/{notified}/letters/{message_id}")
        assert 'id="not-sent"' in unsent and 'id="preview"' in unsent  # as it will be sent
    with Session(db) as s:  # as the dispatcher keeps what it sent
        sent = s.get(OutboxMessage, ids[0])
        assert sent is not None
        sent.subject, sent.body_text, sent.status = "Formal notification", "Dear <Chief Executive>,\nwe write", "sent"
        s.add(sent)
        s.commit()
    shown = get_ok(client, f"/items/risk/{notified}/letters/{ids[0]}")
    assert "Dear &lt;Chief Executive&gt;," in shown and "Formal notification" in shown and 'id="preview"' not in shown
    assert client.get("/items/nonsense").status_code == 404
    assert client.get(f"/items/risk/{item_id}/letters/999999").status_code == 404


def test_a_step_with_parameters_fired_through_its_form(
    db: Engine, services: dict[str, int], west: tuple[TestClient, Principal]
) -> None:
    client, nm = west
    item_id = raise_now(db, services)
    form = get_ok(client, f"/items/risk/{item_id}/act/rescore")
    assert 'type="number"' in form and 'min="1"' in form and 'max="6"' in form
    data = {"csrf_token": csrf_of(form), "version": version_of(form)}
    bad = client.post(f"/items/risk/{item_id}/act/rescore", data={**data, "impact": "9", "likelihood": "3"})
    assert bad.status_code == 400 and "nhsuk-error-summary" in bad.text and "#field-impact" in bad.text
    assert risk(db, item_id).impact is None
    r = client.post(
        f"/items/risk/{item_id}/act/rescore", data={**data, "impact": "4", "likelihood": "3"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"/items/risk/{item_id}?done=rescore"
    row = risk(db, item_id)
    assert (row.impact, row.likelihood) == (4, 3)
    with Session(db) as s:
        last = s.exec(select(AuditEvent).where(AuditEvent.item_id == item_id).order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
    assert (
        last is not None and last.trigger == "rescore" and last.user_id == nm.user_id and last.data.get("via") == "web"
    )
    assert "Rescore: done" in get_ok(client, r.headers["location"])
    # a link cannot make the page say something was done: only the last thing I did
    assert "Withdraw: done" not in get_ok(client, f"/items/risk/{item_id}?done=withdraw")


def test_a_withdrawal_is_checked_before_it_is_fired(
    db: Engine, services: dict[str, int], west: tuple[TestClient, Principal]
) -> None:
    client, _ = west
    item_id = raise_now(db, services)
    form = get_ok(client, f"/items/risk/{item_id}/act/withdraw")
    data = {"csrf_token": csrf_of(form), "version": version_of(form), "note": "raised on the wrong service"}
    check = client.post(f"/items/risk/{item_id}/act/withdraw", data=data, follow_redirects=False)
    assert check.status_code == 200 and "Check your answers" in check.text and "nhsuk-summary-list" in check.text
    assert 'name="confirmed" value="1"' in check.text and "raised on the wrong service" in check.text
    assert risk(db, item_id).state == "identified"  # nothing fired yet
    r = client.post(f"/items/risk/{item_id}/act/withdraw", data={**data, "confirmed": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert risk(db, item_id).state == "withdrawn"


def test_a_stale_form_is_refused_with_what_changed(
    db: Engine, services: dict[str, int], west: tuple[TestClient, Principal]
) -> None:
    client, _ = west
    item_id = raise_now(db, services)
    form = get_ok(client, f"/items/risk/{item_id}/act/rescore")
    other = support_accounts.account(db, "Other Lead", ("regional-lead",))
    with Session(db) as s:
        engine.fire(s, "risk", item_id, "send_formal_notification", principal=other, clock=SystemClock())
        s.commit()
    before = risk(db, item_id)
    data = {"csrf_token": csrf_of(form), "version": version_of(form), "impact": "2", "likelihood": "2"}
    r = client.post(f"/items/risk/{item_id}/act/rescore", data=data, follow_redirects=False)
    assert r.status_code == 409, r.text[:500]
    assert "Other Lead" in r.text and "send formal notification" in r.text and 'id="changes"' in r.text
    assert version_of(r.text) == str(before.version)  # the fresh form, at the new version
    after = risk(db, item_id)
    assert after.version == before.version and after.impact is None


def test_another_networks_item_is_the_same_404_as_a_missing_one(
    db: Engine, services: dict[str, int], west: tuple[TestClient, Principal]
) -> None:
    client, _ = west
    theirs = raise_now(db, services, MERSEY)
    missing = 987654
    for path in ("", "/act/rescore", "/letters/1"):
        hidden = client.get(f"/items/risk/{theirs}{path}")
        absent = client.get(f"/items/risk/{missing}{path}")
        assert hidden.status_code == absent.status_code == 404
        shown, gone = reason(hidden.text), reason(absent.text)
        assert shown.replace(str(theirs), "N") == gone.replace(str(missing), "N"), (shown, gone)
        assert hidden.text.replace(shown, "") == absent.text.replace(gone, "")
    assert f"/items/risk/{theirs}" not in get_ok(client, "/items/risk")


def test_a_role_without_the_step_is_refused_and_recorded_with_nothing_changed(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    client, office = signed_in(
        db_url, db, "West Office", ("network-office",), scope="network", scope_id=network_id(db, "WMTN")
    )
    item_id = raise_now(db, services)
    page = get_ok(client, f"/items/risk/{item_id}")
    assert "/act/send_formal_notification" not in page
    assert client.get(f"/items/risk/{item_id}/act/send_formal_notification").status_code == 403
    before, tried = risk(db, item_id), refusals(db)
    r = client.post(
        f"/items/risk/{item_id}/act/send_formal_notification",
        data={"csrf_token": csrf_of(page), "version": str(before.version)},
        follow_redirects=False,
    )
    assert r.status_code == 403, r.text[:500]
    after = risk(db, item_id)
    assert (after.version, after.state) == (before.version, before.state)
    assert refusals(db) == tried + 1
    with Session(db) as s:
        last = s.exec(select(RefusedAttempt).order_by(RefusedAttempt.id.desc())).first()  # type: ignore[union-attr]
    assert last is not None and last.user_id == office.user_id and last.trigger == "send_formal_notification"


def test_every_page_of_a_whole_review_renders_with_its_forms(
    db_url: str, db: Engine, session: Session, services: dict[str, int]
) -> None:
    from datetime import timedelta  # lazy: only this test

    from tests.support_appeals import P, build_world, submit_appeal  # lazy: its fixtures build a whole review

    w = build_world(session, services)
    appeal = submit_appeal(db, w, P + timedelta(days=3))
    client, _ = signed_in(db_url, db, "Whole Staff", ("network-manager", "regional-lead", "network-office", "operator"))
    forms_seen, workspaces = [], []
    for kind, item_id in (("visit", w.visit_id), ("report", w.report_id), ("appeal", appeal.id), ("risk", w.sc)):
        page = get_ok(client, f"/items/{kind}/{item_id}")
        for trigger in sorted(set(re.findall(rf'href="/items/{kind}/{item_id}/act/(\w+)"', page))):
            form = get_ok(client, f"/items/{kind}/{item_id}/act/{trigger}")
            assert 'name="version"' in form and "<h1>" in form
            forms_seen.append((kind, trigger))
        for message_id in re.findall(rf'href="/items/{kind}/{item_id}/letters/(\d+)"', page):
            get_ok(client, f"/items/{kind}/{item_id}/letters/{message_id}")
        for workspace in re.findall(rf'href="(/{kind}s/{item_id}/\w+)"', page):  # panel, draft, accuracy
            assert "<h1>" in get_ok(client, workspace)
            workspaces.append(workspace)
    assert len(forms_seen) > 5, forms_seen
    assert sorted(workspaces) == sorted(
        [
            f"/visits/{w.visit_id}/panel",
            f"/reports/{w.report_id}/draft",
            f"/reports/{w.report_id}/accuracy",
            f"/risks/{w.sc}/responses",  # staff read the Trust's responses; only the Trust answers
        ]
    )


def test_a_four_eyes_step_is_proposed_by_one_and_confirmed_by_another(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    from models.accounts import PermissionRule  # lazy: only this test

    with Session(db) as s:
        s.add(PermissionRule(kind="risk", trigger="rescore", four_eyes=True))  # as an administrator would set it
        s.commit()
    first, _ = signed_in(db_url, db, "First Manager", ("network-manager",))
    second, _ = signed_in(db_url, db, "Second Lead", ("regional-lead",))
    item_id = raise_now(db, services)
    url = f"/items/risk/{item_id}/act/rescore"

    def through_check(client: TestClient, answers: dict[str, str]) -> str:
        form = get_ok(client, url)
        data = {"csrf_token": csrf_of(form), "version": version_of(form), **answers}
        check = client.post(url, data=data)
        assert check.status_code == 200 and "Check your answers" in check.text, check.text[:500]
        done = client.post(url, data={**data, "confirmed": "1"}, follow_redirects=False)
        assert done.status_code == 303, done.text[:500]
        return str(done.headers["location"])

    assert through_check(first, {"impact": "5", "likelihood": "2"}).endswith("?proposed=rescore")
    assert risk(db, item_id).impact is None  # proposed only
    assert f"/items/risk/{item_id}" in get_ok(second, "/")  # waiting for a second person
    offered = get_ok(second, url)
    assert "First Manager" in offered and 'value="5"' in offered and 'value="2"' in offered  # filled as proposed
    mine = get_ok(first, f"/items/risk/{item_id}")
    assert f'href="{url}"' not in mine and "a second person must confirm it" in mine
    assert through_check(second, {"impact": "5", "likelihood": "2"}).endswith("?done=rescore")
    assert (risk(db, item_id).impact, risk(db, item_id).likelihood) == (5, 2)


def test_signed_out_is_sent_to_sign_in_and_a_post_without_its_token_changes_nothing(
    db_url: str, db: Engine, services: dict[str, int], west: tuple[TestClient, Principal]
) -> None:
    client, _ = west
    item_id = raise_now(db, services)
    stranger = TestClient(create_app(db_url), base_url="http://testserver")
    for path in ("/", "/items/risk", f"/items/risk/{item_id}", f"/items/risk/{item_id}/act/withdraw"):
        r = stranger.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/sign-in"), (path, r.status_code)
    form = get_ok(client, f"/items/risk/{item_id}/act/withdraw")
    before, tried = risk(db, item_id), refusals(db)
    r = client.post(
        f"/items/risk/{item_id}/act/withdraw",
        data={"version": version_of(form), "note": "no token", "confirmed": "1", "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    after = risk(db, item_id)
    assert (after.state, after.version) == (before.state, before.version) and refusals(db) == tried
