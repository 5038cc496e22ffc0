"""What is asked of us (states/views/portal.py) and shared learning (states/views/learning.py), as
data: each field, overdue, working days by the nation's calendar, isolation between Trusts and
for commissioners, a fixed number of queries, and no person named in shared learning."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Contact, Network, Risk
from models.accounts import User
from models.tables import Attachment, Deadline, OutboxMessage, Report, Service, Visit
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec, kinds
from states.principal import Grant, Principal
from states.views import learning, portal
from tests.factories import MRH, person, service, trust

SEVERN_TU, SEVERN_ACC = "Severnside Trauma Unit", "Severnside Adult Critical Care"
WIRRAL = "Wirral Coast Trauma Unit"
NM = "network-manager"


def _org(session: Session, services: dict[str, int], name: str) -> int:
    svc = session.get(Service, services[name])
    assert svc is not None
    return svc.organisation_id


def _net(session: Session, services: dict[str, int], name: str) -> int:
    svc = session.get(Service, services[name])
    assert svc is not None
    return svc.network_id


def _who(role: str, scope: str, scope_id: int, *more: Grant) -> Principal:
    return Principal(4242, "A Trust user", (Grant(role, scope, scope_id), *more), via="test")


def _notified(session: Session, risk: Risk, clock: FixedClock) -> Risk:
    engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("nm", NM), clock=clock)  # type: ignore[arg-type]
    session.commit()
    return risk


def _items(data: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(i["kind"], i["id"]): i for g in data["groups"] for i in g["items"]}


@contextmanager
def _counting(db: Engine) -> Iterator[list[int]]:
    n = [0]

    def count(*_: Any) -> None:
        n[0] += 1

    event.listen(db, "before_cursor_execute", count)
    try:
        yield n
    finally:
        event.remove(db, "before_cursor_execute", count)


# ------------------------------------------------------------------ what is asked, field by field


def test_an_open_risk_says_what_is_asked_of_whom_by_when_and_if_missed(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    risk = _notified(session, raise_risk("SC"), clock)
    ce = _who("chief-executive", "organisation", _org(session, services, MRH))
    data = portal.what_is_asked(session, ce, clock)
    assert data["today"] == date(2026, 12, 11) and data["services"] == 1 and data["has_portal_role"]
    (group,) = data["groups"]
    assert (group["scope"], group["id"], group["name"]) == ("service", services[MRH], MRH)
    assert group["link"] == f"/portal/services/{services[MRH]}"
    item = _items(data)[("risk", risk.id)]
    assert (item["ref"], item["link"], item["state"]) == (
        f"SC-{risk.id}",
        f"/items/risk/{risk.id}",
        "awaiting_response",
    )
    (ask,) = item["asks"]
    (dl,) = session.exec(select(Deadline).where(Deadline.item_id == risk.id, Deadline.name == "response")).all()
    assert ask["step"] == "the Trust sends its formal response"
    assert (ask["owner_role"], ask["owner"]) == ("chief-executive", "Chief Executive")
    assert ask["due_on"] == dl.due_on and not ask["overdue"] and not ask["paused"]
    assert ask["working_days_left"] == calendar_for("ENG").working_days_between(date(2026, 12, 11), dl.due_on) > 0
    assert "chases" in ask["if_missed"] and "Commissioning Lead" in ask["if_missed"]
    # the formal notification letter it received: view and download
    (letter,) = group["letters"]
    (row,) = session.exec(select(OutboxMessage).where(OutboxMessage.template == "formal_notification")).all()
    assert letter["message_id"] == row.id
    assert letter["view"] == f"/items/risk/{risk.id}/letters/{row.id}"
    assert letter["download"] == f"/portal/letters/{row.id}.eml"
    assert "Chief Executive" in letter["to"]
    # the programme's position for the service's network
    assert group["phase"]["programme_year"] == "2026-27" and group["phase"]["quarter"] == "Q3"
    assert group["next_visit"] is None and group["reports"] == []


def test_if_missed_comes_from_the_rule() -> None:
    rules = get_spec("report").deadline_rules
    assert portal.if_missed("report", rules["accuracy_reply"]) == (
        "a chase letter to the Service Lead, copied to the Network office"
    )
    assert "escalates" in portal.if_missed("risk", get_spec("risk").deadline_rules["chase_response"])
    assert portal.if_missed("appeal", get_spec("appeal").deadline_rules["appeal_result"]).startswith(
        "a chase letter to the Network Manager and Regional Network Lead"
    )


def test_overdue_is_shown_as_such_with_the_working_days_late(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    risk = _notified(session, raise_risk("IR"), clock)
    (dl,) = session.exec(select(Deadline).where(Deadline.item_id == risk.id, Deadline.name == "response")).all()
    later = FixedClock(date(2027, 1, 20))
    assert dl.due_on < date(2027, 1, 20)
    ce = _who("chief-executive", "organisation", _org(session, services, MRH))
    data = portal.what_is_asked(session, ce, later)
    (ask,) = _items(data)[("risk", risk.id)]["asks"]
    assert ask["overdue"] and ask["working_days_left"] == calendar_for("ENG").working_days_between(
        date(2027, 1, 20), dl.due_on
    )
    assert ask["working_days_left"] < 0
    assert data["overdue"] == 1 and data["groups"][0]["overdue"] == 1


def test_working_days_left_follow_the_nation_of_the_service(session: Session, services: dict[str, int]) -> None:
    net = session.exec(select(Network).where(Network.code == "WMTN")).one()
    org = trust(session, "Highland Coast NHS Board", "SCT")
    svc = service(session, "Highland Trauma Unit", "Trauma Unit", org, net)
    session.commit()
    clock = FixedClock(date(2026, 12, 11))
    made = engine.create(
        session,
        "risk",
        Risk(service_id=svc.id, level="SC", title="Rota gaps", identified_on=date(2026, 12, 11), state="new"),
        "raise",
        principal=person("nm", NM),
        clock=clock,
    )
    session.commit()
    _notified(session, made.row, clock)  # type: ignore[arg-type]
    (dl,) = session.exec(select(Deadline).where(Deadline.item_id == made.row.id, Deadline.name == "response")).all()
    assert dl.nation == "SCT"
    data = portal.what_is_asked(session, _who("service-lead", "service", svc.id), clock)  # type: ignore[arg-type]
    (ask,) = _items(data)[("risk", made.row.id)]["asks"]  # type: ignore[index]
    scottish = calendar_for("SCT").working_days_between(date(2026, 12, 11), dl.due_on)
    assert ask["working_days_left"] == scottish
    assert scottish != calendar_for("ENG").working_days_between(date(2026, 12, 11), dl.due_on)  # 4 Jan 2027


def test_next_visit_and_published_reports_of_the_service(
    session: Session, services: dict[str, int], clock: FixedClock
) -> None:
    made = engine.create(
        session,
        "visit",
        Visit(service_id=services[MRH], state="new"),
        "propose",
        principal=person("o", "network-office"),
        clock=clock,
    )
    session.commit()
    engine.fire(
        session, "visit", made.row.id, "schedule", principal=person("o", "network-office"), clock=clock,  # type: ignore[arg-type]
        params={"date": "2027-03-10"},
    )  # fmt: skip
    session.commit()
    report = Report(
        service_id=services[MRH], basis_date=date(2026, 6, 4), state="published", published_on=date(2026, 9, 1)
    )
    session.add(report)
    session.flush()
    key = f"report:{report.id}:v6:distribute:report_distribution"
    session.add(
        OutboxMessage(
            idempotency_key=key, kind="report", item_id=report.id, template="report_distribution",  # type: ignore[arg-type]
            status="sent", subject="Peer review report", body_text="Dear colleague", sent_at=datetime(2026, 8, 3, tzinfo=UTC),
        )
    )  # fmt: skip
    session.add(
        Attachment(idempotency_key=key, filename="peer-review-report.pdf", content_type="application/pdf", data=b"%PDF")
    )
    session.commit()
    data = portal.what_is_asked(session, _who("service-lead", "service", services[MRH]), clock)
    (group,) = data["groups"]
    assert group["next_visit"]["date"] == date(2027, 3, 10) and group["next_visit"]["id"] == made.row.id
    (shown,) = group["reports"]
    mid = session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)).one()
    assert (shown["id"], shown["published_on"], shown["file"]) == (
        report.id,
        date(2026, 9, 1),
        "peer-review-report.pdf",
    )
    assert shown["download"] == f"/portal/letters/{mid}.eml"
    assert ("report", report.id) not in _items(data)  # a published report is not an open item


# ------------------------------------------------------------------ isolation


def test_another_trusts_items_and_services_never_appear(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    mine = _notified(session, raise_risk("SC", service=SEVERN_TU), clock)
    theirs = _notified(session, raise_risk("SC", service=MRH), clock)
    ce = _who("chief-executive", "organisation", _org(session, services, SEVERN_TU))
    data = portal.what_is_asked(session, ce, clock)
    assert {g["name"] for g in data["groups"]} == {SEVERN_TU, SEVERN_ACC}
    assert ("risk", mine.id) in _items(data) and ("risk", theirs.id) not in _items(data)
    letters = {(lt["kind"], lt["item_id"]) for g in data["groups"] for lt in g["letters"]}
    assert ("risk", theirs.id) not in letters and ("risk", mine.id) in letters
    with pytest.raises(NotFound):
        portal.what_is_asked(session, ce, clock, service_id=services[MRH])
    theirs_letter = session.exec(select(OutboxMessage).where(OutboxMessage.item_id == theirs.id)).first()
    assert theirs_letter is not None
    with pytest.raises(NotFound):
        portal.letter_to_download(session, ce, theirs_letter.id)  # type: ignore[arg-type]
    # a service-scope grant: that service alone
    lead = _who("service-lead", "service", services[SEVERN_ACC])
    data = portal.what_is_asked(session, lead, clock)
    assert [g["name"] for g in data["groups"]] == [SEVERN_ACC] and _items(data) == {}


def test_a_commissioner_sees_only_the_services_they_commission(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    wirral = _notified(session, raise_risk("SC", service=WIRRAL), clock)
    mrh = _notified(session, raise_risk("SC", service=MRH), clock)
    by_service = _who("commissioning-lead", "service", services[WIRRAL])
    data = portal.what_is_asked(session, by_service, clock)
    assert [g["name"] for g in data["groups"]] == [WIRRAL]
    assert set(_items(data)) == {("risk", wirral.id)}
    # a network-wide commissioner: that network's services (CMMTN), never another network's
    by_network = _who("responsible-commissioner", "network", _net(session, services, WIRRAL))
    data = portal.what_is_asked(session, by_network, clock)
    assert {g["name"] for g in data["groups"] if g["scope"] == "service"} == {
        WIRRAL,
        "Mersey Harbour Major Trauma Centre",
    }
    assert ("risk", mrh.id) not in _items(data)


def test_staff_grants_do_not_count_in_the_portal(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    _notified(session, raise_risk("SC"), clock)
    staff = Principal(1, "Network Manager", (Grant(NM),), via="test")
    data = portal.what_is_asked(session, staff, clock)
    assert data["groups"] == [] and not data["has_portal_role"]
    assert portal.has_staff_role(staff)
    assert not portal.has_staff_role(_who("service-lead", "service", services[MRH]))


def test_the_page_costs_the_same_queries_whatever_the_number_of_items(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    ce = _who("chief-executive", "organisation", _org(session, services, SEVERN_TU))
    _notified(session, raise_risk("SC", service=SEVERN_TU), clock)
    with _counting(db) as few:
        small = portal.what_is_asked(session, ce, clock)
    for name in (SEVERN_TU, SEVERN_ACC, SEVERN_TU, SEVERN_ACC, SEVERN_ACC):
        _notified(session, raise_risk("IR", service=name), clock)
    with _counting(db) as many:
        big = portal.what_is_asked(session, ce, clock)
    assert (small["open_items"], big["open_items"]) == (1, 6)
    assert few[0] == many[0] <= 2 * len(kinds()) + 8  # per kind: its figures and its items; then a few


def test_every_service_is_in_the_summary_and_a_page_details_some(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    tu = _notified(session, raise_risk("SC", service=SEVERN_TU), clock)
    acc = _notified(session, raise_risk("IR", service=SEVERN_ACC), clock)
    ce = _who("chief-executive", "organisation", _org(session, services, SEVERN_TU))
    first = portal.what_is_asked(session, ce, clock, per_page=1)
    second = portal.what_is_asked(session, ce, clock, per_page=1, page=2)
    assert (first["pages"], first["page"], second["page"]) == (2, 1, 2)
    assert [g["name"] for g in first["groups"]] == [SEVERN_ACC] and [g["name"] for g in second["groups"]] == [SEVERN_TU]
    assert set(_items(first)) == {("risk", acc.id)} and set(_items(second)) == {("risk", tu.id)}
    for data in (first, second):  # both pages: every service's figures, where its details are
        rows = {r["name"]: r for r in data["summary"]}
        assert (rows[SEVERN_ACC]["open"], rows[SEVERN_ACC]["page"]) == (1, 1)
        assert (rows[SEVERN_TU]["open"], rows[SEVERN_TU]["page"]) == (1, 2)
        assert data["open_items"] == 2
    assert portal.what_is_asked(session, ce, clock, per_page=1, page=99)["page"] == 2  # past the end: the last


# ------------------------------------------------------------------ letters to download


def test_a_letter_to_download_needs_its_item_visible_and_is_never_an_incident(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], clock: FixedClock
) -> None:
    risk = _notified(session, raise_risk("SC"), clock)
    lead = _who("service-lead", "service", services[MRH])
    (row,) = session.exec(select(OutboxMessage).where(OutboxMessage.item_id == risk.id)).all()
    got, files = portal.letter_to_download(session, lead, row.id)  # type: ignore[arg-type]
    assert got.id == row.id and files == []
    row.category, row.status = "incident", "undeliverable"
    session.add(row)
    session.commit()
    for bad in (row.id, 0, -1, 10**20, 999_999):
        with pytest.raises(NotFound, match="not found"):
            portal.letter_to_download(session, lead, bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ shared learning


def _published(session: Session, svc: int, compliance: list[dict[str, str]], on: date) -> Report:
    r = Report(service_id=svc, basis_date=on, state="published", published_on=on, compliance=compliance,
               summary="Dr Asha Patel told the panel", positives=["Thanks to Nurse Jo Ellis"])  # fmt: skip
    session.add(r)
    session.commit()
    return r


def test_shared_learning_across_the_network_names_no_one(
    session: Session, services: dict[str, int], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(learning.SETTING, raising=False)
    named = "Dr Asha Patel"
    _published(session, services[MRH], [
        {"ref": "T-1.1", "status": "Met", "descriptor": "Consultant 24/7", "comment": f"{named} leads it"},
        {"ref": "T-1.2", "status": "Unmet", "descriptor": "CT", "comment": "ask jo.ellis@nhs.example"},
    ], date(2026, 7, 1))  # fmt: skip
    _published(session, services[SEVERN_TU], [
        {"ref": "T-1.1", "status": "Partially Met", "comment": named},
        {"ref": "T-1.2", "status": "Unmet"},
    ], date(2026, 8, 1))  # fmt: skip
    _published(session, services[WIRRAL], [{"ref": "T-1.1", "status": "Met"}], date(2026, 8, 1))  # another network
    lead = _who("service-lead", "service", services[SEVERN_TU])
    data = learning.learning(session, lead, clock)
    assert data["shared"] and [n["code"] for n in data["networks"]] == ["WMTN"]
    (net,) = data["networks"]
    assert {r["service"] for r in net["reports"]} == {MRH, SEVERN_TU}
    links = {r["service"]: r["link"] for r in net["reports"]}
    assert links[MRH] is None and links[SEVERN_TU] is not None  # another Trust's report page is not theirs
    by_ref = {(s["service_kind"], s["ref"]): s for s in net["standards"]}
    assert by_ref[("Major Trauma Centre", "T-1.1")]["met"] == 1
    assert by_ref[("Trauma Unit", "T-1.1")]["partially_met"] == 1
    assert by_ref[("Trauma Unit", "T-1.2")]["compliance"] == 0.0
    people = [*session.exec(select(Contact.name)), *session.exec(select(Contact.email))]
    people += [*session.exec(select(User.name)), *session.exec(select(User.email)), named, "Jo Ellis", "jo.ellis"]
    text = repr(data)
    assert not [p for p in people if p and p in text]


def test_shared_learning_off_or_not_a_member_is_not_found(
    session: Session, services: dict[str, int], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = _who("service-lead", "service", services[SEVERN_TU])
    monkeypatch.setenv(learning.SETTING, "off")
    data = learning.learning(session, lead, clock)
    assert not data["shared"] and data["networks"] == []
    with pytest.raises(NotFound):
        learning.learning(session, lead, clock, network_code="WMTN")
    monkeypatch.setenv(learning.SETTING, "CMMTN")  # only that network shares
    assert learning.learning(session, lead, clock)["networks"] == []
    with pytest.raises(NotFound):
        learning.learning(session, lead, clock, network_code="WMTN")
    monkeypatch.setenv(learning.SETTING, "on")
    with pytest.raises(NotFound):  # not a member of CMMTN
        learning.learning(session, lead, clock, network_code="CMMTN")
    assert learning.learning(session, lead, clock, network_code="WMTN")["networks"][0]["code"] == "WMTN"
    staff = Principal(1, "NM", (Grant(NM, "network", _net(session, services, WIRRAL)),), via="test")
    assert [n["code"] for n in learning.learning(session, staff, clock)["networks"]] == ["CMMTN"]
    monkeypatch.setenv(learning.SETTING, "<script>")
    with pytest.raises(InvalidInput, match="PEERWATCH_SHARED_LEARNING"):
        learning.learning(session, lead, clock)
