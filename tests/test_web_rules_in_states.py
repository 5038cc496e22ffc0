"""Issue 15's pages at scale and honest: the outbox's scope as one SQL condition (the same letters
as the per-letter rule it replaces) with bounded lists and counts; whether a letter may be
retried decided by the rule retry applies; contacts and reviewers a page at a time with the search
kept; ``?done=`` banners only for the signed-in person's own last step; administrators re-enable
an account and link or unlink its single sign-on identity; token lifetimes decided in states/."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Contact, OutboxMessage, Reviewer
from models.accounts import AccessToken, User
from models.tables import IN_DOUBT, Complaint, Network, Service
from models.web import WebSession
from states.clock import FixedClock, SystemClock, local_date
from states.errors import InvalidInput, NotFound, PermissionDenied
from states.machines.spec import get_spec
from states.principal import INSTALLATION, Principal
from states.roles import STAFF
from states.services import accounts, outbox, signin, web_manage
from tests import support_accounts
from tests.factories import MRH
from tests.support_web import PASSWORD, client_for, csrf_of, signed_in

NOW = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)
CLOCK = FixedClock(date(2026, 12, 14))
TODAY = local_date(SystemClock().now())


def _net(s: Session, code: str) -> int:
    n = s.exec(select(Network).where(Network.code == code)).one()
    assert n.id is not None
    return n.id


def _letter(s: Session, kind: str, item_id: int, status: str = "failed", error: str = "550 no", **kw: Any) -> int:
    m = OutboxMessage(idempotency_key=f"k{kind}{item_id}{status}{error}{kw}{datetime.now().timestamp()}", kind=kind,
                      item_id=item_id, template="formal_notification", to=[{"email": "x@example.nhs.uk"}],
                      status=status, last_error=error, next_attempt_at=kw.pop("next_at", NOW - timedelta(hours=1)),
                      **kw)  # fmt: skip
    s.add(m)
    s.flush()
    assert m.id is not None
    return m.id


def _old_rule(s: Session, principal: Principal, rows: list[OutboxMessage]) -> list[OutboxMessage]:
    """The per-letter check the page used before (web_manage.visible_outbox as it was)."""
    staff = [g for g in principal.grants if g.role in STAFF]
    if not staff:
        return []
    if any(g.scope == INSTALLATION for g in staff):
        return list(rows)
    out = []
    for m in rows:
        try:
            spec = get_spec(m.kind)
        except NotFound:
            continue
        row = s.get(spec.model, m.item_id)
        where = spec.recipient_scope(s, row) if row is not None else None
        if where is not None and any(g.covers(where) for g in staff):
            out.append(m)
    return out


@pytest.fixture
def letters(db: Engine, services: dict[str, int], raise_risk: Any) -> dict[str, int]:
    """Letters about risks in both networks, complaints (their own scope rule) in both, a missing
    item and an unknown kind."""
    wm, mersey = raise_risk("SC"), raise_risk("SC", service="Mersey Harbour Major Trauma Centre")
    with Session(db) as s:
        complaints = {}
        for code in ("WMTN", "CMMTN"):
            c = Complaint(network_id=_net(s, code), category="arrangements", owner_role="network-office",
                          complainant_name="Pat", complainant_email="pat@example.nhs.uk", summary="x",
                          received_on=date(2026, 12, 1), state="received")  # fmt: skip
            s.add(c)
            s.flush()
            complaints[code] = c.id
        out = {
            "wm": _letter(s, "risk", wm.id),
            "wm_doubt": _letter(s, "risk", wm.id, "sending", IN_DOUBT + "dropped"),
            "wm_sending": _letter(s, "risk", wm.id, "sending", "", next_at=NOW + timedelta(minutes=5)),
            "wm_queued": _letter(s, "risk", wm.id, "queued", ""),
            "mersey": _letter(s, "risk", mersey.id),
            "c_wm": _letter(s, "complaint", complaints["WMTN"], "undeliverable"),
            "c_mersey": _letter(s, "complaint", complaints["CMMTN"]),
            "missing": _letter(s, "risk", 999_999),
            "unknown": _letter(s, "digest", 1),
        }
        s.commit()
        return out


def test_the_outbox_scope_clause_keeps_the_same_letters_as_the_per_letter_rule(
    db: Engine, letters: dict[str, int]
) -> None:
    with Session(db) as s:
        wmtn, cmm = _net(s, "WMTN"), _net(s, "CMMTN")
        mrh = s.exec(select(Service).where(Service.name == MRH)).one()
        people = [
            support_accounts.account(db, "Ivy Installation", ("operator",)),
            support_accounts.account(db, "Wes Network", ("operator",), scope="network", scope_id=wmtn),
            support_accounts.account(db, "Mo Mersey", ("network-office",), scope="network", scope_id=cmm),
            support_accounts.account(db, "Sam Service", ("network-manager",), scope="service", scope_id=mrh.id),
            support_accounts.account(
                db, "Tom Trust", ("operator",), scope="organisation", scope_id=mrh.organisation_id
            ),
            support_accounts.account(db, "Ann Auditor", ("auditor",)),
        ]
        rows = list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]
        seen = {}
        for p in people:
            now_rule = [m.id for m in web_manage.visible_outbox(s, p, rows)]
            assert now_rule == [m.id for m in _old_rule(s, p, rows)], p.name
            seen[p.name] = set(now_rule)
    ids = letters
    assert seen["Ivy Installation"] == set(ids.values())
    assert seen["Wes Network"] == {ids["wm"], ids["wm_doubt"], ids["wm_sending"], ids["wm_queued"], ids["c_wm"]}
    assert seen["Mo Mersey"] == {ids["mersey"], ids["c_mersey"]}
    assert seen["Sam Service"] == {ids["wm"], ids["wm_doubt"], ids["wm_sending"], ids["wm_queued"]}
    assert seen["Ann Auditor"] == set()


def test_the_outbox_page_counts_and_lists_in_scope_and_says_what_may_be_retried(
    db: Engine, letters: dict[str, int]
) -> None:
    with Session(db) as s:
        wes = support_accounts.account(db, "Wes Network", ("operator",), scope="network", scope_id=_net(s, "WMTN"))
        data = outbox.page(s, wes, FixedClock(NOW), "queued")
        assert data["counts"] == {"failed": 1, "undeliverable": 1, "in_doubt": 1, "interrupted": 0, "queued": 1}
        rows = {r["id"]: r for r in data["incidents"]}
        assert set(rows) == {
            letters["wm"],
            letters["wm_doubt"],
            letters["c_wm"],
        }  # the one still sending is no incident
        assert rows[letters["wm"]]["retryable"] and rows[letters["wm_doubt"]]["retryable"]
        assert not rows[letters["c_wm"]]["retryable"]  # undeliverable: add the contact instead
        assert [r["id"] for r in data["listed"]] == [letters["wm_queued"]]
        sending = outbox.page(s, wes, FixedClock(NOW), "sending")["listed"]
        flags = {r["id"]: r["retryable"] for r in sending}
        assert flags == {letters["wm_sending"]: False, letters["wm_doubt"]: True}  # being sent right now: no retry
        # the flag is the rule retry applies: the one it offers is queued, the one it does not is refused
        with pytest.raises(InvalidInput, match="being sent right now"):
            outbox.retry(s, [letters["wm_sending"]], principal=wes, clock=FixedClock(NOW))
        bounded = outbox.page(s, wes, FixedClock(NOW), "failed", limit=1)
        assert len(bounded["incidents"]) == 1 and bounded["more"] and len(bounded["listed"]) == 1


def test_the_outbox_page_runs_the_same_number_of_queries_however_many_letters(
    db: Engine, letters: dict[str, int], raise_risk: Any
) -> None:
    statements: list[str] = []
    with Session(db) as s:
        wes = support_accounts.account(db, "Wes Network", ("operator",), scope="network", scope_id=_net(s, "WMTN"))

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def queries() -> int:
        statements.clear()
        event.listen(db, "before_cursor_execute", count)
        try:
            with Session(db) as s:
                outbox.page(s, wes, FixedClock(NOW), "failed")
        finally:
            event.remove(db, "before_cursor_execute", count)
        return len(statements)

    before = queries()
    more = [raise_risk("SC") for _ in range(3)] + [raise_risk("SC", service="Mersey Harbour Major Trauma Centre")]
    with Session(db) as s:
        for risk in more:
            for _ in range(10):
                _letter(s, "risk", risk.id)
        s.commit()
    assert queries() == before  # 40 more letters, not one query more


def _contacts(db: Engine, n: int) -> None:
    with Session(db) as s:
        wmtn = _net(s, "WMTN")
        for i in range(n):
            tag = "alpha" if i % 2 else "beta"
            s.add(Contact(role="network-office", name=f"Clerk {tag} {i:03d}", email=f"clerk{i}@example.nhs.uk",
                          network_id=wmtn))  # fmt: skip
        s.commit()


def test_contacts_and_reviewers_are_listed_fifty_a_page_with_the_search_kept(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    _contacts(db, 130)
    client, _ = signed_in(db_url, db, "Olu Office", ("network-office",))
    first = client.get("/contacts?q=Alpha").text
    assert first.count('href="/contacts/') - first.count('href="/contacts/new"') == 50
    assert "65 contacts, page 1 of 2" in first and "Clerk beta" not in first
    nxt = re.search(r'href="(/contacts\?[^"]+)"[^>]*>\s*<span class="nhsuk-pagination__title">Next', first)
    assert nxt is not None and "q=alpha" in nxt.group(1) and "page=2" in nxt.group(1)
    second = client.get(nxt.group(1).replace("&amp;", "&")).text
    assert "65 contacts, page 2 of 2" in second and "Clerk alpha 129" in second and "Clerk beta" not in second
    assert "Previous" in second and "Next</span>" not in second
    assert "page 2 of 2" in client.get("/contacts?q=alpha&page=99").text  # past the last: the last
    assert client.get("/contacts?page=0").status_code == 422
    assert client.get("/contacts?page=abc").status_code == 422
    # reviewers: a page at a time, searched, and "retired" decided in states (not a date in a template)
    with Session(db) as s:
        for i in range(60):
            s.add(Reviewer(name=f"Dr Panel {i:02d}", email=f"panel{i}@example.nhs.uk", discipline="clinician",
                           retired_on=TODAY + timedelta(days=30) if i == 0 else None))  # fmt: skip
        s.commit()
    html = client.get("/reviewers?q=panel").text
    assert "60 reviewers, page 1 of 2" in html and "current, retires from" in html
    nxt = re.search(r'href="(/reviewers\?[^"]+)"[^>]*>\s*<span class="nhsuk-pagination__title">Next', html)
    assert nxt is not None and "q=panel" in nxt.group(1)
    assert "Dr Panel 59" in client.get(nxt.group(1).replace("&amp;", "&")).text


def test_a_crafted_done_link_shows_no_banner_and_the_real_step_does(
    db_url: str, db: Engine, services: dict[str, int], raise_risk: Any
) -> None:
    client, me = signed_in(db_url, db, "Olu Office", ("network-office", "operator"))
    for url, text in (("/contacts?done=retired", "Contact retired"), ("/contacts?done=added", "Contact added"),
                      ("/reviewers?done=reviewer-added", "Reviewer added"), ("/outbox?done=retried", "Queued again"),
                      ("/account/tokens?done=token-revoked", "Token revoked")):  # fmt: skip
        r = client.get(url)
        assert r.status_code == 200 and text not in r.text, url
    with Session(db) as s:
        nm = s.exec(select(Contact).where(Contact.role == "network-manager")).first()
        assert nm is not None
    html = client.get(f"/contacts/{nm.id}?done=edited").text
    assert "Contact changed" not in html
    r = client.post(f"/contacts/{nm.id}/retire", data={"csrf_token": csrf_of(html), "retire_from": TODAY.isoformat()},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/contacts?done=retired"
    assert "Contact retired from the date given." in client.get("/contacts?done=retired").text
    assert "Contact added." not in client.get("/contacts?done=added").text  # the last step was a retirement
    # someone else's step is not mine to be told about
    other, _ = signed_in(db_url, db, "Oscar Other", ("network-office",))
    assert "Contact retired" not in other.get("/contacts?done=retired").text
    # the outbox: a real retry shows its banner
    risk = raise_risk("SC")
    with Session(db) as s:
        mid = _letter(s, "risk", risk.id)
        s.commit()
    html = client.get("/outbox").text
    r = client.post(f"/outbox/{mid}/retry", data={"csrf_token": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303
    assert "Queued again" in client.get("/outbox?done=retried").text
    assert "Marked delivered" not in client.get("/outbox?done=delivered").text
    # an administrator's page: the banner is about this account only
    admin, admin_p = signed_in(db_url, db, "Ada Admin", ("administrator",))
    assert "Account disabled" not in admin.get(f"/admin/users/{me.user_id}?done=disabled").text
    html = admin.get(f"/admin/users/{me.user_id}").text
    admin.post(f"/admin/users/{me.user_id}/disable", data={"csrf_token": csrf_of(html)})
    assert "Account disabled" in admin.get(f"/admin/users/{me.user_id}?done=disabled").text
    assert "Account disabled" not in admin.get(f"/admin/users/{admin_p.user_id}?done=disabled").text


def _admin_post(client: Any, uid: int, action: str, **fields: str) -> Any:
    html = client.get(f"/admin/users/{uid}").text
    return client.post(f"/admin/users/{uid}/{action}", data={"csrf_token": csrf_of(html), **fields},
                       follow_redirects=False)  # fmt: skip


def test_an_administrator_re_enables_a_disabled_account_and_it_signs_in_again(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    admin, admin_p = signed_in(db_url, db, "Ada Admin", ("administrator",))
    sam_client, sam = signed_in(db_url, db, "Sam Staff", ("network-office",))
    assert _admin_post(admin, sam.user_id, "enable").status_code == 422  # active: nothing to re-enable
    assert _admin_post(admin, sam.user_id, "disable", note="left").status_code == 303
    html = admin.get(f"/admin/users/{sam.user_id}").text
    assert "Re-enable the account" in html and "Disable the account" not in html and "Grant a role" not in html
    assert sam_client.get("/contacts", follow_redirects=False).status_code in (302, 303)  # signed out
    # not an administrator: refused, nothing changed
    nm, nm_p = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    r = nm.post(f"/admin/users/{sam.user_id}/enable", data={"csrf_token": csrf_of(nm.get("/account/tokens").text)})
    assert r.status_code == 403
    with Session(db) as s, pytest.raises(PermissionDenied):
        accounts.enable_user(s, nm_p, SystemClock(), str(sam.user_id))
    r = _admin_post(admin, sam.user_id, "enable", enable_note="came back")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/users/{sam.user_id}?done=enabled"
    assert "Account re-enabled" in admin.get(r.headers["location"]).text
    with Session(db) as s:
        assert s.get(User, sam.user_id).status == "active"  # type: ignore[union-attr]
        ev = s.exec(select(AuditEvent).where(AuditEvent.kind == "account", AuditEvent.item_id == sam.user_id)
                    .order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]  # fmt: skip
        assert ev is not None and (ev.trigger, ev.user_id, ev.data["note"]) == ("enable", admin_p.user_id, "came back")
        assert s.exec(select(WebSession).where(WebSession.user_id == sam.user_id,
                                               WebSession.ended_at.is_(None))).first() is None  # type: ignore[union-attr]  # fmt: skip
    assert sam_client.get("/contacts", follow_redirects=False).status_code in (302, 303)  # the old session stays ended
    fresh = signin.sign_in(db, "samstaff@example.nhs.uk", PASSWORD, "127.0.0.1", SystemClock())
    assert client_for(db_url, fresh.token).get("/contacts").status_code == 200


ISSUER = "https://login.example.nhs.uk/tenant/v2.0"


def test_an_administrator_links_and_unlinks_a_single_sign_on_identity(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    admin, _ = signed_in(db_url, db, "Ada Admin", ("administrator",))
    sam = support_accounts.account(db, "Sam Staff", ("network-office",))
    assert "not linked" in admin.get(f"/admin/users/{sam.user_id}").text
    r = _admin_post(admin, sam.user_id, "sso-link", issuer="not a url", subject="sam-1")
    assert r.status_code == 422 and "issuer" in r.text
    r = _admin_post(admin, sam.user_id, "sso-link", issuer=ISSUER, subject="sam-1")
    assert r.status_code == 303 and r.headers["location"].endswith("done=sso-linked")
    html = admin.get(r.headers["location"]).text
    assert "Single sign-on identity linked" in html and f"sam-1 at {ISSUER}" in html
    with Session(db) as s:
        user = s.get(User, sam.user_id)
        assert user is not None and (user.oidc_issuer, user.oidc_subject) == (ISSUER, "sam-1")
    # the same identity on a second account is refused, nothing changed
    kim = support_accounts.account(db, "Kim Staff", ("network-office",))
    r = _admin_post(admin, kim.user_id, "sso-link", issuer=ISSUER, subject="sam-1")
    assert r.status_code == 422 and "already linked" in r.text
    nm, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    r = nm.post(f"/admin/users/{sam.user_id}/sso-unlink", data={"csrf_token": csrf_of(nm.get("/account/tokens").text)})
    assert r.status_code == 403
    r = _admin_post(admin, sam.user_id, "sso-unlink")
    assert r.status_code == 303 and "Single sign-on identity unlinked" in admin.get(r.headers["location"]).text
    assert _admin_post(admin, sam.user_id, "sso-unlink").status_code == 404  # nothing linked any more
    with Session(db) as s:
        user = s.get(User, sam.user_id)
        assert user is not None and user.oidc_subject is None
        trail = [e.trigger for e in s.exec(select(AuditEvent).where(AuditEvent.kind == "account",
                                                                    AuditEvent.item_id == sam.user_id))]  # fmt: skip
        assert trail[-2:] == ["sso_linked", "sso_unlinked"]
        assert s.exec(select(User).where(User.id == kim.user_id)).one().oidc_subject is None


def test_a_tokens_lifetime_and_purpose_are_decided_in_states(db_url: str, db: Engine, services: dict[str, int]) -> None:
    me = support_accounts.account(db, "Nia Manager", ("network-manager",))
    assert web_manage.token_days("feed", None) == accounts.MAX_TOKEN_DAYS
    assert web_manage.token_days("api", None) == accounts.DEFAULT_TOKEN_DAYS
    assert web_manage.token_days("api", 7) == 7
    with Session(db) as s:
        feed, _ = web_manage.create_own_token(s, me, SystemClock(), "Outlook", "feed")
        api, _ = web_manage.create_own_token(s, me, SystemClock(), "Scripts", "api", 7)
        with pytest.raises(InvalidInput, match="the API or calendar feeds"):
            web_manage.create_own_token(s, me, SystemClock(), "x", "root")
        s.commit()
        for row, days in ((feed, accounts.MAX_TOKEN_DAYS), (api, 7)):
            stored = s.get(AccessToken, row.id)
            assert stored is not None
            assert abs((stored.expires_at - stored.created_at) - timedelta(days=days)) < timedelta(seconds=5)
        assert s.exec(select(AccessToken).where(AccessToken.name == "x")).first() is None


def test_a_revoked_grant_must_be_the_accounts_own(db: Engine, services: dict[str, int]) -> None:
    admin = support_accounts.account(db, "Ada Admin", ("administrator",))
    sam = support_accounts.account(db, "Sam Staff", ("network-office",))
    kim = support_accounts.account(db, "Kim Staff", ("network-office",))
    with Session(db) as s:
        kims = accounts.user_detail(s, str(kim.user_id))["grants"][0]["id"]
        with pytest.raises(InvalidInput, match="not one of this account's"):
            accounts.revoke(s, admin, SystemClock(), kims, of=str(sam.user_id))
        assert accounts.user_detail(s, str(kim.user_id))["grants"][0]["revoked_at"] is None


def test_what_the_account_page_offers_follows_the_use_cases(db: Engine, services: dict[str, int]) -> None:
    admin = support_accounts.account(db, "Ada Admin", ("administrator",))
    nm = support_accounts.account(db, "Nia Manager", ("network-manager",))
    with Session(db) as s:
        mine = web_manage.account_actions(admin, accounts.user_detail(s, str(admin.user_id)))
        theirs = web_manage.account_actions(admin, accounts.user_detail(s, str(nm.user_id)))
        as_nm = web_manage.account_actions(nm, accounts.user_detail(s, str(nm.user_id)))
    assert not mine["disable"] and theirs["disable"] and not theirs["enable"] and not theirs["unlink"]
    assert not any(as_nm.values())


def test_a_contact_out_of_scope_is_not_found_by_every_change(db: Engine, services: dict[str, int]) -> None:
    with Session(db) as s:
        wes = support_accounts.account(
            db, "Wes Network", ("network-office",), scope="network", scope_id=_net(s, "WMTN")
        )
        mersey = s.exec(select(Contact).where(Contact.network_id == _net(s, "CMMTN"))).first()
        theirs = s.exec(select(Reviewer).where(Reviewer.network_id == _net(s, "CMMTN"))).first()
        assert mersey is not None and mersey.id is not None and theirs is not None and theirs.id is not None
        for call in (lambda: web_manage.visible_contact(s, wes, mersey.id),  # type: ignore[arg-type]
                     lambda: web_manage.contact_detail(s, wes, mersey.id, TODAY),  # type: ignore[arg-type]
                     lambda: web_manage.visible_reviewer(s, wes, theirs.id),  # type: ignore[arg-type]
                     lambda: web_manage.visible_message(s, wes, 424242)):  # fmt: skip
            with pytest.raises(NotFound):
                call()
