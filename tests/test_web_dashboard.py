"""The dashboard served live (same figures as the read model the written pages and ``risk list``
use) and the calendar feeds at stable addresses behind a personal feed token (issue 15): the
ICS parses with icalendar; a revoked token, an API token or a network out of scope is a 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import icalendar
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent
from models.accounts import AccessToken
from models.tables import AccuracyItem, PanelMember, Reviewer, Visit
from states import engine
from states.clock import SystemClock, local_date
from states.views.register import summary
from tests import support_reports
from tests.factories import MRH, person
from tests.test_web_manage import csrf_of, get_ok, network_id, signed_in

MERSEY_MTC = "Mersey Harbour Major Trauma Centre"


def _figure(html: str, ident: str) -> int:
    m = re.search(rf'id="{ident}">(\d+)<', html)
    assert m, ident
    return int(m.group(1))


def test_the_live_dashboard_shows_the_read_models_figures(
    db_url: str, db: Engine, services: dict[str, int], raise_risk: Callable[..., Any]
) -> None:
    raise_risk("SC")
    raise_risk("IR")
    raise_risk("GC", service=MERSEY_MTC)
    client, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    html = get_ok(client, "/dashboard")
    assert all(f'href="/dashboard/{c}"' in html for c in ("WMTN", "WMACC", "CMMTN"))
    html = get_ok(client, "/dashboard/WMTN")
    with Session(db) as s:
        want = summary(s, local_date(SystemClock().now()), "WMTN")["figures"]
    assert want["open_risks"] == 2
    assert _figure(html, "open-risks") == want["open_risks"]
    assert _figure(html, "open-items") == want["open_items"]
    assert _figure(html, "overdue-count") == want["overdue"]
    assert _figure(html, "upcoming-count") == want["upcoming"]
    assert "SC found at visit" in html and 'href="/items/risk/' in html
    assert "<script" not in html.split("</header>", 1)[-1].replace('<script type="module" src="/static/', "")


def test_the_dashboard_is_scoped_to_whole_networks(db_url: str, db: Engine, services: dict[str, int]) -> None:
    wmtn = network_id(db, "WMTN")
    net, _ = signed_in(db_url, db, "Wes Office", ("network-office",), scope="network", scope_id=wmtn)
    html = get_ok(net, "/dashboard")  # one network: its page directly
    assert "West Midlands Trauma Network (WMTN)" in html
    assert net.get("/dashboard/CMMTN").status_code == 404
    assert net.get("/dashboard/NOPE").status_code == 404
    svc, _ = signed_in(db_url, db, "Sue Service", ("network-office",), scope="service", scope_id=services[MRH])
    assert svc.get("/dashboard/WMTN").status_code == 404
    assert "No network" in get_ok(svc, "/dashboard")


def _feed_token(client: Any, purpose: str = "feed") -> tuple[str, int]:
    html = get_ok(client, "/account/tokens")
    r = client.post("/account/tokens", data={"csrf_token": csrf_of(html), "name": f"my {purpose}", "purpose": purpose})
    assert r.status_code == 200, r.text[:500]
    token = re.search(r'<code id="token-value">(pw_[^<]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    tid = int(re.search(r"Token (\d+) created", r.text).group(1))  # type: ignore[union-attr]
    return token, tid


def test_a_calendar_feed_is_served_to_its_token_and_gone_once_revoked(
    db_url: str, db: Engine, services: dict[str, int], raise_risk: Callable[..., Any]
) -> None:
    raise_risk("SC")
    client, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    token, tid = _feed_token(client)
    anon = type(client)(client.app)  # no session cookie: the token alone authenticates
    r = anon.get(f"/feeds/{token}/WMTN.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    # the feed's own headers stand (one of each): no referrer from its URL, a short private cache
    assert r.headers.get_list("referrer-policy") == ["no-referrer"]
    assert r.headers.get_list("cache-control") == ["private, max-age=300"]
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    cal = icalendar.Calendar.from_ical(r.content)
    events = [c for c in cal.walk("VEVENT")]
    assert events, "the network's pending deadlines are in its feed"
    assert any("SC" in str(e.get("summary")) for e in events)
    r = anon.get(f"/feeds/{token}/WMTN/services/{services[MRH]}.ics")
    assert r.status_code == 200
    icalendar.Calendar.from_ical(r.content)
    assert anon.get(f"/feeds/{token}/WMTN/services/{services[MERSEY_MTC]}.ics").status_code == 404
    assert anon.get(f"/feeds/{token}/NOPE.ics").status_code == 404
    assert anon.get("/feeds/pw_not-a-token/WMTN.ics").status_code == 404
    html = get_ok(client, "/account/tokens")
    assert client.post(f"/account/tokens/{tid}/revoke", data={"csrf_token": csrf_of(html)}).status_code == 200
    with Session(db) as s:
        assert s.get(AccessToken, tid).revoked_at is not None  # type: ignore[union-attr]
    r = anon.get(f"/feeds/{token}/WMTN.ics")
    assert r.status_code == 404 and "BEGIN:VCALENDAR" not in r.text


def test_a_feed_needs_a_feed_token_in_scope(db_url: str, db: Engine, services: dict[str, int]) -> None:
    client, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    api_token, _ = _feed_token(client, "api")
    anon = type(client)(client.app)
    assert anon.get(f"/feeds/{api_token}/WMTN.ics").status_code == 404  # an API token reads no feed
    svc, _ = signed_in(db_url, db, "Sue Service", ("network-office",), scope="service", scope_id=services[MRH])
    token, _ = _feed_token(svc)
    assert anon.get(f"/feeds/{token}/WMTN.ics").status_code == 404  # the whole network: not in scope
    assert anon.get(f"/feeds/{token}/WMTN/services/{services[MRH]}.ics").status_code == 200
    with Session(db) as s:
        assert s.exec(select(AccessToken).where(AccessToken.purpose == "feed")).one().last_used_at is not None


# ---------------------------------------------------------------- panel, drafting, factual accuracy


def test_a_panel_is_managed_from_its_page(db_url: str, db: Engine, services: dict[str, int]) -> None:
    office, office_p = signed_in(db_url, db, "Olu Office", ("network-office",))
    html = get_ok(office, "/create/visit")
    r = office.post("/create/visit", data={"csrf_token": csrf_of(html), "service": str(services[MRH])},
                    follow_redirects=False)  # fmt: skip
    vid = int(r.headers["location"].rsplit("/", 1)[1])
    html = get_ok(office, f"/visits/{vid}/panel")
    assert "Nobody is on the panel yet." in html and "Ms Carys Holt" in html
    with Session(db) as s:
        carys = s.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
        version = s.get(Visit, vid).version  # type: ignore[union-attr]
    r = office.post(f"/visits/{vid}/panel/add_panel_member",
                    data={"csrf_token": csrf_of(html), "version": str(version), "reviewer_id": str(carys.id)},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    html = get_ok(office, f"/visits/{vid}/panel")
    assert f'id="member-{carys.id}"' in html and "not returned" in html
    # a stale form (the version before the invitation) is refused, nothing changed
    r = office.post(f"/visits/{vid}/panel/record_declaration",
                    data={"csrf_token": csrf_of(html), "version": str(version), "reviewer_id": str(carys.id)})  # fmt: skip
    assert r.status_code == 409
    r = office.post(f"/visits/{vid}/panel/remove_panel_member",
                    data={"csrf_token": csrf_of(html), "reviewer_id": str(carys.id)})  # fmt: skip
    assert r.status_code in (400, 422) and "note" in r.text.lower()  # the table requires a note
    r = office.post(f"/visits/{vid}/panel/remove_panel_member",
                    data={"csrf_token": csrf_of(html), "reviewer_id": str(carys.id), "note": "unwell"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with Session(db) as s:
        assert s.exec(select(PanelMember).where(PanelMember.visit_id == vid)).first() is None
        events = s.exec(select(AuditEvent).where(AuditEvent.kind == "visit", AuditEvent.item_id == vid)).all()
        assert [e.trigger for e in events] == ["propose", "add_panel_member", "remove_panel_member"]
        assert {e.user_id for e in events} == {office_p.user_id}
    wmtn_only, _ = signed_in(db_url, db, "Mo Mersey", ("network-office",), scope="network",
                             scope_id=network_id(db, "CMMTN"))  # fmt: skip
    assert wmtn_only.get(f"/visits/{vid}/panel").status_code == 404
    auditor, _ = signed_in(db_url, db, "Ann Auditor", ("auditor",))
    html = get_ok(auditor, f"/visits/{vid}/panel")
    assert "Invite a reviewer" not in html


def test_a_report_is_drafted_and_its_inaccuracies_decided_by_two_people(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    with Session(db, expire_on_commit=False) as s:
        report = support_reports.drafting(s, services, date(2026, 11, 12))
    office, _ = signed_in(db_url, db, "Olu Office", ("network-office",))
    html = get_ok(office, f"/reports/{report.id}/draft")
    assert "No standard recorded yet." in html
    r = office.post(f"/reports/{report.id}/draft/add_standard",
                    data={"csrf_token": csrf_of(html), "ref": "1.2", "status": "Partially Met", "comment": "no rota"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    r = office.post(f"/reports/{report.id}/draft/add_positive",
                    data={"csrf_token": csrf_of(html), "text": "A strong trauma governance meeting"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    html = get_ok(office, f"/reports/{report.id}/draft")
    assert "Partially Met" in html and "A strong trauma governance meeting" in html
    r = office.post(f"/reports/{report.id}/draft/add_standard",
                    data={"csrf_token": csrf_of(html), "ref": "1.3", "status": "Brilliant"})  # fmt: skip
    assert r.status_code in (400, 422) and "nhsuk-error-summary" in r.text
    with Session(db) as s:
        engine.fire(s, "report", report.id, "send_for_accuracy_check", principal=person("tester", "network-office"),
                    clock=SystemClock())  # fmt: skip
        s.commit()
    html = get_ok(office, f"/reports/{report.id}/accuracy")
    r = office.post(f"/reports/{report.id}/accuracy/record_inaccuracy",
                    data={"csrf_token": csrf_of(html), "text": "Two consultants, not one"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    with Session(db) as s:
        item = s.exec(select(AccuracyItem).where(AccuracyItem.report_id == report.id)).one()
    nm, _ = signed_in(db_url, db, "Nia Manager", ("network-manager",))
    rl, _ = signed_in(db_url, db, "Rhys Lead", ("regional-lead",))
    html = get_ok(nm, f"/reports/{report.id}/accuracy")
    assert f"Decide item {item.id}" in html
    r = nm.post(f"/reports/{report.id}/accuracy/decide_inaccuracy",
                data={"csrf_token": csrf_of(html), "item_id": str(item.id), "decision": "accepted"},
                follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    html = get_ok(rl, f"/reports/{report.id}/accuracy")
    r = rl.post(f"/reports/{report.id}/accuracy/decide_inaccuracy",
                data={"csrf_token": csrf_of(html), "item_id": str(item.id), "decision": "accepted"},
                follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:800]
    html = get_ok(rl, f"/reports/{report.id}/accuracy")
    assert re.search(r'id="item-\d+">.*?accepted \(Nia Manager\).*?accepted \(Rhys Lead\).*?>accepted<', html, re.S)
