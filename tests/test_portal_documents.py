"""The Trust's documents in the portal (issue 16 item 7; seed 001; DOMAIN.md "Programme cycles"):
the annual report, work plan and operational policy, and the answer to a request for more
information, each a new version with its SHA-256 through the submission machine's ``receive``,
how late it came recorded at receipt and shown."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent
from models.cycle import Lateness, Submission, SubmissionFile
from models.tables import RefusedAttempt, Service
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, NotFound
from states.principal import Grant, Principal
from states.services import portal_submissions as portal
from tests.factories import person
from tests.support_accounts import make_training
from tests.support_portal_forms import (
    MRH_TRUST,
    OTHER_TRUST,
    PDF,
    PROGRAM,
    chief_executive,
    count,
    granted,
    org_id,
    stand_at,
)
from tests.support_web import csrf_of, sign_in_as

OFFICE = "network-office"
DUE = date(2027, 6, 30)  # Wed: seed 001's 30 June
WORK_PLAN = b"Work plan 2027-28\nAction 1: trauma team leader rota, owner Dr Reid\n"


def _requested(session: Session, trust: str = MRH_TRUST) -> Submission:
    """The Trust's annual report for 2027-28, requested on 1 April 2027 (due 30 June)."""
    org = org_id(session, trust)
    net = session.exec(select(Service.network_id).where(Service.organisation_id == org)).first()
    assert net is not None
    out = engine.create(
        session,
        "submission",
        Submission(network_id=net, organisation_id=org, programme_year=2027, doc_type="annual_report", due_on=DUE,
                   state="new"),
        "request",
        principal=person("Ms Nora Office", OFFICE),
        clock=FixedClock(date(2027, 4, 1)),
    )  # fmt: skip
    session.commit()
    assert isinstance(out.row, Submission)
    return out.row


def _ask_more(session: Session, sid: int, day: date, reason: str) -> None:
    session.expire_all()
    engine.fire(session, "submission", sid, "request_more_information", principal=person("Dr Asha Patel",
                "network-manager"), clock=FixedClock(day), note=reason)  # fmt: skip
    session.commit()


# --------------------------------------------------------------------------- the use case


def test_the_chief_executive_uploads_the_annual_report_on_time(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    sub = _requested(session)
    ceo = chief_executive(db, session)
    stored = portal.upload_document(
        db, submission_id=sub.id, filename="annual-report.pdf", data=PDF, principal=ceo, clock=FixedClock(DUE)
    )  # type: ignore[arg-type]
    session.expire_all()
    assert (stored.version, stored.filename, stored.sha256, stored.data) == (
        1,
        "annual-report.pdf",
        hashlib.sha256(PDF).hexdigest(),
        PDF,
    )
    assert session.get(Submission, sub.id).state == "received"  # type: ignore[union-attr]
    (late,) = session.exec(select(Lateness)).all()
    assert (late.kind, late.item_id, late.days_late) == ("submission", sub.id, 0)
    event = session.exec(
        select(AuditEvent).where(AuditEvent.kind == "submission", AuditEvent.trigger == "receive")
    ).one()
    assert (event.role, event.user_id) == ("chief-executive", ceo.user_id)
    params = event.data["params"]
    assert params["sha256"] == stored.sha256 and params["filename"] == "annual-report.pdf" and "data" not in params


def test_a_request_for_more_information_is_answered_as_the_next_version_and_lateness_shown(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    sub = _requested(session)
    lead = granted(db, "Dr Lee Lead", "service-lead", "organisation", org_id(session, MRH_TRUST))
    portal.upload_document(db, submission_id=sub.id, filename="annual-report.pdf", data=PDF, principal=lead,
                           clock=FixedClock(date(2027, 7, 2)))  # type: ignore[arg-type]  # fmt: skip
    _ask_more(session, sub.id, date(2027, 7, 5), "The work plan must answer recommendation 3")  # type: ignore[arg-type]
    with Session(db) as s:
        asked = portal.submission_page(s, lead, sub.id, date(2027, 7, 6))  # type: ignore[arg-type]
    assert asked["may"] and asked["requests"][0]["reason"] == "The work plan must answer recommendation 3"
    assert [d["name"] for d in asked["due"]] == ["more_information_due"]
    portal.upload_document(db, submission_id=sub.id, filename="work-plan.txt", data=WORK_PLAN, principal=lead,
                           clock=FixedClock(date(2027, 7, 7)))  # type: ignore[arg-type]  # fmt: skip
    with Session(db) as s:
        page = portal.submission_page(s, lead, sub.id, date(2027, 7, 7))  # type: ignore[arg-type]
    assert [(v["version"], v["filename"], v["days_late"]) for v in page["versions"]] == [
        (1, "annual-report.pdf", 2),
        (2, "work-plan.txt", 0),
    ]
    assert page["versions"][1]["sha256"] == hashlib.sha256(WORK_PLAN).hexdigest()
    assert page["submission"]["state"] == "received" and not page["may"] and "reviewing" in page["why_not"]


def test_a_file_whose_content_is_not_accepted_is_refused_and_nothing_stored(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    sub = _requested(session)
    ceo = chief_executive(db, session)
    for name, data, match in (
        ("annual-report.pdf", PROGRAM, "not a kind of file accepted"),
        ("annual-report.docx", PDF, "name it with .pdf"),
        ("annual-report.pdf", b"", "is empty"),
    ):
        with pytest.raises(InvalidInput, match=match):
            portal.upload_document(db, submission_id=sub.id, filename=name, data=data, principal=ceo,
                                   clock=FixedClock(DUE))  # type: ignore[arg-type]  # fmt: skip
    assert count(session, SubmissionFile) == 0 and count(session, Lateness) == 0
    assert session.get(Submission, sub.id).state == "requested"  # type: ignore[union-attr]
    assert count(session, RefusedAttempt) == 3


def test_who_may_send_and_another_trust_is_not_found(db: Engine, session: Session, services: dict[str, int]) -> None:
    sub = _requested(session)
    doctor = granted(db, "Dr Dee Doctor", "lead-doctor", "organisation", org_id(session, MRH_TRUST))
    with Session(db) as s:
        why = portal.submission_page(s, doctor, sub.id, DUE)["why_not"]  # type: ignore[arg-type]
    assert "only the Trust's Chief Executive, Medical Director, Service Lead or Service Manager" in why
    stranger = chief_executive(db, session, OTHER_TRUST)
    with pytest.raises(NotFound):
        portal.upload_document(db, submission_id=sub.id, filename="a.pdf", data=PDF, principal=stranger,
                               clock=FixedClock(DUE))  # type: ignore[arg-type]  # fmt: skip
    with Session(db) as s, pytest.raises(NotFound):
        portal.submission_page(s, stranger, sub.id, DUE)  # type: ignore[arg-type]
    assert count(session, RefusedAttempt) == 0


def test_a_path_is_read_only_on_the_command_line(db: Engine, session: Session, services: dict[str, int]) -> None:
    sub = _requested(session)
    over_the_web = Principal(1, "Web Office", (Grant(OFFICE),), via="web", prefer=OFFICE)
    with pytest.raises(InvalidInput, match="only on the command line"):
        engine.fire(session, "submission", sub.id, "receive", principal=over_the_web, clock=FixedClock(DUE),
                    params={"file": "/etc/hostname"})  # type: ignore[arg-type]  # fmt: skip
    session.rollback()
    assert count(session, SubmissionFile) == 0


# --------------------------------------------------------------------------- the pages


@pytest.fixture
def web_sub(db: Engine, session: Session, services: dict[str, int]) -> Submission:
    make_training(db)
    sub = _requested(session)
    stand_at(db, date(2027, 7, 2))  # two days after the due date
    return sub


def test_the_page_shows_what_is_due_and_an_upload_shows_its_lateness_and_checksum(
    db_url: str, db: Engine, session: Session, web_sub: Submission
) -> None:
    client = sign_in_as(db_url, db, chief_executive(db, session))
    url = f"/portal/submissions/{web_sub.id}"
    page = client.get(url)
    assert page.status_code == 200 and "Annual Report 2027-28" in page.text
    assert "Wed 30 Jun 2027" in page.text and "2 days late" in page.text  # outstanding, and overdue
    done = client.post(
        url,
        data={"csrf_token": csrf_of(page.text)},
        files=[("file", ("annual-report.pdf", PDF, "application/pdf"))],
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = client.get(done.headers["location"]).text
    assert hashlib.sha256(PDF).hexdigest() in shown and "2 days late" in shown and "2 working" in shown
    assert 'id="why-not"' in shown and "the network is reviewing it" in shown
    got = client.get(f"{url}/files/1")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-disposition"].startswith("attachment;")
    assert client.get(f"{url}/files/2").status_code == 404


def test_a_bad_file_is_refused_on_the_page_and_nothing_stored(
    db_url: str, db: Engine, session: Session, web_sub: Submission
) -> None:
    client = sign_in_as(db_url, db, chief_executive(db, session))
    url = f"/portal/submissions/{web_sub.id}"
    answer = client.post(
        url,
        data={"csrf_token": csrf_of(client.get(url).text)},
        files=[("file", ("annual-report.pdf", PROGRAM, "application/pdf"))],
    )
    assert answer.status_code == 422 and "not a kind of file accepted" in answer.text
    assert count(session, SubmissionFile) == 0
    nothing = client.post(url, data={"csrf_token": csrf_of(answer.text)})
    assert nothing.status_code == 422 and "choose the one file" in nothing.text


def test_another_trusts_account_gets_404_for_the_page_the_upload_and_the_file(
    db_url: str, db: Engine, session: Session, web_sub: Submission
) -> None:
    mine = sign_in_as(db_url, db, chief_executive(db, session))
    url = f"/portal/submissions/{web_sub.id}"
    assert mine.post(url, data={"csrf_token": csrf_of(mine.get(url).text)},
                     files=[("file", ("a.pdf", PDF, "application/pdf"))], follow_redirects=False).status_code == 303  # fmt: skip
    client = sign_in_as(db_url, db, chief_executive(db, session, OTHER_TRUST))
    hidden = client.get(url)
    assert hidden.status_code == 404
    answer = client.post(
        url, data={"csrf_token": csrf_of(hidden.text)}, files=[("file", ("b.pdf", PDF, "application/pdf"))]
    )
    assert answer.status_code == 404
    assert client.get(f"{url}/files/1").status_code == 404
    assert client.get("/portal/submissions/99999999999999999999").status_code == 404
    versions = session.exec(select(SubmissionFile.version).order_by(col(SubmissionFile.id))).all()
    assert list(versions) == [1]
