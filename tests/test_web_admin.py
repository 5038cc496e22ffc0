"""The administrators' pages and everyone's own tokens (issue 15): accounts, grants with scope,
disabling, setting a password; API and calendar feed tokens shown once and revocable. Refused to
anyone who is not an administrator (403), with the use case's reason; every change audited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent
from models.accounts import AccessToken, RoleGrant, User
from states.clock import SystemClock
from states.errors import MissingActor
from states.services import accounts, signin
from tests.test_web_manage import PASSWORD, csrf_of, get_ok, network_id, signed_in

ADMIN_PAGES = ("/admin/users", "/admin/users/new")


def test_admin_pages_refuse_anyone_who_is_not_an_administrator(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    nm, nm_p = signed_in(db_url, db, "Nia Manager", ("network-manager", "operator"))
    for url in (*ADMIN_PAGES, f"/admin/users/{nm_p.user_id}"):
        r = nm.get(url)
        assert r.status_code == 403, (url, r.status_code)
        assert "only an administrator may" in r.text
    html = get_ok(nm, "/account/tokens")  # one's own tokens: anyone signed in
    r = nm.post(f"/admin/users/{nm_p.user_id}/grant", data={"csrf_token": csrf_of(html), "role": "administrator"})
    assert r.status_code == 403
    with Session(db) as s:
        assert not s.exec(
            select(RoleGrant).where(RoleGrant.user_id == nm_p.user_id, RoleGrant.role == "administrator")
        ).first()


def test_an_administrator_adds_an_account_grants_a_scoped_role_sets_its_password_and_disables_it(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    admin, admin_p = signed_in(db_url, db, "Ada Admin", ("administrator",))
    html = get_ok(admin, "/admin/users")
    assert "Ada Admin" in html
    html = get_ok(admin, "/admin/users/new")
    r = admin.post("/admin/users/new", data={"csrf_token": csrf_of(html), "name": "Sam New",
                                            "email": "sam.new@example.nhs.uk"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    uid = int(re.search(r"/admin/users/(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]
    html = get_ok(admin, f"/admin/users/{uid}")
    assert "Sam New" in html and "No grants." in html
    wmtn = network_id(db, "WMTN")
    r = admin.post(f"/admin/users/{uid}/grant", data={"csrf_token": csrf_of(html), "role": "network-office",
                                                       "scope": f"network:{wmtn}"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    html = get_ok(admin, f"/admin/users/{uid}")
    assert "network-office" in html and "West Midlands Trauma Network" in html
    # an unknown role is refused with the use case's reason, nothing granted
    r = admin.post(f"/admin/users/{uid}/grant", data={"csrf_token": csrf_of(html), "role": "king"})
    assert r.status_code == 422 and "unknown role" in r.text and "nhsuk-error-summary" in r.text
    # a too-common password is refused; a good one is set, and signs in
    r = admin.post(f"/admin/users/{uid}/password",
                   data={"csrf_token": csrf_of(html), "password": "password", "password_again": "password"})  # fmt: skip
    assert r.status_code == 422 and "nhsuk-error-summary" in r.text
    r = admin.post(f"/admin/users/{uid}/password", data={"csrf_token": csrf_of(html), "password": PASSWORD,
                                                          "password_again": PASSWORD}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert signin.sign_in(db, "sam.new@example.nhs.uk", PASSWORD, "127.0.0.1", SystemClock()).user_id == uid
    with Session(db) as s:
        grant = s.exec(select(RoleGrant).where(RoleGrant.user_id == uid)).one()
        assert (grant.role, grant.scope, grant.scope_id) == ("network-office", "network", wmtn)
    r = admin.post(f"/admin/users/{uid}/revoke", data={"csrf_token": csrf_of(html), "grant": str(grant.id)},
                   follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    r = admin.post(f"/admin/users/{uid}/disable", data={"csrf_token": csrf_of(html), "note": "left the network"},
                   follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with Session(db) as s:
        assert s.get(User, uid).status == "disabled"  # type: ignore[union-attr]
        assert s.get(RoleGrant, grant.id).revoked_at is not None  # type: ignore[union-attr]
        actions = [e.trigger for e in s.exec(select(AuditEvent).where(AuditEvent.kind == "account",
                                                                     AuditEvent.item_id == uid))]  # fmt: skip
        assert {"add", "grant", "password_set", "revoke", "disable"} <= set(actions)
        by = {e.user_id for e in s.exec(select(AuditEvent).where(AuditEvent.kind == "account", AuditEvent.item_id == uid,
                                                                 AuditEvent.trigger != "signed_in"))}  # fmt: skip
        assert by == {admin_p.user_id}
    # an administrator cannot disable their own account (the use case refuses; shown, not a 500)
    r = admin.post(f"/admin/users/{admin_p.user_id}/disable", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 422 and "your own account" in r.text


def test_admin_actions_need_the_csrf_token(db_url: str, db: Engine, services: dict[str, int]) -> None:
    admin, _ = signed_in(db_url, db, "Ada Admin", ("administrator",))
    r = admin.post("/admin/users/new", data={"name": "Sam New", "email": "sam.new@example.nhs.uk"})
    assert r.status_code == 403
    with Session(db) as s:
        assert s.exec(select(User).where(User.email == "sam.new@example.nhs.uk")).first() is None


def test_my_tokens_are_shown_once_and_revoked(db_url: str, db: Engine, services: dict[str, int]) -> None:
    client, me = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    html = get_ok(client, "/account/tokens")
    r = client.post("/account/tokens", data={"csrf_token": csrf_of(html), "name": "Outlook", "purpose": "feed"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    token = re.search(r'<code id="token-value">(pw_[^<]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    assert f"/feeds/{token}/WMTN.ics" in r.text
    with Session(db) as s:
        row = s.exec(select(AccessToken).where(AccessToken.user_id == me.user_id)).one()
        assert row.purpose == "feed" and row.token_hash != token
    html = get_ok(client, "/account/tokens")
    assert token not in html and "Outlook" in html  # shown once only
    # a feed token is no API token
    with Session(db) as s, pytest.raises(MissingActor):
        accounts.token_principal(s, token, SystemClock())
    r = client.post(f"/account/tokens/{row.id}/revoke", data={"csrf_token": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303
    with Session(db) as s:
        assert s.get(AccessToken, row.id).revoked_at is not None  # type: ignore[union-attr]
    # someone else's token is not found, and not revoked
    other, _ = signed_in(db_url, db, "Oscar Other", ("network-office",))
    html = get_ok(other, "/account/tokens")
    r = other.post("/account/tokens", data={"csrf_token": csrf_of(html), "name": "api", "purpose": "api"})
    assert r.status_code == 200
    with Session(db) as s:
        theirs = s.exec(select(AccessToken).where(AccessToken.name == "api")).one()
    html = get_ok(client, "/account/tokens")
    r = client.post(f"/account/tokens/{theirs.id}/revoke", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 404
    with Session(db) as s:
        assert s.get(AccessToken, theirs.id).revoked_at is None  # type: ignore[union-attr]
