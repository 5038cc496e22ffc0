"""What an insider tried against the portal, each now refused (the review of issue 16):

- a network account given a Trust role through an invitation (or an administrator's grant), so
  the same person answers for the Trust and judges the answer; a Trust role across a network;
- a response judged by the account that sent it;
- complaints (about the conduct of a review, naming the complainant) shown to a Trust;
- the network's own mail and notes shown to a Trust (letters to reviewers, to the Network
  Manager; a Network Manager's note on a step);
- forty files posted to a form that takes ten, each read before the count;
- an archive whose central directory lists 200,000 entries; macro-enabled documents under a
  plain name; NUL and control characters in statements; bidirectional overrides in file names;
- an invitation outliving the contact it was for.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Contact, OutboxMessage, Risk, Service
from models.accounts import AccessToken
from models.portal import RiskResponse
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, NotFound
from states.services import accounts, contacts, intake, responses, selfassessment, trust_accounts
from states.uploads import check_file, sniff
from states.views import item as item_view
from states.views import work
from tests.factories import MRH, person
from tests.support_accounts import account
from tests.support_web import csrf_of, signed_in
from tests.test_uploads import PDF_BYTES

NM = "network-manager"
NOTIFIED = date(2026, 12, 11)


def _contact(session: Session, services: dict[str, int], role: str, email: str, **where: int) -> Contact:
    office = person("Office", "network-office")
    c = contacts.add_contact(
        session, role=role, name="Pat Person", email=email, principal=office, clock=FixedClock(NOTIFIED), **where
    )
    assert isinstance(c, Contact)
    session.commit()
    return c


def _notified(session: Session, raise_risk: Callable[..., Risk]) -> Risk:
    risk = raise_risk("IR")
    engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("nm", NM),
                clock=FixedClock(NOTIFIED))  # fmt: skip
    session.commit()
    return risk


# ---------------------------------------------------------------- one side or the other


def test_a_network_account_is_never_given_a_trust_role(db: Engine, session: Session, services: dict[str, int]) -> None:
    manager = account(db, "Nora Manager", (NM,), email="nora.manager@example.nhs.uk")
    office = account(db, "Otto Office", ("network-office",))
    c = _contact(session, services, "service-lead", "nora.manager@example.nhs.uk", service_id=services[MRH])
    with pytest.raises(InvalidInput, match="a network account may not also hold"):
        trust_accounts.invite_contact(session, office, c.id or 0, FixedClock(NOTIFIED))
    session.rollback()
    admin = account(db, "Ada Admin", ("administrator",))
    with pytest.raises(InvalidInput, match="a network account may not also hold"):
        accounts.grant(session, admin, FixedClock(NOTIFIED), "nora.manager@example.nhs.uk", "chief-executive",
                       "organisation", session.get(Service, services[MRH]).organisation_id)  # type: ignore[union-attr]  # fmt: skip
    session.rollback()
    lead = account(db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    with pytest.raises(InvalidInput, match="a Trust or commissioner account may not also hold"):
        accounts.grant(session, admin, FixedClock(NOTIFIED), str(lead.user_id), NM, "installation", None)
    session.rollback()
    assert accounts.live_roles(session, manager.user_id) == {NM}


def test_a_trust_role_is_never_held_across_a_network(db: Engine, session: Session, services: dict[str, int]) -> None:
    office = account(db, "Otto Office", ("network-office",))
    network_id = session.get(Service, services[MRH]).network_id  # type: ignore[union-attr]
    c = _contact(session, services, "service-lead", "wide.lead@example.nhs.uk", network_id=network_id)
    with pytest.raises(InvalidInput, match="service-lead is held at service or organisation level, not network"):
        trust_accounts.invite_contact(session, office, c.id or 0, FixedClock(NOTIFIED))
    session.rollback()
    commissioner = _contact(session, services, "lms-lead", "lms@example.nhs.uk", network_id=network_id)
    sent = trust_accounts.invite_contact(session, office, commissioner.id or 0, FixedClock(NOTIFIED))
    assert (sent.role, sent.scope) == ("lms-lead", "network")  # a commissioner may commission a network's


def test_a_response_is_never_judged_by_the_account_that_sent_it(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], services: dict[str, int]
) -> None:
    risk = _notified(session, raise_risk)
    # an account made directly with both sides' roles, as no use case now makes one: the machine still refuses
    both = account(db, "Bo Both", ("service-lead", NM), scope="service", scope_id=services[MRH])
    responses.submit_response(session, both, risk.id or 0, "Our response.", [], FixedClock(date(2026, 12, 14)))
    session.commit()
    with pytest.raises(GuardRefused, match="was sent by this account: someone else judges it"):
        engine.fire(session, "risk", risk.id, "response_adequate", principal=both, clock=FixedClock(date(2026, 12, 15)))
    session.rollback()
    row = session.exec(select(RiskResponse).where(RiskResponse.risk_id == risk.id)).one()
    assert row.judgement is None and session.get(Risk, risk.id).state == "response_received"  # type: ignore[union-attr]


# ---------------------------------------------------------------- what a Trust's people see


def test_complaints_are_the_networks_alone(db: Engine, session: Session, services: dict[str, int]) -> None:
    out = intake.receive_complaint(
        session, network="WMTN", category="conduct", from_name="Cal Complainant", from_email="cal@example.org",
        summary="The reviewer was rude to our nurses", service=services[MRH], about_person=False,
        received=NOTIFIED, principal=person("Office", "network-office"), clock=FixedClock(NOTIFIED),
    )  # fmt: skip
    session.commit()
    complaint_id = out.row.id or 0
    for who in (
        account(db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH]),
        account(db, "Cora Commissioner", ("responsible-commissioner",), scope="service", scope_id=services[MRH]),
    ):
        with pytest.raises(NotFound):
            work.get_visible(session, who, "complaint", complaint_id)
        assert work.list_items(session, who, "complaint")["rows"] == []
    staff = account(db, "Otto Office", ("network-office",))
    assert work.get_visible(session, staff, "complaint", complaint_id).id == complaint_id


def test_the_trust_sees_the_letters_to_it_and_not_the_networks_notes(
    db_url: str, db: Engine, session: Session, raise_risk: Callable[..., Risk], services: dict[str, int]
) -> None:
    risk = _notified(session, raise_risk)
    engine.fire(session, "risk", risk.id, "rescore", principal=person("nm", NM), clock=FixedClock(NOTIFIED),
                note="INTERNAL: the panel thinks the rota is a cover story", params={"impact": 3, "likelihood": 3})  # fmt: skip
    session.commit()
    internal = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "risk")).all()
    to_trust = [m for m in internal if work.to_portal([*m.to, *m.cc])]
    assert to_trust, "the formal notification goes to the Trust"
    network_only = OutboxMessage(
        idempotency_key=f"risk:{risk.id}:internal-test", kind="risk", item_id=risk.id or 0, template="monitoring_review_due",
        category="reminder", to=[{"name": "Nina", "email": "nina@example.nhs.uk", "role": NM, "role_name": "Network Manager"}],
        cc=[], subject="Internal reminder", status="queued", context="{}",
    )  # fmt: skip
    session.add(network_only)
    session.commit()
    lead = account(db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    page = item_view.page(session, lead, "risk", risk.id or 0, FixedClock(NOTIFIED))
    shown = {row["message_id"] for row in page["letters"]}
    assert network_only.id not in shown and {m.id for m in to_trust} <= shown
    with pytest.raises(NotFound):
        item_view.letter(session, lead, "risk", risk.id or 0, network_only.id or 0)
    notes = [h["note"] for h in page["history"]]
    assert all("INTERNAL" not in (n or "") for n in notes) and any(h["withheld"] for h in page["history"])
    staff = item_view.page(session, account(db, "Nina Manager", (NM,)), "risk", risk.id or 0, FixedClock(NOTIFIED))
    assert any("INTERNAL" in (h["note"] or "") for h in staff["history"])
    client, _ = signed_in(db_url, db, "Lou Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    with client:
        assert client.get(f"/portal/letters/{network_only.id}.eml").status_code == 404
        assert client.get(f"/portal/letters/{to_trust[0].id}.eml").status_code == 200


# ---------------------------------------------------------------- files and text


def test_forty_files_are_refused_before_any_is_read(
    db_url: str, db: Engine, session: Session, raise_risk: Callable[..., Risk], services: dict[str, int]
) -> None:
    from tests.support_reports import report_of_visit  # lazy: a whole visit, only this test needs it

    _, report = report_of_visit(session, services)
    session.commit()
    client, _ = signed_in(db_url, db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    with client:
        html = client.get(f"/portal/reports/{report.id}/accuracy").text
        files = [("files", (f"evidence-{i}.pdf", PDF_BYTES, "application/pdf")) for i in range(40)]
        r = client.post(f"/portal/reports/{report.id}/accuracy", data={"csrf_token": csrf_of(html), "text": "x"},
                        files=files)  # fmt: skip
        assert r.status_code in (400, 422) and r.status_code != 500
    assert session.exec(select(OutboxMessage).where(OutboxMessage.template == "x")).all() == []


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_archives_too_many_entries_and_macro_documents_are_refused() -> None:
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as z:
        for i in range(20_000):
            z.writestr(zipfile.ZipInfo(f"{i:x}"), b"")
    assert sniff(many.getvalue()) is None  # the end record's count, read before the directory is parsed
    plain = (
        '<Types><Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
    )
    assert sniff(_zip({"[Content_Types].xml": plain.encode(), "xl/workbook.xml": b"<w/>"})) is not None
    macro = (
        '<Types><Override PartName="/xl/workbook.xml" ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/>'
        '<!-- "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml" --></Types>'
    )
    with pytest.raises(InvalidInput):
        check_file("budget.xlsx", _zip({"[Content_Types].xml": macro.encode(), "xl/workbook.xml": b"<w/>"}))
    with pytest.raises(InvalidInput):  # the plain type declared, a VBA project inside
        check_file("budget.xlsx", _zip({"[Content_Types].xml": plain.encode(), "xl/vbaProject.bin": b"\xd0\xcf"}))
    with pytest.raises(InvalidInput):
        check_file("notes.odt", _zip({"mimetype": b"application/vnd.oasis.opendocument.text",
                                      "Basic/Standard/Module1.xml": b"<module/>"}))  # fmt: skip


@pytest.mark.parametrize("bad", ["On the day\x00 three consultants", "\x1b[31mred", "abc\u202edcba"])
def test_control_characters_in_a_statement_are_refused_and_nothing_is_stored(
    db: Engine, session: Session, services: dict[str, int], bad: str
) -> None:
    from states.services import portal_submissions  # lazy: as below
    from tests.support_reports import report_of_visit  # lazy: a whole visit

    _, report = report_of_visit(session, services)
    engine.fire(session, "report", report.id, "send_for_accuracy_check", principal=person("Office", "network-office"),
                clock=FixedClock(date.today()))  # fmt: skip
    session.commit()
    lead = account(db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    with pytest.raises(InvalidInput, match="control character"):
        portal_submissions.record_inaccuracy(db, report_id=report.id or 0, text=bad, principal=lead,
                                             clock=FixedClock(date.today()))  # fmt: skip


def test_a_browsers_file_name_loses_its_invisible_characters() -> None:
    assert selfassessment.safe_filename("return\u202excsl.exe") == "return xcsl.exe"
    assert selfassessment.safe_filename("C:\\Users\\x\\re\u200bturn.xlsx") == "re turn.xlsx"


def test_an_invitation_works_no_later_than_the_contact(db: Engine, session: Session, services: dict[str, int]) -> None:
    office = account(db, "Otto Office", ("network-office",))
    c = _contact(session, services, "service-lead", "leaving.lead@example.nhs.uk", service_id=services[MRH])
    sent = trust_accounts.invite_contact(session, office, c.id or 0, FixedClock(NOTIFIED))
    session.commit()
    leaving = NOTIFIED + timedelta(days=2)
    contacts.retire_contact(session, c.id or 0, effective=leaving, principal=office, clock=FixedClock(NOTIFIED))
    session.commit()
    token = session.get(AccessToken, sent.invitation_id)
    assert token is not None and token.expires_at.date() <= leaving
