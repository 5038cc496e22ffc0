"""A person's own account (``/account``, states/services/account_self.py): who I am, my grants and
open sessions; changing my own password (current one required, the one policy, my other sessions
end and this one stays, guesses throttled on sign-in's count, audited); signing out of every
other session; an account with single sign-on only is told passwords are not used for it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent
from models.accounts import User
from models.tables import Network, RefusedAttempt
from models.web import SignInAttempt, WebSession
from states.clock import SystemClock
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import NotFound, PermissionDenied, SignInRefused
from states.roles import AUDITOR, NETWORK_MANAGER
from states.services import account_self, signin
from tests import support_accounts
from tests.support_web import PASSWORD, client_for, csrf_of, signed_in

NEW = "copper lantern orchard whistle"


def _email(db: Engine, user_id: int) -> str:
    with Session(db) as s:
        user = s.get(User, user_id)
        assert user is not None and user.email is not None
        return user.email


def _hash(db: Engine, user_id: int) -> str | None:
    with Session(db) as s:
        user = s.get(User, user_id)
        assert user is not None
        return user.password_hash


def _events(db: Engine, user_id: int, action: str) -> list[AuditEvent]:
    with Session(db) as s:
        q = select(AuditEvent).where(AuditEvent.kind == "account", AuditEvent.item_id == user_id,
                                     AuditEvent.trigger == action)  # fmt: skip
        return list(s.exec(q.order_by(col(AuditEvent.id))))


def _change(client, html: str, current: str, new: str = NEW, again: str | None = None):  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf_of(html), "current_password": current, "new_password": new,
            "new_password_again": new if again is None else again}  # fmt: skip
    return client.post("/account/password", data=data)


def test_the_page_shows_who_i_am_my_grants_and_sessions_and_the_header_links_to_it(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    with Session(db) as s:
        wmtn = s.exec(select(Network).where(Network.code == "WMTN")).one()
    client, p = signed_in(db_url, db, "Nina Manager", (NETWORK_MANAGER,), scope="network", scope_id=wmtn.id)
    signin.sign_in(db, _email(db, p.user_id), PASSWORD, "10.0.0.9", SystemClock())  # a second browser
    r = client.get("/account")
    assert r.status_code == 200
    html = r.text
    assert 'href="/account"' in html  # the header's link to one's own account
    assert "Nina Manager" in html and _email(db, p.user_id) in html
    assert "network-manager" in html and "West Midlands Trauma Network (WMTN)" in html
    sessions = html[html.index('id="sessions"') :]
    assert sessions.count("<strong>This session</strong>") == 1 and "10.0.0.9" in sessions
    assert "Sign out of every other session" in html and 'action="/account/password"' in html


def test_changing_my_password_ends_my_other_sessions_and_keeps_this_one(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    client, p = signed_in(db_url, db, "Pat Manager", (NETWORK_MANAGER,))
    email = _email(db, p.user_id)
    other = signin.sign_in(db, email, PASSWORD, None, SystemClock())
    before = _hash(db, p.user_id)
    r = _change(client, client.get("/account").text, PASSWORD)
    assert r.status_code == 200, r.text[:800]
    assert "Password changed" in r.text and "1 other session ended" in r.text
    assert _hash(db, p.user_id) != before
    assert client.get("/account").status_code == 200  # still signed in here
    other_client = client_for(db_url, other.token)
    assert other_client.get("/account", follow_redirects=False).status_code == 303  # the other one has ended
    with pytest.raises(SignInRefused):
        signin.sign_in(db, email, PASSWORD, None, SystemClock())
    assert signin.sign_in(db, email, NEW, None, SystemClock()).user_id == p.user_id
    (event,) = _events(db, p.user_id, "password_set")[-1:]
    assert event.data["own"] is True and event.role == "(none)"
    assert PASSWORD not in str(event.data) and NEW not in str(event.data)


@pytest.mark.parametrize(
    ("current", "new", "again", "said", "code"),
    [
        ("not my password at all", NEW, None, "current password is not right", 422),
        (PASSWORD, NEW, NEW + " x", "not the same", 422),
        (PASSWORD, "letmein", None, "at least 12 characters", 422),
        (PASSWORD, PASSWORD, None, "the one you have now", 422),
        ("", NEW, None, "enter your current password", 422),
    ],
)
def test_a_refused_change_says_why_and_changes_nothing(
    db_url: str, db: Engine, current: str, new: str, again: str | None, said: str, code: int
) -> None:
    client, p = signed_in(db_url, db, "Ray Refused", (NETWORK_MANAGER,))
    other = signin.sign_in(db, _email(db, p.user_id), PASSWORD, None, SystemClock())
    before = _hash(db, p.user_id)
    r = _change(client, client.get("/account").text, current, new, again)
    assert r.status_code == code and said in r.text and "There is a problem" in r.text
    assert PASSWORD not in r.text and NEW not in r.text  # no password is echoed back into the form
    assert _hash(db, p.user_id) == before
    assert client_for(db_url, other.token).get("/account").status_code == 200  # nothing ended
    assert not _events(db, p.user_id, "password_set")[1:]  # only the fixture's own setting


def test_guesses_at_the_current_password_are_throttled_on_sign_ins_count(
    db_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERWATCH_SIGNIN_ACCOUNT_FAILURES", "3")
    client, p = signed_in(db_url, db, "Gus Guesser", (NETWORK_MANAGER,))
    html = client.get("/account").text
    for i in range(3):
        r = _change(client, html, f"wrong guess number {i}")
        assert r.status_code == 422 and "current password is not right" in r.text
    r = _change(client, html, PASSWORD)  # the right one, but the account is locked now
    assert r.status_code == 403 and "too many wrong passwords" in r.text
    with pytest.raises(SignInRefused, match="too many failed sign-ins"):  # the same lock as the sign-in page's
        signin.sign_in(db, _email(db, p.user_id), PASSWORD, None, SystemClock())
    with Session(db) as s:
        failures = s.exec(select(SignInAttempt).where(SignInAttempt.account_id == p.user_id,
                                                      col(SignInAttempt.ok).is_(False))).all()  # fmt: skip
        assert len(failures) == 3  # the refused ones are not failures of their own
        refused = s.exec(select(RefusedAttempt).where(RefusedAttempt.item_id == p.user_id,
                                                      RefusedAttempt.trigger == "password_set")).all()  # fmt: skip
        assert len(refused) == 4 and all(PASSWORD not in str(x.data) for x in refused)


def test_an_account_with_single_sign_on_only_is_told_passwords_are_not_used(db_url: str, db: Engine) -> None:
    client, p = signed_in(db_url, db, "Sol Sso", (NETWORK_MANAGER,))
    with Session(db) as s:
        user = s.get(User, p.user_id)
        assert user is not None
        user.password_hash, user.oidc_issuer, user.oidc_subject = None, "https://login.example.nhs.uk", "sub-1"
        s.add(user)
        s.commit()
    html = client.get("/account").text
    assert "passwords are not used for it" in html and 'action="/account/password"' not in html
    r = _change(client, html, PASSWORD)
    assert r.status_code == 422 and account_self.NO_PASSWORD in r.text
    assert _hash(db, p.user_id) is None


def test_signing_out_of_every_other_session_even_as_an_auditor(db_url: str, db: Engine) -> None:
    client, p = signed_in(db_url, db, "Aud Itor", (AUDITOR,))
    email = _email(db, p.user_id)
    others = [signin.sign_in(db, email, PASSWORD, None, SystemClock()) for _ in range(2)]
    html = client.get("/account").text
    r = client.post("/account/sessions/end-others", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 200 and "2 other sessions ended" in r.text and "signed in nowhere else" in r.text
    for o in others:
        assert client_for(db_url, o.token).get("/account", follow_redirects=False).status_code == 303
    assert client.get("/account").status_code == 200
    (event,) = _events(db, p.user_id, "sessions_ended")
    assert event.data["sessions_ended"] == 2 and event.role == "(none)"
    with Session(db) as s:
        reasons = {w.ended_reason for w in s.exec(select(WebSession).where(WebSession.user_id == p.user_id))}
        assert reasons == {None, "signed_out_elsewhere"}


def test_the_forms_refuse_a_missing_csrf_token_and_change_nothing(db_url: str, db: Engine) -> None:
    client, p = signed_in(db_url, db, "Cat Csrf", (NETWORK_MANAGER,))
    other = signin.sign_in(db, _email(db, p.user_id), PASSWORD, None, SystemClock())
    before = _hash(db, p.user_id)
    r = client.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW,
                                               "new_password_again": NEW})  # fmt: skip
    assert r.status_code == 403
    r = client.post("/account/sessions/end-others", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert _hash(db, p.user_id) == before
    assert client_for(db_url, other.token).get("/account").status_code == 200


def test_signed_out_the_page_asks_to_sign_in(db_url: str, db: Engine) -> None:
    r = client_for(db_url).get("/account", follow_redirects=False)
    assert r.status_code == 303 and re.match(r"/sign-in\?next=/account$", r.headers["location"])


def test_the_use_cases_refuse_the_system_principal_and_another_persons_session(db: Engine) -> None:
    mine = support_accounts.account(db, "Mo Mine", (NETWORK_MANAGER,))
    theirs = support_accounts.account(db, "Tia Theirs", (NETWORK_MANAGER,))
    with Session(db) as s:
        signin.set_password(s, theirs, SystemClock(), None, PASSWORD)
        s.commit()
    signin.sign_in(db, _email(db, theirs.user_id), PASSWORD, None, SystemClock())  # Tia's session
    with Session(db) as s:
        session_id = s.exec(select(WebSession.id).where(WebSession.user_id == theirs.user_id)).one()
        with pytest.raises(PermissionDenied):
            account_self.my_account(s, SYSTEM_PRINCIPAL, SystemClock(), None)
        assert session_id is not None
        with pytest.raises(NotFound):
            account_self.end_other_sessions(s, mine, SystemClock(), session_id)  # her session is not Mo's to keep
        s.rollback()
        assert s.exec(select(WebSession).where(col(WebSession.ended_at).is_not(None))).first() is None
