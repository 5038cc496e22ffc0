"""Self-assessment spreadsheets: the round trip, bad rows named, thresholds."""

from __future__ import annotations

from datetime import date
from io import BytesIO
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Deadline, DeadlineStatus, Network, RefusedAttempt, Report, Service
from models.selfassessment import SelfAssessment
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, MissingActor, PermissionDenied
from states.machines.standards import (
    SpreadsheetRejected,
    check_rows,
    derive_status,
    standards_of,
)
from states.principal import Grant, Principal
from states.services.selfassessment import import_spreadsheet
from states.services.selfassessment_import import read_workbook
from tests.factories import person
from tests.support_selfassessment import (
    ACC,
    GOOD,
    OFFICE,
    S,
    circulate,
    counts,
    fill,
    import_filled,
    items_of,
    letters_to,
    library,  # noqa: F401 (pytest fixtures)
    xlsx,
)

# ---------------------------------------------------------------- the spreadsheet import


def test_round_trip_export_fill_import_derives_statuses_and_starts_the_report(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    answers = {**GOOD, "1.2": ("partially met", 0.979, "", "ICNARC report Q2"), "1.3": (None, 59.9, "", "work plan")}
    got = import_filled(
        db, row, fill(xlsx(session, row), answers, percent_refs=("1.2",)), FixedClock(date(2026, 12, 18))
    )
    assert got.state == S.RECEIVED and got.received_on == date(2026, 12, 18)
    items = items_of(session, row)
    assert {r: (i.self_status, i.figure) for r, i in items.items()} == {
        "1.1": ("Met", None),
        "1.2": ("Partially Met", 97.9),
        "1.3": ("Unmet", 59.9),
        "1.4": ("Unmet", 90.0),
        "2.1": ("Partially Met", None),
        "2.2": ("Met", None),
    }
    assert items["1.1"].evidence_location == "Operational Policy" and items["2.1"].comments == "audit planned"
    assert all(i.validated_status is None for i in items.values())
    # the written report is due 8 weeks after receipt (000 s5.1), started through the engine
    (report,) = session.exec(select(Report).where(Report.service_id == services[ACC])).all()
    assert (report.state, report.basis_date, report.visit_id) == ("drafting", date(2026, 12, 18), None)
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "report", report.id)] == [
        ("report_due", date(2027, 2, 12))
    ]  # type: ignore[arg-type]
    assert (
        session.exec(select(Deadline.status).where(Deadline.kind == "selfassessment", Deadline.name == "return")).one()
        == DeadlineStatus.CLOSED
    )
    # the export now carries the service's answers
    ws = load_workbook(BytesIO(xlsx(session, got)))["Self-Assessment"]
    assert [ws.cell(row=3, column=c).value for c in (1, 6, 7)] == ["1.2", "Partially Met", 97.9]


def test_three_bad_rows_are_all_named_and_nothing_is_imported(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    bad = {
        **GOOD,
        "1.1": ("Partially Met", None, "", "policy"),  # row 2: 1.1 has no Partially Met band
        "1.3": ("Met", "about 80", "", "work plan"),  # row 4: figure not a number
        "2.2": ("Met", None, "", None),
    }  # row 7: no evidence location
    before, version = counts(session), row.version
    with pytest.raises(SpreadsheetRejected) as caught:
        import_filled(db, row, fill(xlsx(session, row), bad), clock)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("row 2, Self-Assessment:") and "no 'Partially Met' band" in problems[0]
    assert problems[1].startswith("row 4, Figure Achieved:") and "'about 80' is not a number" in problems[1]
    assert problems[2].startswith("row 7, Evidence location:") and "missing" in problems[2]
    assert isinstance(caught.value, InvalidInput)
    session.expire_all()
    # nothing imported: no items, no report, no deadline; one audited event and one letter, the refusal
    audit, outbox, deadlines, items, reports = before
    assert counts(session) == (audit + 1, outbox + 1, deadlines, items, reports)
    fresh = session.get(SelfAssessment, row.id)
    assert (fresh.state, fresh.version, fresh.received_on) == (S.CIRCULATED, version + 1, None)  # type: ignore[union-attr]
    (attempt,) = session.exec(select(RefusedAttempt).where(RefusedAttempt.kind == "selfassessment")).all()
    assert attempt.item_id == row.id and attempt.data["problems"] == problems
    assert (attempt.user_id, attempt.actor, attempt.role) == (person("Jo Office", OFFICE).user_id, "Jo Office", OFFICE)
    # the request letter's promise kept: the spreadsheet goes back with every problem listed
    request, refused = letters_to(session, row)
    assert "we write back to you\nlisting every problem by row and column" in rendered(request).body_text
    assert refused.template == "selfassessment_refused"
    assert {p["email"] for p in refused.to} == {p["email"] for p in request.to}
    text = rendered(refused)
    assert text.subject.endswith("spreadsheet returned, 3 problems to correct")
    for n, problem in enumerate(problems, start=1):
        assert f"  {n}. {problem}" in text.body_text
        assert f"<li>{problem.replace(chr(39), '&#39;')}</li>" in text.body_html
    assert "return it to the network office by Fri 22 Jan 2027" in " ".join(text.body_text.split())
    (event,) = session.exec(
        select(AuditEvent).where(AuditEvent.kind == "selfassessment", AuditEvent.trigger == "refuse_return")
    ).all()
    assert (event.actor, event.from_state, event.to_state) == ("Jo Office", "circulated", "circulated")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (("Met", 101, "", "x"), "row 3, Figure Achieved: 101 is outside 0-100"),
        (("Met", -1, "", "x"), "row 3, Figure Achieved: -1 is outside 0-100"),
        (("Sort of", 99, "", "x"), "row 3, Self-Assessment: 'Sort of' is not Met, Partially Met or Unmet"),
        (("Met", 95, "", "x"), "row 3, Self-Assessment: 'Met' contradicts the figure 95 (Partially Met"),
        (("Met", None, "", "x"), "row 3, Figure Achieved: missing"),
        (("Met", 99, "", "  "), "row 3, Evidence location: missing"),
    ],
)
def test_each_kind_of_bad_row_is_named(
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    answer: tuple[Any, ...],
    problem: str,
) -> None:
    row = circulate(session, services, clock)
    rows = read_workbook(fill(xlsx(session, row), {**GOOD, "1.2": answer}))
    with pytest.raises(SpreadsheetRejected) as caught:
        check_rows(rows, standards_of(session, row.standard_set_id))
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(problem), caught.value.problems


def test_unknown_missing_and_repeated_refs_and_wrong_headers(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    row = circulate(session, services, clock)
    stds = standards_of(session, row.standard_set_id)
    rows = read_workbook(fill(xlsx(session, row), GOOD))
    rows[1]["ref"] = "9.9"  # row 3 was 1.2
    rows[5]["ref"] = "1.1"  # row 7 repeats 1.1; 2.2 is then missing
    with pytest.raises(SpreadsheetRejected) as caught:
        check_rows(rows, stds)
    assert caught.value.problems == [
        "row 3, Ref No.: unknown standard '9.9' (known: 1.1, 1.2, 1.3, 1.4, 2.1, 2.2)",
        "row 7, Ref No.: standard 1.1 appears again (first on row 2)",
        "Ref No.: standard 1.2 has no row",
        "Ref No.: standard 2.2 has no row",
    ]
    wb = load_workbook(BytesIO(xlsx(session, row)))
    wb["Self-Assessment"].cell(row=1, column=7).value = "Score"
    buf = BytesIO()
    wb.save(buf)
    with pytest.raises(SpreadsheetRejected, match="row 1, column 7 header: 'Score' should be 'Figure Achieved'"):
        read_workbook(buf.getvalue())
    with pytest.raises(SpreadsheetRejected, match=r"not an .xlsx workbook"):
        read_workbook(b"Ref No.,Descriptor\n")


def test_another_services_spreadsheet_is_refused(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    first = circulate(session, services, clock)
    second = circulate(session, services, clock, year=2027)
    with pytest.raises(SpreadsheetRejected, match=f"this spreadsheet is for SA-{first.id}, not SA-{second.id}"):
        import_filled(db, second, fill(xlsx(session, first), GOOD), clock)


@pytest.mark.parametrize(
    ("figure", "status"),
    [(100, "Met"), (98, "Met"), (97.9, "Partially Met"), (90, "Partially Met"), (89.9, "Unmet"), (0, "Unmet")],
)
def test_thresholds_of_standard_1_2(session: Session, library: dict[str, int], figure: float, status: str) -> None:
    stds = {s.ref: s for s in standards_of(session, library["Adult Critical Care"])}
    assert derive_status(stds["1.2"], figure) == status
    assert derive_status(stds["1.1"], figure) is None  # 1.1 has no thresholds: the service's status stands
    rows = [
        {"row": n, "ref": ref, "status": GOOD[ref][0], "figure": GOOD[ref][1], "evidence": "x"}
        for n, ref in enumerate(GOOD, start=2)
    ]
    rows[1].update(status=None, figure=figure)
    items = {i["ref"]: i for i in check_rows(rows, list(stds.values()))}
    assert items["1.2"]["self_status"] == status


def test_a_standard_with_thresholds_but_no_partly_band_is_met_or_unmet(
    session: Session, library: dict[str, int]
) -> None:
    std = next(s for s in standards_of(session, library["Adult Critical Care"]) if s.ref == "1.4")
    assert not std.has_partly_band
    assert [derive_status(std, f) for f in (95, 94.9, 10)] == ["Met", "Unmet", "Unmet"]


# ---------------------------------------------------------------- who may import (issue 14)


def test_only_staff_in_the_services_scope_import_and_a_refusal_names_the_account(
    db: Engine, session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    """A Network Manager of another network, an auditor, and nobody at all are refused before
    the file is read (no letter, nothing changed; the refusal recorded with the account that
    tried); a Network Manager of the service's network imports it, the event naming the account."""
    row = circulate(session, services, clock)
    good = fill(xlsx(session, row), GOOD)
    net = session.get(Service, services[ACC]).network_id  # type: ignore[union-attr]
    other = session.exec(select(Network.id).where(Network.id != net)).first()
    before = counts(session)
    outsider = Principal(
        person("Cy Mersey", "network-manager").user_id, "Cy Mersey", (Grant("network-manager", "network", other),)
    )
    with pytest.raises(
        PermissionDenied, match="Cy Mersey holds network-manager but not in the scope of import a return"
    ):
        import_spreadsheet(db, row.id, good, filename="return.xlsx", principal=outsider, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="may not import a return"):  # a bad file too: refused before it is read
        import_spreadsheet(
            db, row.id, b"junk", filename="x.xlsx", principal=person("Al Auditor", "auditor"), clock=clock
        )  # type: ignore[arg-type]
    with pytest.raises(MissingActor, match="nobody is identified"):
        import_spreadsheet(db, row.id, good, filename="return.xlsx", principal="Jo Office", clock=clock)  # type: ignore[arg-type]
    session.expire_all()
    assert counts(session) == before and session.get(SelfAssessment, row.id).state == S.CIRCULATED  # type: ignore[union-attr]
    refused = session.exec(select(RefusedAttempt).where(RefusedAttempt.kind == "selfassessment")).all()
    assert [(r.trigger, r.user_id, r.actor) for r in refused] == [
        ("receive", outsider.user_id, "Cy Mersey"),
        ("receive", person("Al Auditor", "auditor").user_id, "Al Auditor"),
    ]
    manager = Principal(
        person("Wyn Midlands", "network-manager").user_id, "Wyn Midlands", (Grant("network-manager", "network", net),)
    )
    got = import_spreadsheet(db, row.id, good, filename="return.xlsx", principal=manager, clock=clock)  # type: ignore[arg-type]
    assert got.state == S.RECEIVED
    event = engine.history(session, "selfassessment", row.id)[-1]
    assert (event.trigger, event.user_id, event.actor, event.role) == (
        "receive",
        manager.user_id,
        "Wyn Midlands",
        "network-manager",
    )
