"""Appeals in the portal (issue 16 item 8; DOMAIN.md "Appeals"): only the Trust's Chief Executive
account appeals, within 4 weeks of publication, choosing grounds from the report's IR/SC or its
compliance findings; the machine's guards decide; everyone else who can see the report is told
why they cannot; a refused submission is recorded as the network office's would be."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, OutboxMessage
from models.portal import Upload
from models.tables import Appeal, RefusedAttempt, Report
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, NotFound
from states.services import portal_submissions as portal
from tests.factories import person
from tests.support_accounts import make_training
from tests.support_appeals import MRH_TRUST, NM, OFFICE, STATEMENT, P, World, build_world, report_fire
from tests.support_portal_forms import (
    OTHER_TRUST,
    PDF,
    PROGRAM,
    chief_executive,
    count,
    granted,
    org_id,
    service_lead,
    stand_at,
)
from tests.support_reports import drafting
from tests.support_web import csrf_of, sign_in_as

IN_WINDOW = P + timedelta(days=7)
CLOSES = P + timedelta(weeks=4)  # Tue 02 Mar 2027


def _submit(db: Engine, w: World, who: object, day: date, grounds: list[str] | None = None, **kw: object) -> Appeal:
    return portal.submit_appeal(
        db,
        report_id=w.report_id,
        statement=STATEMENT,
        grounds=[f"risk-{w.sc}"] if grounds is None else grounds,
        principal=who,  # type: ignore[arg-type]
        clock=FixedClock(day),
        **kw,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- the use case


def test_the_chief_executive_appeals_with_grounds_and_evidence_as_their_contact(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = build_world(session, services)
    ceo = chief_executive(db, session)
    row = _submit(db, w, ceo, IN_WINDOW, [f"risk-{w.sc}", "compliance"], files=[("rota.pdf", PDF)])
    session.expire_all()
    appeal = session.get(Appeal, row.id)
    assert appeal is not None and appeal.state == "submitted"
    assert appeal.appellant_contact_id == w.ceo.id and appeal.submitted_on == IN_WINDOW
    assert appeal.grounds == [{"risk_id": w.sc}, {"compliance": True}]
    (upload,) = session.exec(select(Upload)).all()
    assert (upload.item_kind, upload.item_id, upload.owner_kind, upload.owner_id) == (
        "appeal",
        row.id,
        "appeal",
        row.id,
    )
    event = session.exec(select(AuditEvent).where(AuditEvent.kind == "appeal", AuditEvent.trigger == "submit")).one()
    assert (event.actor, event.role, event.user_id) == (ceo.name, "chief-executive", ceo.user_id)


def test_a_service_leads_appeal_is_refused_by_the_guard_recorded_and_answered(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = build_world(session, services)
    lead = service_lead(db, session)
    with pytest.raises(GuardRefused, match=f"must be submitted by the Chief Executive of {MRH_TRUST}"):
        _submit(db, w, lead, IN_WINDOW)
    assert count(session, Appeal) == 0
    (refused,) = session.exec(select(RefusedAttempt)).all()
    assert (refused.kind, refused.user_id, refused.actor) == ("appeal", lead.user_id, lead.name)
    letter = session.exec(select(OutboxMessage).where(OutboxMessage.template == "appeal_refusal")).one()
    assert "Service Lead" in str(letter.context)


def test_an_account_not_made_from_a_contact_is_refused_naming_who_may(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = build_world(session, services)
    manager = granted(db, "Ms Sam Manager", "service-manager", "service", services["Midland Royal Major Trauma Centre"])
    with pytest.raises(GuardRefused, match=f"only the Chief Executive of {MRH_TRUST} may appeal"):
        _submit(db, w, manager, IN_WINDOW)
    ceo_by_grant = granted(db, "Mr Chief Bygrant", "chief-executive", "organisation", org_id(session, MRH_TRUST))
    with pytest.raises(GuardRefused, match="not the one made for"):
        _submit(db, w, ceo_by_grant, IN_WINDOW)
    assert count(session, Appeal) == 0 and count(session, RefusedAttempt) == 2


def test_after_the_window_the_chief_executive_is_refused(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = build_world(session, services)
    ceo = chief_executive(db, session)
    late = CLOSES + timedelta(days=1)
    with Session(db) as s:
        why = portal.appeal_refusal(s, ceo, s.get(Report, w.report_id), late)  # type: ignore[arg-type]
    assert why is not None and f"closed on {CLOSES:%a %d %b %Y}" in why
    with pytest.raises(GuardRefused, match=f"the window closed on {CLOSES:%a %d %b %Y}"):
        _submit(db, w, ceo, late)
    assert count(session, Appeal) == 0 and count(session, RefusedAttempt) == 1
    assert _submit(db, w, ceo, CLOSES).state == "submitted"  # the last day is in


def test_grounds_are_the_machines_to_judge_and_bad_input_is_refused(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    w = build_world(session, services)
    ceo = chief_executive(db, session)
    with pytest.raises(GuardRefused, match="general concern"):
        _submit(db, w, ceo, IN_WINDOW, [f"risk-{w.gc}"])
    with pytest.raises(GuardRefused, match="no grounds given"):
        _submit(db, w, ceo, IN_WINDOW, [])
    with pytest.raises(InvalidInput, match="choose the report's IR, SC"):
        _submit(db, w, ceo, IN_WINDOW, ["risk-²"])
    with pytest.raises(InvalidInput, match="not a kind of file accepted"):
        _submit(db, w, ceo, IN_WINDOW, files=[("statement.pdf", PROGRAM)])
    assert count(session, Appeal) == 0 and count(session, Upload) == 0
    with pytest.raises(NotFound):
        _submit(db, w, chief_executive(db, session, OTHER_TRUST), IN_WINDOW)


def test_a_report_with_nothing_appealable_says_so(db: Engine, session: Session, services: dict[str, int]) -> None:
    report = drafting(session, services)
    for trigger, day, role in (
        ("send_for_accuracy_check", date(2026, 11, 20), OFFICE),
        ("approve", date(2026, 11, 23), NM),
        ("distribute", date(2026, 11, 24), OFFICE),
        ("publish", date(2026, 11, 25), NM),
    ):
        if trigger == "send_for_accuracy_check":
            report_fire(session, report.id, "add_standard", day, ref="T-1.1", status="Met")  # type: ignore[arg-type]
        report_fire(session, report.id, trigger, day, principal=_staff(role))  # type: ignore[arg-type]
    ceo = chief_executive(db, session)
    with Session(db) as s:
        data = portal.appeal_page(s, ceo, report.id, date(2026, 11, 30))  # type: ignore[arg-type]
    assert data["grounds"] == [] and not data["may"]
    assert "no conclusion an appeal may name" in data["why_not"]


def _staff(role: str) -> object:
    return person({"network-manager": "Dr Asha Patel"}.get(role, "Ms Rita Writer"), role)


# --------------------------------------------------------------------------- the pages


@pytest.fixture
def web_world(db: Engine, session: Session, services: dict[str, int]) -> World:
    make_training(db)
    w = build_world(session, services)
    stand_at(db, IN_WINDOW)
    return w


def test_the_chief_executive_sees_the_grounds_and_appeals(
    db_url: str, db: Engine, session: Session, web_world: World
) -> None:
    w = web_world
    client = sign_in_as(db_url, db, chief_executive(db, session))
    url = f"/portal/reports/{w.report_id}/appeal"
    page = client.get(url)
    assert page.status_code == 200 and f"{CLOSES:%a %d %b %Y}" in page.text
    boxes = re.findall(r'name="grounds" type="checkbox" value="([^"]+)"', page.text)
    assert boxes == [f"risk-{w.ir}", f"risk-{w.sc}", "compliance"]  # not the general concern
    done = client.post(
        url,
        data={"csrf_token": csrf_of(page.text), "statement": STATEMENT, "grounds": [f"risk-{w.ir}", "compliance"]},
        files=[("files", ("rota.pdf", PDF, "application/pdf"))],
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = client.get(done.headers["location"]).text
    assert "Your appeal is submitted" in shown and "rota.pdf" in shown and "submitted" in shown
    (appeal,) = session.exec(select(Appeal)).all()
    assert appeal.grounds == [{"risk_id": w.ir}, {"compliance": True}]


def test_a_service_lead_sees_why_not_and_a_post_is_refused_with_the_reason(
    db_url: str, db: Engine, session: Session, web_world: World
) -> None:
    w = web_world
    client = sign_in_as(db_url, db, service_lead(db, session))
    url = f"/portal/reports/{w.report_id}/appeal"
    page = client.get(url)
    assert page.status_code == 200 and 'id="why-not"' in page.text
    assert f"Only the Chief Executive of {MRH_TRUST} may appeal" in page.text
    assert 'name="grounds"' not in page.text
    answer = client.post(
        url, data={"csrf_token": csrf_of(page.text), "statement": STATEMENT, "grounds": f"risk-{w.sc}"}
    )
    assert answer.status_code == 400 and "must be submitted by the Chief Executive" in answer.text
    assert count(session, Appeal) == 0 and count(session, RefusedAttempt) == 1


def test_after_the_window_the_chief_executive_sees_when_it_closed(
    db_url: str, db: Engine, session: Session, web_world: World
) -> None:
    stand_at(db, CLOSES + timedelta(days=3))
    page = sign_in_as(db_url, db, chief_executive(db, session)).get(f"/portal/reports/{web_world.report_id}/appeal")
    assert page.status_code == 200 and f"The appeal window closed on {CLOSES:%a %d %b %Y}" in page.text
    assert "Submit the appeal" not in page.text


def test_another_trusts_chief_executive_gets_404(db_url: str, db: Engine, session: Session, web_world: World) -> None:
    client = sign_in_as(db_url, db, chief_executive(db, session, OTHER_TRUST))
    url = f"/portal/reports/{web_world.report_id}/appeal"
    hidden = client.get(url)
    assert hidden.status_code == 404
    answer = client.post(
        url, data={"csrf_token": csrf_of(hidden.text), "statement": STATEMENT, "grounds": "compliance"}
    )
    assert answer.status_code == 404
    assert count(session, Appeal) == 0 and count(session, RefusedAttempt) == 0
