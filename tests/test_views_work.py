"""The network staff's read views through a real database: My work (owner, scope, order, four-eyes
proposals), the lists (filters, search, pages), an item's page (history with both times) and the
trigger forms (only what this person may fire now, with typed fields)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Network, Risk
from models.accounts import PermissionRule
from states import engine
from states.clock import FixedClock
from states.errors import NotFound
from states.machines import params as typed
from states.machines.spec import get_spec, kinds
from states.views import forms, work
from tests import support_accounts
from tests.factories import MRH

MERSEY = "Mersey Harbour Major Trauma Centre"
TODAY = date(2026, 12, 11)


def _risk(db: Engine, services: dict[str, int], service: str, on: date, level: str = "IR", title: str = "") -> int:
    """A risk raised by a Network Manager for the whole installation on ``on``."""
    nm = support_accounts.account(db, "Raising Manager", ("network-manager", "regional-lead"))
    with Session(db, expire_on_commit=False) as s:
        row = Risk(
            service_id=services[service],
            level=level,
            title=title or f"{level} at {service}",
            identified_on=on,
            visit_date=on,
        )
        out = engine.create(s, "risk", row, "raise", principal=nm, clock=FixedClock(on))
        s.commit()
        assert out.row.id is not None
        return out.row.id


def _network_id(db: Engine, code: str) -> int:
    with Session(db) as s:
        net = s.exec(select(Network).where(Network.code == code)).one()
        assert net.id is not None
        return net.id


@pytest.fixture
def risks(db: Engine, services: dict[str, int]) -> dict[str, int]:
    """A recent WMTN risk (not yet due), an old WMTN one (overdue), and a CMMTN one."""
    return {
        "recent": _risk(db, services, MRH, date(2026, 12, 10), title="Recent staffing gap"),
        "old": _risk(db, services, MRH, date(2026, 11, 2), "SC", title="Old consultant rota"),
        "mersey": _risk(db, services, MERSEY, date(2026, 11, 20), title="Mersey theatre access"),
    }


def test_my_work_lists_owned_deadlines_overdue_first_within_the_network(db: Engine, risks: dict[str, int]) -> None:
    wm = support_accounts.account(
        db, "West Manager", ("network-manager",), scope="network", scope_id=_network_id(db, "WMTN")
    )
    with Session(db) as s:
        out = work.my_work(s, wm, FixedClock(TODAY))
    ids = [d["id"] for d in out["deadlines"]]
    assert ids == [risks["old"], risks["recent"]], out["deadlines"]  # no CMMTN deadline; overdue first
    assert out["total"] == 2
    old, recent = out["deadlines"]
    assert old["overdue"] and old["working_days_left"] < 0
    assert not recent["overdue"] and recent["working_days_left"] >= 0
    assert old["ref"] == f"SC-{risks['old']}" and old["title"] == "Old consultant rota"
    assert old["service"] == MRH and old["network"] == "WMTN"
    assert old["due"].startswith("Network Manager and Regional Lead send the formal notification")
    assert old["next_step"] == get_spec("risk").next_step["identified"]
    # a page of one: the total stays, the rows move on
    with Session(db) as s:
        second = work.my_work(s, wm, FixedClock(TODAY), limit=1, offset=1)
    assert [d["id"] for d in second["deadlines"]] == [risks["recent"]] and second["total"] == 2
    # a network office account owns none of these deadlines
    office = support_accounts.account(
        db, "West Office", ("network-office",), scope="network", scope_id=_network_id(db, "WMTN")
    )
    with Session(db) as s:
        assert work.my_work(s, office, FixedClock(TODAY))["deadlines"] == []


def test_a_paused_deadline_is_not_overdue_and_the_count_stops_at_its_cap(
    db: Engine, risks: dict[str, int], services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overdue first means running and past due: a paused deadline (its clock stopped) comes
    with the ones not yet due, by date, however early it was due. The total is counted up to
    COUNT_CAP and then says "at least"; the pages still reach every row."""
    paused = _risk(db, services, MRH, date(2026, 10, 1), "SC", title="Paused before it was due")
    nm = support_accounts.account(db, "Pausing Manager", ("network-manager",))
    with Session(db) as s:
        engine.fire(s, "risk", paused, "pause_clock", principal=nm, clock=FixedClock(date(2026, 10, 2)), note="inquest")
        s.commit()
    wm = support_accounts.account(
        db, "West Manager", ("network-manager",), scope="network", scope_id=_network_id(db, "WMTN")
    )
    with Session(db) as s:
        out = work.my_work(s, wm, FixedClock(TODAY))
        assert [d["id"] for d in out["deadlines"]] == [risks["old"], paused, risks["recent"]]
        assert [d["overdue"] for d in out["deadlines"]] == [True, False, False]
        assert out["total"] == 3 and not out["total_is_at_least"]
        assert [d["id"] for d in work.my_work(s, wm, FixedClock(TODAY), overdue_only=True)["deadlines"]] == [
            risks["old"]
        ]
        monkeypatch.setattr(work, "COUNT_CAP", 2)
        capped = work.my_work(s, wm, FixedClock(TODAY), limit=2)
        assert capped["total"] == 2 and capped["total_is_at_least"]
        rest = work.my_work(s, wm, FixedClock(TODAY), limit=2, offset=2)
    assert [d["id"] for d in capped["deadlines"] + rest["deadlines"]] == [risks["old"], paused, risks["recent"]]


def test_another_networks_item_is_not_found_like_a_missing_one(db: Engine, risks: dict[str, int]) -> None:
    wm = support_accounts.account(
        db, "West Manager", ("network-manager",), scope="network", scope_id=_network_id(db, "WMTN")
    )
    with Session(db) as s:
        with pytest.raises(NotFound) as hidden:
            work.get_visible(s, wm, "risk", risks["mersey"])
        with pytest.raises(NotFound) as missing:
            work.get_visible(s, wm, "risk", 987654)
        assert str(hidden.value).replace(str(risks["mersey"]), "N") == str(missing.value).replace("987654", "N")
        assert work.get_visible(s, wm, "risk", risks["old"]).id == risks["old"]
        listed = work.list_items(s, wm, "risk", clock=FixedClock(TODAY))
    assert {r["id"] for r in listed["rows"]} == {risks["old"], risks["recent"]}


def test_lists_filter_and_search_in_sql(db: Engine, risks: dict[str, int]) -> None:
    me = support_accounts.account(db, "Everywhere Manager", ("network-manager", "regional-lead"))
    clock = FixedClock(TODAY)
    with Session(db) as s:
        assert work.list_items(s, me, "risk", clock=clock)["total"] == 3
        assert {r["id"] for r in work.list_items(s, me, "risk", network="CMMTN", clock=clock)["rows"]} == {
            risks["mersey"]
        }
        assert [r["id"] for r in work.list_items(s, me, "risk", q="consultant", clock=clock)["rows"]] == [risks["old"]]
        assert [r["id"] for r in work.list_items(s, me, "risk", q=f"IR-{risks['recent']}", clock=clock)["rows"]] == [
            risks["recent"]
        ]
        overdue = work.list_items(s, me, "risk", overdue=True, clock=clock)["rows"]
        assert risks["old"] in {r["id"] for r in overdue} and risks["recent"] not in {r["id"] for r in overdue}
        before = work.list_items(s, me, "risk", due_before=date(2026, 11, 15), clock=clock)["rows"]
        assert [r["id"] for r in before] == [risks["old"]]
        paged = work.list_items(s, me, "risk", per_page=2, page=2, clock=clock)
        assert paged["pages"] == 2 and len(paged["rows"]) == 1 and paged["total"] == 3
        assert work.list_items(s, me, "risk", state="closed", clock=clock)["total"] == 0
        assert work.list_items(s, me, "risk", q="100%_' or 1=1", clock=clock)["total"] == 0


def test_a_proposal_waits_for_someone_else(db: Engine, risks: dict[str, int]) -> None:
    with Session(db) as s:
        s.add(PermissionRule(kind="risk", trigger="rescore", four_eyes=True))
        s.commit()
    first = support_accounts.account(db, "First Lead", ("network-manager",))
    second = support_accounts.account(db, "Second Lead", ("regional-lead",))
    office = support_accounts.account(db, "Office Only", ("network-office",))
    with Session(db) as s:
        out = engine.fire(
            s,
            "risk",
            risks["old"],
            "rescore",
            principal=first,
            clock=FixedClock(TODAY),
            params={"impact": "4", "likelihood": "3"},
        )
        assert out.proposed
        s.commit()
    with Session(db) as s:
        clock = FixedClock(TODAY)
        assert work.my_work(s, first, clock)["proposals"] == []
        assert work.my_work(s, office, clock)["proposals"] == []  # network office may not rescore
        waiting = work.my_work(s, second, clock)["proposals"]
        assert [(p["id"], p["trigger"], p["proposed_by"]) for p in waiting] == [(risks["old"], "rescore", "First Lead")]
        mine = forms.find(work.item_page(s, first, "risk", risks["old"], clock)["triggers"], "rescore")
        theirs = forms.find(work.item_page(s, second, "risk", risks["old"], clock)["triggers"], "rescore")
    assert mine is not None and not mine["enabled"] and mine["confirm"]
    assert (
        theirs is not None and theirs["enabled"] and theirs["proposal"]["params"] == {"impact": "4", "likelihood": "3"}
    )
    assert forms.proposal_values(theirs) == {"impact": "4", "likelihood": "3"}


def test_item_page_has_history_with_both_times_and_the_forms_this_person_may_use(
    db: Engine, risks: dict[str, int]
) -> None:
    nm = support_accounts.account(
        db, "West Manager", ("network-manager",), scope="network", scope_id=_network_id(db, "WMTN")
    )
    office = support_accounts.account(
        db, "West Office", ("network-office",), scope="network", scope_id=_network_id(db, "WMTN")
    )
    clock = FixedClock(TODAY)
    with Session(db) as s:
        page = work.item_page(s, nm, "risk", risks["old"], clock)
        office_page = work.item_page(s, office, "risk", risks["old"], clock)
    raised = page["history"][0]
    assert raised["trigger"] == "raise" and raised["to"] == "identified" and raised["actor"] == "Raising Manager"
    assert raised["at"] is not None and raised["recorded_at"] is not None and raised["at"] != raised["recorded_at"]
    assert [s["name"] for s in page["states"] if s["current"]] == ["identified"]
    assert page["deadlines"][0]["name"] == "formal_notification" and page["deadlines"][0]["overdue"]
    assert page["place"]["network"] == "WMTN" and page["version"] == page["history"][-1]["version"]
    triggers = {f["trigger"]: f for f in page["triggers"]}
    assert {"send_formal_notification", "rescore", "regrade", "withdraw", "extend_deadline"} <= set(triggers)
    assert triggers["withdraw"]["confirm"] and triggers["withdraw"]["note_required"]
    assert not triggers["send_formal_notification"]["confirm"]
    rescore = {f["name"]: f for f in triggers["rescore"]["fields"]}
    assert rescore["impact"]["type"] == "int" and (rescore["impact"]["min"], rescore["impact"]["max"]) == (1, 6)
    regrade = {f["name"]: f for f in triggers["regrade"]["fields"]}
    assert regrade["level"]["type"] == "choice" and {c["value"] for c in regrade["level"]["choices"]} == {"IR", "SC"}
    deadline = {f["name"]: f for f in triggers["extend_deadline"]["fields"]}["deadline"]
    assert [c["value"] for c in deadline["choices"]] == ["formal_notification"]
    assert office_page["triggers"] == []  # the network office fires none of these on an identified risk


def test_a_submitted_form_is_read_into_typed_params_with_field_errors() -> None:
    form = {
        "fields": [p.as_dict() for p in typed.fields("risk", "rescore")],
        "note_required": False,
    }
    params, note, errors = forms.read(form, {"impact": "7", "likelihood": "x"})
    assert set(errors) == {"impact", "likelihood"} and params == {}
    params, note, errors = forms.read(form, {"impact": "4", "likelihood": "2", "note": " why "})
    assert errors == {} and params == {"impact": "4", "likelihood": "2"} and note == "why"
    extend = {"fields": [p.as_dict() for p in typed.fields("risk", "extend_deadline")], "note_required": True}
    params, note, errors = forms.read(extend, {"until": "2027-02-30"})
    assert set(errors) == {"until", "note"}


def test_every_parameter_a_trigger_reads_has_a_declared_type() -> None:
    undeclared = [
        (kind, trigger, name)
        for kind in kinds()
        for trigger in get_spec(kind).triggers()
        for name in typed.names(kind, trigger)
        if name not in typed.STRUCTURED and typed.declared(kind, trigger, name) is None
    ]
    assert undeclared == []


def test_the_forms_show_the_administrators_overrides(db: Engine, session: Session) -> None:
    """The forms read the permission table in force (states/permissions.py, as the engine does):
    an override's roles (never the read-only auditor) and its four eyes, either way."""
    session.add(PermissionRule(kind="risk", trigger="close", roles=["network-manager", "auditor"], four_eyes=True))
    session.add(PermissionRule(kind="appeal", trigger="decide", four_eyes=False))
    session.commit()
    table = forms.permission_table(session)
    risk, appeal = get_spec("risk"), get_spec("appeal")
    close_rows = [t for t in risk.all_transitions if t["trigger"] == "close"]
    assert table.roles(risk, "close", close_rows) == {"network-manager"}
    assert table.four_eyes(risk, "close") is True
    assert table.four_eyes(appeal, "decide") is False
    with Session(db) as fresh:  # read anew, not remembered
        assert forms.permission_table(fresh).four_eyes(appeal, "decide") is False
    default = [t for t in risk.all_transitions if t["trigger"] == "withdraw"]
    assert table.roles(risk, "withdraw", default) == set().union(*(set(t["roles"]) for t in default)) - {"auditor"}


def test_an_appeals_page_links_its_report_and_the_report_its_visit_and_appeal(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    from tests.support_appeals import P, build_world, submit_appeal  # lazy: its fixtures build a whole review

    w = build_world(session, services)
    appeal = submit_appeal(db, w, P + timedelta(days=3))
    me = support_accounts.account(db, "Everywhere Lead", ("network-manager", "regional-lead", "network-office"))
    clock = FixedClock(P + timedelta(days=4))
    with Session(db) as s:
        pages = {
            kind: work.item_page(s, me, kind, item_id, clock)
            for kind, item_id in (("visit", w.visit_id), ("report", w.report_id), ("appeal", appeal.id), ("risk", w.ir))
        }
    linked = {kind: {(r["kind"], r["id"]) for r in page["related"]} for kind, page in pages.items()}
    assert ("report", w.report_id) in linked["appeal"]
    assert {("visit", w.visit_id), ("appeal", appeal.id)} <= linked["report"]
    assert {("risk", w.ir), ("risk", w.sc), ("report", w.report_id)} <= linked["visit"]
    assert ("visit", w.visit_id) in linked["risk"]
    assert pages["report"]["letters"] and all(p["history"] for p in pages.values())
    decide = forms.find(pages["appeal"]["triggers"], "decide")
    assert decide is None or decide["confirm"]  # an appeal decision is checked first (four eyes)


def test_every_kind_is_placed_in_sql_for_every_scope(
    db: Engine, services: dict[str, int], risks: dict[str, int]
) -> None:
    """My work and the lists run for each kind and each kind of grant (service, Trust, network):
    the Mersey risk is seen through its service's grant only."""
    from models import Service  # lazy: only this test

    with Session(db) as s:
        mersey = s.get(Service, services[MERSEY])
        assert mersey is not None
        org = mersey.organisation_id
    staff = ("network-manager", "regional-lead", "network-office", "operator")
    by_service = support_accounts.account(db, "Service Staff", staff, scope="service", scope_id=services[MERSEY])
    by_trust = support_accounts.account(db, "Trust Staff", staff, scope="organisation", scope_id=org)
    by_network = support_accounts.account(db, "Network Staff", staff, scope="network", scope_id=_network_id(db, "WMTN"))
    clock = FixedClock(TODAY)
    with Session(db) as s:
        for who in (by_service, by_trust, by_network):
            work.my_work(s, who, clock, overdue_only=True)
            for kind in kinds():
                work.list_items(s, who, kind, overdue=True, due_before=TODAY, q="x", clock=clock)
        assert [d["id"] for d in work.my_work(s, by_service, clock)["deadlines"]] == [risks["mersey"]]
        assert [d["id"] for d in work.my_work(s, by_trust, clock)["deadlines"]] == [risks["mersey"]]
        assert work.my_work(s, by_network, clock, overdue_only=True)["total"] == 1  # the old one only
