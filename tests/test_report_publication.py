"""Distributing and publishing the report, and the document itself."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlmodel import Session, select

from models import Risk
from models.tables import Attachment, Report
from notifications.attachments import render_attachment
from notifications.dispatch import dispatch
from notifications.documents import render_report_html, render_report_pdf
from notifications.transports import MemoryTransport
from states import engine
from states.clock import FixedClock
from states.engine.letters import resolve
from states.errors import InvalidInput, InvalidTrigger, PermissionDenied
from states.machines.report import document
from states.policy import Policy
from states.scope import recipient_scope
from tests.factories import person
from tests.support_reports import (
    DISTRIBUTION,
    IR_TITLE,
    MRH,
    NM,
    OFFICE,
    POSITIVE,
    RL,
    STANDARDS,
    documented,
    drafting,
    fire,
    in_check,
    letters_to,
    pdf_text,
)

# --------------------------------------------------------------------------- distribution and publication


def _approved(session: Session, services: dict[str, int]) -> Report:
    report = in_check(session, services)
    fire(session, report.id, "approve", date(2027, 1, 8), role=NM)  # type: ignore[arg-type]
    return report


def test_distribute_sends_the_pdf_to_the_service_lead_and_the_sop_list(
    session: Session, services: dict[str, int]
) -> None:
    report = _approved(session, services)
    out = fire(session, report.id, "distribute", date(2027, 1, 11))  # type: ignore[arg-type]
    assert (out.row.state, out.row.distributed_on) == ("distributed", date(2027, 1, 11))  # type: ignore[attr-defined]
    (msg,) = [m for m in letters_to(session, report.id) if m.template == "report_distribution"]  # type: ignore[arg-type]
    scope = recipient_scope(session, report)
    (lead,) = resolve(session, "service-lead", scope)
    assert [(p["role"], p["email"]) for p in msg.to] == [("service-lead", lead.email)]
    assert sorted(p["role"] for p in msg.cc) == sorted(DISTRIBUTION)
    assert {p["email"] for p in msg.cc} == {c.email for r in DISTRIBUTION for c in resolve(session, r, scope)}
    assert msg.status == "queued"
    assert not [m for m in letters_to(session, report.id) if m.category == "incident"]  # type: ignore[arg-type]
    (pdf,) = session.exec(select(Attachment).where(Attachment.idempotency_key == msg.idempotency_key)).all()
    assert (pdf.filename, pdf.content_type) == (f"peer-review-report-{report.id}.pdf", "application/pdf")
    assert render_attachment(pdf).startswith(
        b"%PDF"
    )  # rendered as the dispatcher will, from what the transition stored
    text = pdf_text(render_attachment(pdf))
    assert "DRAFT" not in text and "Approved Fri 08 Jan 2027." in text

    transport = MemoryTransport()
    summary = dispatch(session, transport, FixedClock(date(2027, 1, 11)), Policy())
    assert summary.failed == 0
    (email,) = [m for m in transport.sent if m["X-Peerwatch-Template"] == "report_distribution"]
    assert lead.email in str(email["To"])
    assert all(c.email in str(email["Cc"]) for r in DISTRIBUTION for c in resolve(session, r, scope))
    (part,) = list(email.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("application/pdf", f"peer-review-report-{report.id}.pdf")
    assert part.get_content() == pdf.data
    session.refresh(msg)
    assert msg.status == "sent"


def test_publish_sets_the_publication_date(session: Session, services: dict[str, int]) -> None:
    report = _approved(session, services)
    fire(session, report.id, "distribute", date(2027, 1, 11))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        engine.fire(
            session, "report", report.id, "publish", principal=person("o", OFFICE), clock=FixedClock(date(2027, 1, 12))
        )  # type: ignore[arg-type]
    session.rollback()
    out = fire(session, report.id, "publish", date(2027, 1, 13), role=RL)  # type: ignore[arg-type]
    assert (out.row.state, out.row.published_on) == ("published", date(2027, 1, 13))  # type: ignore[attr-defined]
    assert engine.pending_deadlines(session, "report", report.id) == []  # type: ignore[arg-type]
    with pytest.raises(InvalidTrigger, match="allowed: reopen_for_amendment"):
        engine.fire(
            session,
            "report",
            report.id,
            "add_positive",
            principal=person("o", OFFICE),
            clock=FixedClock(date(2027, 1, 14)),  # type: ignore[arg-type]
            params={"text": "late"},
        )


def test_report_pdf_carries_the_findings(session: Session, services: dict[str, int]) -> None:
    _report, doc = documented(session, services)
    (risk,) = session.exec(select(Risk)).all()
    data = render_report_pdf(doc)
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    lines = text.splitlines()
    assert MRH in text and "Midland Royal Hospitals NHS Trust" in text
    assert "Peer review visit on Thu 12 Nov 2026 (in person)." in text
    for ref, descriptor, status in STANDARDS:
        assert any(line.startswith(ref) and descriptor in line and line.rstrip().endswith(status) for line in lines), (
            ref,
            text,
        )
    assert "Met 1, Partially Met 1, Unmet 1; total achievement 50.0%." in text
    assert f"- {POSITIVE}" in text
    assert re.search(rf"IR-{risk.id} Immediate risk {re.escape(IR_TITLE)} T-1\.2 16\b", text), text
    assert "DRAFT" not in text
    assert "DRAFT for factual accuracy check" in pdf_text(render_report_pdf(doc, draft=True))
    assert render_report_pdf(doc) == data  # same data, same bytes


def test_report_html_carries_the_same_facts_escaped(session: Session, services: dict[str, int]) -> None:
    _, doc = documented(session, services)
    html = render_report_html(doc)
    assert MRH in html and "Midland Royal Hospitals NHS Trust" in html
    for ref, descriptor, status in STANDARDS:
        assert f"<td>{ref}</td><td>{descriptor}</td><td>{status}</td>" in html
    assert "total achievement 50.0%" in html
    assert "<li>Excellent rehabilitation &amp; discharge planning</li>" in html
    assert "No &lt;b&gt;oxygen&lt;/b&gt; &amp; suction" in html and "<b>oxygen" not in html
    assert "<td>T-1.2</td><td>16</td>" in html
    assert "DRAFT" not in html and "DRAFT for factual accuracy check" in render_report_html(doc, draft=True)


def test_achievement_leaves_out_not_applicable_and_a_standard_is_replaced(
    session: Session, services: dict[str, int]
) -> None:
    report = drafting(session, services)
    assert document(session, report)["achievement"] is None
    for ref, status in [("1.1", "Met"), ("1.2", "Unmet"), ("1.3", "Not applicable"), ("1.2", "Met")]:
        fire(session, report.id, "add_standard", date(2026, 11, 20), ref=ref, status=status)  # type: ignore[arg-type]
    doc = document(session, report)
    assert [(c["ref"], c["status"]) for c in doc["compliance"]] == [
        ("1.1", "Met"),
        ("1.3", "Not applicable"),
        ("1.2", "Met"),
    ]
    assert doc["counts"] == {"Met": 2, "Partially Met": 0, "Unmet": 0, "Not applicable": 1}
    assert doc["achievement"] == 100.0
    with pytest.raises(InvalidInput, match="status= one of"):
        fire(session, report.id, "add_standard", date(2026, 11, 20), ref="1.4", status="Mostly Met")  # type: ignore[arg-type]
    session.rollback()
    assert "Based on the self-assessment received on Thu 12 Nov 2026." in pdf_text(render_report_pdf(doc))


def test_report_contacts_come_from_the_demo_data(session: Session, services: dict[str, int]) -> None:
    """Guard for the distribution test: every role on the SOP's list is held by someone for this service."""
    report = drafting(session, services)
    scope = recipient_scope(session, report)
    held = {r: [c.email for c in resolve(session, r, scope)] for r in DISTRIBUTION}
    assert all(len(v) == 1 for v in held.values()), held
