"""The factual accuracy check in the portal (issue 16 item 5; DOMAIN.md "Report"): the service
states each inaccuracy with its evidence during its window, through the same ``record_inaccuracy``
as the network office; the rule that only observations on the day count applies unchanged; the
Network Manager and the Regional Lead decide in the staff application, and the service sees the
outcome."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.portal import Upload
from models.tables import AccuracyItem, AuditEvent, RefusedAttempt, Report
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, NotFound
from states.machines.report import accuracy_reply_due
from states.services import portal_submissions as portal
from tests.support_accounts import make_training
from tests.support_portal_forms import (
    OTHER_SERVICE,
    OTHER_TRUST,
    PDF,
    PROGRAM,
    count,
    granted,
    org_id,
    service_lead,
    stand_at,
)
from tests.support_reports import CLAIM, IR_TITLE, NM, POSITIVE, RL, SENT, documented, fire
from tests.support_web import csrf_of, sign_in_as

LATER = "We have since recruited a second trauma coordinator"
DAY = date(2026, 12, 21)  # Mon: within the window (sent Fri 18 Dec)


def _in_check(session: Session, services: dict[str, int]) -> Report:
    report, _ = documented(session, services)
    fire(session, report.id, "send_for_accuracy_check", SENT)  # type: ignore[arg-type]
    session.refresh(report)
    return report


# --------------------------------------------------------------------------- the use case


def test_the_service_lead_states_an_inaccuracy_with_evidence_audited_as_the_service(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
    lead = service_lead(db, session)
    item = portal.record_inaccuracy(
        db, report_id=report.id, text=CLAIM, files=[("rota.pdf", PDF)], principal=lead, clock=FixedClock(DAY)
    )  # type: ignore[arg-type]
    session.expire_all()
    assert (item.report_id, item.text, item.outcome) == (report.id, CLAIM, None)
    assert session.get(Report, report.id).state == "inaccuracies_received"  # type: ignore[union-attr]
    (upload,) = session.exec(select(Upload)).all()
    assert (upload.item_kind, upload.item_id, upload.owner_kind, upload.owner_id) == (
        "report",
        report.id,
        "accuracy_item",
        item.id,
    )
    assert upload.sha256 == hashlib.sha256(PDF).hexdigest() and upload.uploaded_by == lead.user_id
    event = session.exec(
        select(AuditEvent).where(AuditEvent.kind == "report", AuditEvent.trigger == "record_inaccuracy")
    ).one()
    assert (event.actor, event.role, event.user_id) == (lead.name, "service-lead", lead.user_id)
    assert event.data["params"]["files"] == ["rota.pdf"]


def test_an_inaccuracy_about_a_later_improvement_is_refused_with_the_rule_and_nothing_stored(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
    lead = service_lead(db, session)
    with pytest.raises(GuardRefused, match="only observations on the day count"):
        portal.record_inaccuracy(
            db, report_id=report.id, text=LATER, files=[("rota.pdf", PDF)], principal=lead, clock=FixedClock(DAY)
        )  # type: ignore[arg-type]
    assert count(session, AccuracyItem) == 0 and count(session, Upload) == 0
    assert session.get(Report, report.id).state == "accuracy_check"  # type: ignore[union-attr]
    (refused,) = session.exec(select(RefusedAttempt)).all()
    assert (refused.trigger, refused.user_id, refused.data["params"]["text"]) == (
        "record_inaccuracy",
        lead.user_id,
        LATER,
    )


def test_a_file_whose_content_is_not_accepted_is_refused_and_nothing_stored(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
    lead = service_lead(db, session)
    with pytest.raises(InvalidInput, match="not a kind of file accepted"):
        portal.record_inaccuracy(
            db,
            report_id=report.id,
            text=CLAIM,
            files=[("rota.pdf", PDF), ("evidence.pdf", PROGRAM)],
            principal=lead,
            clock=FixedClock(DAY),
        )  # type: ignore[arg-type]
    assert count(session, AccuracyItem) == 0 and count(session, Upload) == 0
    assert session.get(Report, report.id).state == "accuracy_check"  # type: ignore[union-attr]


def test_the_window_closes_on_the_due_date_for_the_service_not_for_the_network_office(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
    due = accuracy_reply_due(session, report)
    assert due is not None and due > SENT
    lead = service_lead(db, session)
    portal.record_inaccuracy(db, report_id=report.id, text=CLAIM, principal=lead, clock=FixedClock(due))  # type: ignore[arg-type]
    late = due + timedelta(days=1)
    with pytest.raises(GuardRefused, match=f"closed on {due:%a %d %b %Y}"):
        portal.record_inaccuracy(db, report_id=report.id, text="Another", principal=lead, clock=FixedClock(late))  # type: ignore[arg-type]
    with Session(db) as s:
        assert "closed on" in (portal.accuracy_refusal(s, lead, s.get(Report, report.id), late) or "")  # type: ignore[arg-type]
    session.expire_all()
    fire(session, report.id, "record_inaccuracy", late, text="Sent late, recorded by the office")  # type: ignore[arg-type]
    assert count(session, AccuracyItem) == 2


def test_another_trusts_report_is_not_found_and_nothing_is_recorded(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
    stranger = service_lead(db, session, OTHER_SERVICE, OTHER_TRUST)
    with pytest.raises(NotFound):
        portal.record_inaccuracy(db, report_id=report.id, text=CLAIM, principal=stranger, clock=FixedClock(DAY))  # type: ignore[arg-type]
    with Session(db) as s, pytest.raises(NotFound):
        portal.accuracy_page(s, stranger, report.id, DAY)  # type: ignore[arg-type]
    assert count(session, AccuracyItem) == 0 and count(session, RefusedAttempt) == 0


def test_who_may_state_one_the_trusts_executives_yes_a_commissioner_no(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report = _in_check(session, services)
    md = granted(
        db, "Dr Mo Director", "medical-director", "organisation", org_id(session, "Midland Royal Hospitals NHS Trust")
    )
    commissioner = granted(db, "Ms Cara Commissioner", "responsible-commissioner", "service", report.service_id)
    with Session(db) as s:
        row = s.get(Report, report.id)
        assert portal.accuracy_refusal(s, md, row, DAY) is None  # type: ignore[arg-type]
        assert "only the service states its inaccuracies" in (portal.accuracy_refusal(s, commissioner, row, DAY) or "")  # type: ignore[arg-type]
    portal.record_inaccuracy(db, report_id=report.id, text=CLAIM, principal=md, clock=FixedClock(DAY))  # type: ignore[arg-type]
    with pytest.raises(Exception, match="may not"):
        portal.record_inaccuracy(db, report_id=report.id, text=CLAIM, principal=commissioner, clock=FixedClock(DAY))  # type: ignore[arg-type]
    assert count(session, AccuracyItem) == 1


# --------------------------------------------------------------------------- the pages


@pytest.fixture
def web_report(db: Engine, session: Session, services: dict[str, int]) -> Report:
    make_training(db)
    report = _in_check(session, services)
    stand_at(db, DAY)
    return report


def test_the_page_shows_the_draft_the_deadline_and_adds_one_with_evidence(
    db_url: str, db: Engine, session: Session, web_report: Report
) -> None:
    client = sign_in_as(db_url, db, service_lead(db, session))
    url = f"/portal/reports/{web_report.id}/accuracy"
    page = client.get(url)
    assert page.status_code == 200
    due = accuracy_reply_due(session, web_report)
    assert IR_TITLE in page.text or "No &lt;b&gt;oxygen&lt;/b&gt;" in page.text  # escaped, never markup
    assert "<b>oxygen</b>" not in page.text and POSITIVE.replace("&", "&amp;") in page.text
    assert f"{due:%a %d %b %Y}" in page.text and 'action="' + url + '"' in page.text
    done = client.post(
        url,
        data={"csrf_token": csrf_of(page.text), "text": CLAIM},
        files=[("files", ("rota.pdf", PDF, "application/pdf"))],
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"{url}?done=1"
    shown = client.get(done.headers["location"]).text
    assert "Your inaccuracy is recorded" in shown and "rota.pdf" in shown and "not decided yet" in shown
    (upload,) = session.exec(select(Upload)).all()
    link = re.search(r'<a href="(/uploads/\d+)">rota\.pdf</a>', shown)
    assert link is not None and link.group(1) == f"/uploads/{upload.id}"
    assert client.get(link.group(1)).content == PDF  # the evidence, to whoever may see the report


def test_a_later_improvement_is_refused_on_the_page_with_the_rule(
    db_url: str, db: Engine, session: Session, web_report: Report
) -> None:
    client = sign_in_as(db_url, db, service_lead(db, session))
    url = f"/portal/reports/{web_report.id}/accuracy"
    answer = client.post(url, data={"csrf_token": csrf_of(client.get(url).text), "text": LATER})
    assert answer.status_code == 400
    assert "only observations on the day count" in answer.text and "There is a problem" in answer.text
    assert count(session, AccuracyItem) == 0


def test_a_bad_file_is_refused_on_the_page_and_nothing_stored(
    db_url: str, db: Engine, session: Session, web_report: Report
) -> None:
    client = sign_in_as(db_url, db, service_lead(db, session))
    url = f"/portal/reports/{web_report.id}/accuracy"
    answer = client.post(
        url,
        data={"csrf_token": csrf_of(client.get(url).text), "text": CLAIM},
        files=[("files", ("evidence.pdf", PROGRAM, "application/pdf"))],
    )
    assert answer.status_code == 422 and "not a kind of file accepted" in answer.text
    assert count(session, AccuracyItem) == 0 and count(session, Upload) == 0


def test_the_outcomes_decided_by_the_network_show_and_after_approval_the_form_is_gone(
    db_url: str, db: Engine, session: Session, web_report: Report
) -> None:
    lead = service_lead(db, session)
    portal.record_inaccuracy(db, report_id=web_report.id, text=CLAIM, principal=lead, clock=FixedClock(DAY))  # type: ignore[arg-type]
    session.expire_all()
    (item_id,) = session.exec(select(AccuracyItem.id).order_by(col(AccuracyItem.id))).all()
    for role, who in ((NM, "Dr Asha Patel"), (RL, "Mr Tom Hughes")):
        fire(
            session, web_report.id, "decide_inaccuracy", DAY, role=role, actor=who, item_id=item_id, decision="accepted"
        )  # type: ignore[arg-type]
    fire(session, web_report.id, "approve", DAY + timedelta(days=1), role=NM, actor="Dr Asha Patel")  # type: ignore[arg-type]
    stand_at(db, DAY + timedelta(days=2))
    page = sign_in_as(db_url, db, lead).get(f"/portal/reports/{web_report.id}/accuracy")
    assert page.status_code == 200 and "accepted" in page.text
    assert 'id="why-not"' in page.text and "The factual accuracy check is over" in page.text
    assert "Send this inaccuracy" not in page.text


def test_another_trusts_account_gets_404_for_the_page_and_the_post(
    db_url: str, db: Engine, session: Session, web_report: Report
) -> None:
    client = sign_in_as(db_url, db, service_lead(db, session, OTHER_SERVICE, OTHER_TRUST))
    url = f"/portal/reports/{web_report.id}/accuracy"
    hidden = client.get(url)
    assert hidden.status_code == 404
    assert client.get("/portal/reports/99999999/accuracy").status_code == 404
    assert client.get("/portal/reports/abc/accuracy").status_code == 404
    token = csrf_of(hidden.text)  # the sign-out form's: the person is signed in
    assert client.post(url, data={"csrf_token": token, "text": CLAIM}).status_code == 404
    assert count(session, AccuracyItem) == 0 and count(session, RefusedAttempt) == 0


def test_before_the_draft_is_sent_the_service_sees_no_findings(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    report, _ = documented(session, services)
    lead = service_lead(db, session)
    with Session(db) as s:
        data = portal.accuracy_page(s, lead, report.id, DAY)  # type: ignore[arg-type]
    assert data["findings"] is None and not data["may"] and "not been sent" in data["why_not"]
