"""The Trust portal's self-assessment (issue 16 item 6): the service downloads the Appendix 2
spreadsheet, uploads the completed one (every problem shown by row and column, nothing stored
from a refused file) or fills it in online; both make the same record, as the signed-in person."""

from __future__ import annotations

import re
from datetime import date
from io import BytesIO
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, OutboxMessage, RefusedAttempt
from models.selfassessment import SelfAssessment
from states.clock import FixedClock, SystemClock, local_date
from states.machines.spec import get_spec
from states.machines.standards import standards_of
from states.services import selfassessment as sa_service
from tests.factories import MRH
from tests.hostile_xlsx import zip_bomb
from tests.support_selfassessment import (
    ACC,
    GOOD,
    circulate,
    counts,
    fill,
    items_of,
    library,  # noqa: F401 (pytest fixtures)
    xlsx,
)
from tests.support_web import csrf_of, signed_in

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def today_clock() -> FixedClock:
    """The web acts on the server's clock: the declaration is circulated on its day."""
    return FixedClock(local_date(SystemClock().now()))


def _declaration(session: Session, services: dict[str, int], clock: FixedClock, year: int = 2026) -> SelfAssessment:
    return circulate(session, services, clock, year=year)


def _lead(db_url: str, db: Engine, services: dict[str, int], name: str = "Sam Lead", service: str = ACC) -> Any:
    return signed_in(db_url, db, name, ("service-lead",), scope="service", scope_id=services[service])


def _upload(client: Any, item_id: int, data: bytes, name: str = "return.xlsx") -> Any:
    page = client.get(f"/portal/selfassessments/{item_id}")
    return client.post(
        f"/portal/selfassessments/{item_id}/upload",
        data={"csrf_token": csrf_of(page.text)},
        files={"spreadsheet": (name, data, XLSX)},
        follow_redirects=False,
    )


def _online_fields(
    session: Session, row: SelfAssessment, answers: dict[str, tuple[Any, Any, Any, Any]]
) -> dict[str, str]:
    out = {}
    for n, std in enumerate(standards_of(session, row.standard_set_id)):
        status, figure, comments, evidence = answers[std.ref]
        for name, value in zip(
            ("status", "figure", "comments", "evidence"), (status, figure, comments, evidence), strict=True
        ):
            out[f"{name}-{n}"] = "" if value is None else str(value)
    return out


def _stored(session: Session, row: SelfAssessment) -> dict[str, tuple[Any, ...]]:
    return {
        ref: (i.self_status, i.figure, i.comments, i.evidence_location, i.validated_status)
        for ref, i in items_of(session, row).items()
    }


def test_the_page_shows_the_standards_what_is_asked_by_when_and_downloads_the_spreadsheet(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
) -> None:
    row = _declaration(session, services, today_clock)
    client, _ = _lead(db_url, db, services)
    page = client.get(f"/portal/selfassessments/{row.id}")
    assert page.status_code == 200
    due = sa_service.return_due(session, row)
    assert due is not None and due.isoformat() in page.text
    assert "working days left" in page.text
    for ref in GOOD:
        assert f">{ref}<" in page.text
    got = client.get(f"/portal/selfassessments/{row.id}/spreadsheet")
    assert got.status_code == 200
    assert got.headers["content-type"] == XLSX
    assert "attachment" in got.headers["content-disposition"]
    ws = load_workbook(BytesIO(got.content))["Self-Assessment"]
    assert [ws.cell(row=r, column=1).value for r in range(2, 2 + len(GOOD))] == list(GOOD)


def test_an_upload_with_errors_lists_them_by_row_and_column_and_stores_nothing_then_a_good_one_is_received(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
) -> None:
    row = _declaration(session, services, today_clock)
    client, lead = _lead(db_url, db, services)
    blank = xlsx(session, row)
    bad = dict(GOOD)
    bad["1.2"] = ("Unmet", 98, "", "ICNARC report Q2")  # contradicts the figure
    bad["2.2"] = ("Met", None, "", None)  # no evidence location
    before = counts(session)
    version = row.version
    refused = _upload(client, row.id, fill(blank, bad))  # type: ignore[arg-type]
    assert refused.status_code == 422
    text = refused.text
    assert "There is a problem" in text
    assert re.search(r"Row 3, column &#39;Self-Assessment&#39;: &#39;Unmet&#39; contradicts the figure 98", text)
    assert re.search(r"Row 7, column &#39;Evidence location&#39;: missing", text)
    assert 'id="problems"' in text
    # nothing stored from it: no rows, no version, no letter, no report, no event
    session.expire_all()
    assert counts(session) == before
    assert session.get(SelfAssessment, row.id).version == version  # type: ignore[union-attr]
    refusal = session.exec(select(RefusedAttempt).where(RefusedAttempt.item_id == row.id)).one()
    assert refusal.user_id == lead.user_id and refusal.role == "service-lead" and refusal.data["count"] == 2

    done = _upload(client, row.id, fill(blank, GOOD))  # type: ignore[arg-type]
    assert done.status_code == 303
    assert done.headers["location"] == f"/portal/selfassessments/{row.id}?done=upload"
    session.expire_all()
    got = session.get(SelfAssessment, row.id)
    assert got is not None and got.state == "received"
    assert _stored(session, row)["1.2"] == ("Met", 98.0, "", "ICNARC report Q2", None)
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.kind == "selfassessment", AuditEvent.item_id == row.id, AuditEvent.trigger == "receive"
        )
    ).one()
    assert (event.user_id, event.role) == (lead.user_id, "service-lead")
    assert "Your spreadsheet was received" in client.get(done.headers["location"]).text


def test_online_answers_make_the_same_record_as_the_same_answers_uploaded(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
) -> None:
    uploaded = _declaration(session, services, today_clock, year=2026)
    online = _declaration(session, services, today_clock, year=2027)
    client, lead = _lead(db_url, db, services)
    assert _upload(client, uploaded.id, fill(xlsx(session, uploaded), GOOD)).status_code == 303  # type: ignore[arg-type]
    form = client.get(f"/portal/selfassessments/{online.id}/online")
    assert form.status_code == 200
    fields = _online_fields(session, online, GOOD)
    sent = client.post(
        f"/portal/selfassessments/{online.id}/online",
        data={"csrf_token": csrf_of(form.text), **fields},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    assert _stored(session, online) == _stored(session, uploaded)
    assert len(_stored(session, online)) == len(GOOD)
    session.expire_all()
    both = session.exec(select(SelfAssessment).where(col(SelfAssessment.id).in_([uploaded.id, online.id]))).all()
    assert {r.state for r in both} == {"received"}
    roles = session.exec(
        select(AuditEvent.role, AuditEvent.user_id).where(
            AuditEvent.kind == "selfassessment", AuditEvent.trigger == "receive"
        )
    ).all()
    assert sorted(roles) == [("service-lead", lead.user_id)] * 2


def test_online_errors_stand_beside_their_standard_and_nothing_is_stored(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
) -> None:
    row = _declaration(session, services, today_clock)
    client, _ = _lead(db_url, db, services)
    form = client.get(f"/portal/selfassessments/{row.id}/online")
    answers = dict(GOOD)
    answers["1.1"] = ("Partially Met", None, "", "rota")  # 1.1 has no Partially Met band
    answers["1.3"] = ("Partially Met", "lots", "", "work plan")  # not a number
    before = counts(session)
    sent = client.post(
        f"/portal/selfassessments/{row.id}/online",
        data={"csrf_token": csrf_of(form.text), **_online_fields(session, row, answers)},
    )
    assert sent.status_code == 422
    assert "Standard 1.1, Self-Assessment: standard 1.1 has no &#39;Partially Met&#39; band" in sent.text
    assert "Standard 1.3, Figure Achieved: &#39;lots&#39; is not a number" in sent.text
    assert 'href="#field-status-0"' in sent.text  # the summary links to the field
    assert 'value="lots"' in sent.text  # the answers are kept
    session.expire_all()
    assert counts(session) == before
    assert session.get(SelfAssessment, row.id).state == "circulated"  # type: ignore[union-attr]


def test_hostile_files_are_refused_on_the_page_with_nothing_stored(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = _declaration(session, services, today_clock)
    client, _ = _lead(db_url, db, services)
    before = counts(session)
    for data, expected in (
        (b"%PDF-1.4 not a workbook", "not an .xlsx workbook (a PDF)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "Excel 97-2003"),
        (zip_bomb(), "over the limit"),
    ):
        got = _upload(client, row.id, data, name="../../etc/evil.xlsx")  # type: ignore[arg-type]
        assert got.status_code == 422
        assert expected in got.text
    monkeypatch.setenv("PEERWATCH_SELFASSESSMENT_MAX_FILE_BYTES", "1000")
    big = _upload(client, row.id, fill(xlsx(session, row), GOOD))  # type: ignore[arg-type]
    assert big.status_code == 422 and "over the limit of 1,000 bytes" in big.text
    nothing = client.post(
        f"/portal/selfassessments/{row.id}/upload",
        data={"csrf_token": csrf_of(client.get(f"/portal/selfassessments/{row.id}").text)},
    )
    assert nothing.status_code == 422 and "Choose the completed spreadsheet" in nothing.text
    session.expire_all()
    assert counts(session) == before
    names = session.exec(select(RefusedAttempt.data).where(RefusedAttempt.item_id == row.id)).all()
    assert {d["filename"] for d in names} == {"evil.xlsx", "return.xlsx"}  # no path
    assert sa_service.safe_filename("C:\\x\\a\x00b\u2028c.xlsx") == "a b c.xlsx"
    assert sa_service.safe_filename("") == "return.xlsx"


def test_another_trusts_or_services_account_gets_404_and_only_leads_and_managers_return_it(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
) -> None:
    row = _declaration(session, services, today_clock)
    blank = xlsx(session, row)
    for name, service in (("Other Trust Lead", MRH), ("Same Trust Other Service", "Severnside Trauma Unit")):
        other, _ = _lead(db_url, db, services, name, service)
        own = other.get("/portal/selfassessments/999999").status_code
        assert own == 404
        for path in ("", "/spreadsheet", "/online"):
            assert other.get(f"/portal/selfassessments/{row.id}{path}").status_code == 404
        csrf = csrf_of(other.get("/account/tokens").text)
        assert (
            other.post(
                f"/portal/selfassessments/{row.id}/upload",
                data={"csrf_token": csrf},
                files={"spreadsheet": ("r.xlsx", fill(blank, GOOD), XLSX)},
            ).status_code
            == 404
        )
        assert other.post(f"/portal/selfassessments/{row.id}/online", data={"csrf_token": csrf}).status_code == 404
    assert _lead(db_url, db, services)[0].get("/portal/selfassessments/x1").status_code == 404
    with Session(db) as s:
        org = get_spec("selfassessment").recipient_scope(s, s.get(SelfAssessment, row.id))["organisation_id"]
    ceo, _ = signed_in(db_url, db, "Chris Exec", ("chief-executive",), scope="organisation", scope_id=org)
    page = ceo.get(f"/portal/selfassessments/{row.id}")
    assert page.status_code == 200 and "only the service&#39;s Leads and Managers return" in page.text
    assert ceo.get(f"/portal/selfassessments/{row.id}/online").status_code == 403
    refused = ceo.post(
        f"/portal/selfassessments/{row.id}/upload",
        data={"csrf_token": csrf_of(page.text)},
        files={"spreadsheet": ("r.xlsx", fill(blank, GOOD), XLSX)},
    )
    assert refused.status_code == 403
    session.expire_all()
    assert session.get(SelfAssessment, row.id).state == "circulated"  # type: ignore[union-attr]
    assert (
        session.exec(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.template == "selfassessment_refused")
        ).one()
        == 0
    )


def test_a_received_declaration_takes_no_second_return(
    db_url: str,
    db: Engine,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    today_clock: FixedClock,
) -> None:
    row = _declaration(session, services, today_clock)
    client, _ = _lead(db_url, db, services)
    data = fill(xlsx(session, row), GOOD)
    assert _upload(client, row.id, data).status_code == 303  # type: ignore[arg-type]
    page = client.get(f"/portal/selfassessments/{row.id}")
    assert "a return is taken only while it is circulated" in page.text
    again = client.post(
        f"/portal/selfassessments/{row.id}/upload",
        data={"csrf_token": csrf_of(page.text)},
        files={"spreadsheet": ("return.xlsx", data, XLSX)},
    )
    assert again.status_code == 400
    assert date.today() >= date(2000, 1, 1)
