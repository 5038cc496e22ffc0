"""The Trust's formal response to an IR or SC in the portal (issue 16 item 3): the machine's new
step and deadline, the use case (one transaction with its files; nothing stored on a refusal),
who may answer (the Trust's own roles, no other Trust, no member of staff), and the pages."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Deadline, OutboxMessage, Risk, Service
from models.portal import RiskResponse, Upload
from models.tables import OUTSTANDING, RefusedAttempt
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import InvalidInput, InvalidTrigger, NotFound, PermissionDenied
from states.principal import Principal
from states.services import responses
from states.views import work
from tests.factories import MRH, person
from tests.support_accounts import account
from tests.support_web import csrf_of, signed_in
from tests.test_uploads import DOCX_BYTES, EXE_BYTES, PDF_BYTES

NM = "network-manager"
OTHER = "Wirral Coast Trauma Unit"
NOTIFIED = date(2026, 12, 11)  # the formal notification (the clock fixture's day)
DAY = date(2026, 12, 14)  # a Monday: the Trust answers
TEXT = "The risk is on the Trust and Division registers.\n\nInterim actions: a second consultant on call."


def _notified(session: Session, raise_risk: Callable[..., Risk], level: str = "IR") -> Risk:
    risk = raise_risk(level)
    engine.fire(
        session, "risk", risk.id, "send_formal_notification", principal=person("nm", NM), clock=FixedClock(NOTIFIED)
    )
    session.commit()
    return risk


def _fire(session: Session, risk: Risk, trigger: str, day: date = NOTIFIED, who: Principal | None = None) -> None:
    engine.fire(session, "risk", risk.id, trigger, principal=who or person("nm", NM), clock=FixedClock(day))
    session.commit()


def _notified_long_ago(session: Session, services: dict[str, int]) -> Risk:
    """For the pages, which run on the real clock: a risk raised and notified in the past."""
    back = FixedClock(date(2025, 6, 2))
    row = Risk(
        service_id=services[MRH], level="IR", title="IR found at visit", identified_on=back.now().date(), state="new"
    )
    out = engine.create(session, "risk", row, "raise", principal=person("nm", NM), clock=back)
    engine.fire(session, "risk", out.row.id, "send_formal_notification", principal=person("nm", NM), clock=back)  # type: ignore[arg-type]
    session.commit()
    assert isinstance(out.row, Risk)
    return out.row


def _in_state(session: Session, raise_risk: Callable[..., Risk], state: str) -> Risk:
    """A risk brought to ``state`` through the engine."""
    risk = _notified(session, raise_risk)
    if state in ("chased", "escalated"):
        _fire(session, risk, "no_response")
    if state == "escalated":
        _fire(session, risk, "still_no_response")
    if state == "further_response_requested":
        _fire(session, risk, "response_inadequate")
    assert session.get(Risk, risk.id).state == state  # type: ignore[union-attr]
    return risk


def _trust(
    db: Engine, services: dict[str, int], name: str = "Lead", service: str = MRH, role: str = "service-lead"
) -> Principal:
    return account(db, name, (role,), scope="service", scope_id=services[service])


def _chief_executive(db: Engine, session: Session, services: dict[str, int], name: str = "Chief") -> Principal:
    svc = session.get(Service, services[MRH])
    assert svc is not None
    return account(db, name, ("chief-executive",), scope="organisation", scope_id=svc.organisation_id)


def _outstanding(session: Session, risk_id: int) -> list[tuple[str, date]]:
    rows = session.exec(
        select(Deadline).where(
            Deadline.kind == "risk", Deadline.item_id == risk_id, col(Deadline.status).in_(OUTSTANDING)
        )
    )
    return sorted((d.name, d.due_on) for d in rows)


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(t)).one()
        for t in (AuditEvent, OutboxMessage, Deadline, RiskResponse, Upload)
    )


def _submit(session: Session, who: Principal, risk: Risk, day: date = DAY, **kw: Any) -> RiskResponse:
    files = kw.pop("files", [("plan.pdf", PDF_BYTES)])
    out = responses.submit_response(session, who, risk.id, kw.pop("text", TEXT), files, FixedClock(day), **kw)
    session.commit()
    return out


# ------------------------------------------------------------------ the machine and the use case


@pytest.mark.parametrize("state", ["awaiting_response", "chased", "further_response_requested", "escalated"])
def test_the_trust_submits_from_each_waiting_state(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk], state: str
) -> None:
    risk = _in_state(session, raise_risk, state)
    lead = _trust(db, services)
    response = _submit(session, lead, risk)
    row = session.get(Risk, risk.id)
    assert row is not None and row.state == "response_received"
    assert (response.number, response.submitted_role, response.submitted_by, response.text) == (
        1,
        "service-lead",
        lead.user_id,
        TEXT,
    )
    # the waiting deadlines (response, further response, chase) closed; the judge's opened
    assert _outstanding(session, risk.id) == [("judge_response", calendar_for("ENG").add_working_days(DAY, 5))]
    event = session.exec(
        select(AuditEvent).where(AuditEvent.item_id == risk.id).order_by(col(AuditEvent.id).desc())
    ).first()
    assert event is not None and (event.trigger, event.role, event.user_id) == (
        "submit_response",
        "service-lead",
        lead.user_id,
    )
    assert event.data["params"]["file"][0]["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    letter = session.exec(
        select(OutboxMessage).where(OutboxMessage.item_id == risk.id, OutboxMessage.template == "response_received")
    ).one()
    assert {p["role"] for p in letter.to} == {"chief-executive", "medical-director", "service-lead"}
    assert {p["role"] for p in letter.cc} == {"network-manager"}
    written = rendered(letter)
    assert "formal response 1 received" in written.subject
    assert "plan.pdf" in written.body_text and "21 Dec 2026" in written.body_text, written.body_text


def test_the_chief_executive_answers_for_the_whole_trust(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _in_state(session, raise_risk, "awaiting_response")
    response = _submit(session, _chief_executive(db, session, services), risk, files=[])
    assert (response.submitted_role, response.number) == ("chief-executive", 1)
    assert responses.responses_of(session, person("nm", NM), risk.id)[0]["files"] == []


def test_the_no_response_chase_stops_and_the_judge_is_reminded_then_chased(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    answered = _notified(session, raise_risk)
    silent = _notified(session, raise_risk)
    response_due = dict(_outstanding(session, silent.id))["response"]
    _submit(session, _trust(db, services), answered)
    judge_by = dict(_outstanding(session, answered.id))["judge_response"]
    assert judge_by == date(2026, 12, 21)  # 5 working days after Monday 14 December
    later = FixedClock(calendar_for("ENG").add_working_days(max(response_due, judge_by), 1))
    summary = run_sweep(db, later)
    assert summary.count("no_response") == 1  # the silent risk only: the date has passed for both
    session.expire_all()
    assert session.get(Risk, silent.id).state == "chased"  # type: ignore[union-attr]
    assert session.get(Risk, answered.id).state == "response_received"  # type: ignore[union-attr]
    templates = set(session.exec(select(OutboxMessage.template).where(OutboxMessage.item_id == answered.id)).all())
    assert {"response_received", "response_judgement_overdue"} <= templates
    assert "chase" not in templates


def test_the_judge_deadline_counts_working_days_and_is_in_the_network_managers_work(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    _submit(session, _trust(db, services), risk, day=date(2026, 12, 23))
    # Thu 24, (Christmas, Boxing Day moved to Mon 28), Tue 29, Wed 30, Thu 31, (New Year), Mon 4
    assert _outstanding(session, risk.id) == [("judge_response", date(2027, 1, 4))]
    nm = account(db, "Network Manager", (NM,))
    mine = work.my_work(session, nm, FixedClock(date(2026, 12, 24)))
    assert [(d["deadline"], d["id"]) for d in mine["deadlines"] if d["kind"] == "risk"] == [("judge_response", risk.id)]
    lead = _trust(db, services)
    assert not [
        d for d in work.my_work(session, lead, FixedClock(date(2026, 12, 24)))["deadlines"] if d["kind"] == "risk"
    ]


@pytest.mark.parametrize(("trigger", "state", "judgement"), [
    ("response_adequate", "monitoring", "adequate"),
    ("response_inadequate", "further_response_requested", "inadequate"),
])  # fmt: skip
def test_the_network_manager_judges_and_the_judgement_is_stamped(
    db: Engine,
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
    trigger: str,
    state: str,
    judgement: str,
) -> None:
    risk = _notified(session, raise_risk)
    response = _submit(session, _trust(db, services), risk)
    nm = account(db, "Network Manager", (NM,))
    _fire(session, risk, trigger, date(2026, 12, 16), nm)
    session.expire_all()
    assert session.get(Risk, risk.id).state == state  # type: ignore[union-attr]
    stamped = session.get(RiskResponse, response.id)
    assert stamped is not None and (stamped.judgement, stamped.judged_by) == (judgement, nm.user_id)
    assert stamped.judged_at is not None and stamped.judged_at.date() == date(2026, 12, 16)
    assert "judge_response" not in dict(_outstanding(session, risk.id))
    shown = responses.responses_of(session, nm, risk.id)[0]
    assert (shown["judgement"], shown["judged_name"]) == (judgement, "Network Manager")


def test_a_further_response_after_an_inadequate_one_goes_the_same_way(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    lead = _trust(db, services)
    nm = account(db, "Network Manager", (NM,))
    first = _submit(session, lead, risk)
    _fire(session, risk, "response_inadequate", date(2026, 12, 15), nm)
    assert [n for n, _ in _outstanding(session, risk.id)] == ["further_response"]
    second = _submit(session, lead, risk, day=date(2026, 12, 16), files=[("plan.pdf", PDF_BYTES + b"%2\n")])
    assert second.number == 2
    assert session.get(Risk, risk.id).state == "response_received"  # type: ignore[union-attr]
    files = [u for r in responses.responses_of(session, lead, risk.id) for u in r["files"]]
    assert [(f["filename"], f["version"]) for f in files] == [("plan.pdf", 1), ("plan.pdf", 1)]  # one per response
    _fire(session, risk, "response_inadequate", date(2026, 12, 17), nm)
    session.expire_all()
    assert session.get(Risk, risk.id).state == "escalated"  # continued inadequate response
    judged = [session.get(RiskResponse, r.id).judgement for r in (first, second)]  # type: ignore[union-attr]
    assert judged == ["inadequate", "inadequate"]


def test_a_response_received_on_paper_is_still_judged_from_the_waiting_state(
    session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    _fire(session, risk, "response_adequate", DAY)
    assert session.get(Risk, risk.id).state == "monitoring"  # type: ignore[union-attr]


def test_another_trust_cannot_see_or_answer_and_staff_cannot_answer_for_the_trust(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    before = _counts(session)
    other_lead = _trust(db, services, "Other Lead", OTHER)
    other_ce = account(
        db,
        "Other Chief",
        ("chief-executive",),
        scope="organisation",
        scope_id=session.get(Service, services[OTHER]).organisation_id,
    )  # type: ignore[union-attr]
    for stranger in (other_lead, other_ce):
        with pytest.raises(NotFound, match=f"risk {risk.id} not found"):
            _submit(session, stranger, risk)
        session.rollback()
        with pytest.raises(NotFound):
            responses.responses_of(session, stranger, risk.id)
    for staff in (account(db, "Network Manager", (NM,)), account(db, "Officer", ("network-office",))):
        with pytest.raises(PermissionDenied, match="needs one of chief-executive, medical-director, service-lead"):
            _submit(session, staff, risk)
        session.rollback()
    lead_doctor = _trust(db, services, "Lead Doctor", role="lead-doctor")  # a Trust role, not one that answers
    with pytest.raises(PermissionDenied):
        _submit(session, lead_doctor, risk)
    session.rollback()
    assert _counts(session) == before


def test_one_bad_file_stores_nothing_and_the_refusal_is_recorded(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    lead = _trust(db, services)
    before = _counts(session)
    cases = [
        ([("plan.pdf", PDF_BYTES), ("evidence.pdf", EXE_BYTES)], "evidence.pdf is not a kind of file accepted"),
        ([("plan.docx", PDF_BYTES)], r"plan\.docx is a PDF file"),
        ([("plan.pdf", PDF_BYTES), ("plan.pdf", PDF_BYTES)], "attached twice"),
        ([(f"f{i}.pdf", PDF_BYTES) for i in range(11)], "at most 10"),
    ]
    for files, problem in cases:
        with pytest.raises(InvalidInput, match=problem):
            responses.submit(db, lead, risk.id, TEXT, files, FixedClock(DAY))
    for text, problem in [("  \n ", "is empty"), ("x" * 20_001, "at most 20,000"), ("bell \x07", "control character")]:
        with pytest.raises(InvalidInput, match=problem):
            responses.submit(db, lead, risk.id, text, [], FixedClock(DAY))
    session.expire_all()
    assert _counts(session) == before
    assert session.get(Risk, risk.id).state == "awaiting_response"  # type: ignore[union-attr]
    refused = session.exec(select(RefusedAttempt).where(RefusedAttempt.trigger == "submit_response")).all()
    assert len(refused) == len(cases) + 3 and all(r.user_id == lead.user_id for r in refused)


def test_a_second_response_before_judgement_and_a_stale_form_are_refused(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    lead = _trust(db, services)
    version = session.get(Risk, risk.id).version  # type: ignore[union-attr]
    _submit(session, lead, risk, version=version)
    with pytest.raises(InvalidTrigger, match="'response_received'"):
        _submit(session, lead, risk)
    session.rollback()
    with pytest.raises(PermissionDenied, match="not waiting for a response"):
        responses.respond_form(session, lead, risk.id)
    assert session.exec(select(func.count()).select_from(RiskResponse)).one() == 1


def test_text_is_kept_as_written_with_line_endings_made_plain(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    response = _submit(session, _trust(db, services), risk, text="  Line one\r\nLine two\r\n\r\n\tIndented  ")
    assert response.text == "Line one\nLine two\n\n\tIndented"


# ------------------------------------------------------------------ the pages


def _multipart(csrf: str, version: int, text: str, files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    return {
        "data": {"csrf_token": csrf, "version": str(version), "text": text},
        "files": [("files", (name, data, ctype)) for name, data, ctype in files]
        or [("files", ("", b"", "application/octet-stream"))],
    }


def test_the_service_lead_responds_in_the_portal_and_everyone_who_may_see_reads_it(
    db_url: str, db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified_long_ago(session, services)
    client, _lead = signed_in(db_url, db, "Portal Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    form = client.get(f"/risks/{risk.id}/respond")
    assert form.status_code == 200, form.text
    assert 'enctype="multipart/form-data"' in form.text and 'type="file"' in form.text and "multiple" in form.text
    version = int(re.search(r'name="version" value="(\d+)"', form.text).group(1))  # type: ignore[union-attr]
    name = "Plan – v2 é \u00e9.pdf"
    sent = client.post(
        f"/risks/{risk.id}/respond",
        **_multipart(
            csrf_of(form.text),
            version,
            TEXT,
            [(name, PDF_BYTES, "application/octet-stream"), ("rota.docx", DOCX_BYTES, "text/html")],
        ),
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"/items/risk/{risk.id}?done=submit_response"
    assert "Submit response: done" in client.get(sent.headers["location"]).text
    session.expire_all()
    uploads = session.exec(select(Upload).order_by(col(Upload.id))).all()
    assert [(u.filename, u.content_type) for u in uploads] == [
        (name, "application/pdf"),
        ("rota.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ]
    listing = client.get(f"/risks/{risk.id}/responses")
    assert listing.status_code == 200
    assert "Interim actions: a second consultant on call." in listing.text and "Portal Lead" in listing.text
    assert f'href="/uploads/{uploads[0].id}"' in listing.text
    got = client.get(f"/uploads/{uploads[0].id}")
    assert got.status_code == 200 and got.content == PDF_BYTES
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["cache-control"] == "no-store"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Plan _ v2 _ _.pdf"; ')
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == name
    # the Network Manager reads it too, and may judge it on the item page but not answer it
    nm_client, _nm = signed_in(db_url, db, "Judge", (NM,))
    assert "Portal Lead" in nm_client.get(f"/risks/{risk.id}/responses").text
    assert nm_client.get(f"/uploads/{uploads[1].id}").content == DOCX_BYTES
    assert nm_client.get(f"/risks/{risk.id}/respond").status_code == 403
    item = nm_client.get(f"/items/risk/{risk.id}").text
    assert (
        f"/items/risk/{risk.id}/act/response_adequate" in item
        and f"/items/risk/{risk.id}/act/response_inadequate" in item
    )


def test_a_refused_file_is_shown_on_the_page_and_nothing_is_stored(
    db_url: str, db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified_long_ago(session, services)
    client, _lead = signed_in(db_url, db, "Portal Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    form = client.get(f"/risks/{risk.id}/respond")
    csrf, version = csrf_of(form.text), session.get(Risk, risk.id).version  # type: ignore[union-attr]
    before = _counts(session)
    bad = client.post(
        f"/risks/{risk.id}/respond",
        **_multipart(
            csrf,
            version,
            TEXT,
            [("plan.pdf", PDF_BYTES, "application/pdf"), ("tool.pdf", EXE_BYTES, "application/pdf")],
        ),
    )
    assert bad.status_code == 422
    assert "There is a problem" in bad.text and "tool.pdf is not a kind of file accepted" in bad.text
    assert "Interim actions: a second consultant on call." in bad.text  # the text is kept for the person
    empty = client.post(f"/risks/{risk.id}/respond", **_multipart(csrf, version, "   ", []))
    assert empty.status_code == 422 and "the response is empty" in empty.text
    no_csrf = client.post(f"/risks/{risk.id}/respond", **_multipart("forged", version, TEXT, []))
    assert no_csrf.status_code == 403
    session.expire_all()
    assert _counts(session)[:5] == before[:5] and session.get(Risk, risk.id).state == "awaiting_response"  # type: ignore[union-attr]


def test_another_trust_gets_404_for_the_form_the_responses_and_the_files(
    db_url: str, db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)
    _submit(session, _trust(db, services), risk)
    upload = session.exec(select(Upload)).one()
    client, _other = signed_in(db_url, db, "Other Lead", ("service-lead",), scope="service", scope_id=services[OTHER])
    for path in (
        f"/risks/{risk.id}/respond",
        f"/risks/{risk.id}/responses",
        f"/uploads/{upload.id}",
        f"/uploads/{upload.id + 99}",
        "/uploads/0",
        "/risks/99999999999999999999/responses",
    ):
        assert client.get(path).status_code in (404, 422), path
    assert client.get(f"/uploads/{upload.id}").status_code == 404
    assert client.get(f"/risks/{risk.id}/responses").status_code == 404
    page = client.get("/").text  # the header's sign-out form carries the session's token
    refused = client.post(
        f"/risks/{risk.id}/respond", **_multipart(csrf_of(page), 1, TEXT, [("a.pdf", PDF_BYTES, "application/pdf")])
    )
    assert refused.status_code == 404
    assert session.exec(select(func.count()).select_from(RiskResponse)).one() == 1


def test_fired_on_its_own_without_the_use_case_it_is_refused(
    db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    """Through the command line or the API there would be no response row to judge."""
    risk = _notified(session, raise_risk)
    before = _counts(session)
    with pytest.raises(InvalidInput, match="response form"):
        engine.fire(session, "risk", risk.id, "submit_response", principal=_trust(db, services), clock=FixedClock(DAY))
    session.rollback()
    assert _counts(session) == before
