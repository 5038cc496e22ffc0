"""Returns and replies received late: recorded at receipt and shown on the dashboard."""

from __future__ import annotations

import json
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from flows.site import write_site
from models import Network, Report
from models.selfassessment import SelfAssessment
from states import engine
from states.clock import FixedClock
from states.machines.standards import standards_of
from states.services.selfassessment import start
from states.services.standards import load_standard_sets, read_library
from tests.factories import person
from tests.support_dashboard import ACC, D0, MERSEY, MRH, OFFICE, ROOT, fire

# ---------------------------------------------------------------- received late (issue 12 item 12)


def test_late_returns_and_replies_are_recorded_at_receipt_and_shown_on_the_dashboard(
    db: Engine, session: Session, services: dict[str, int], tmp_path: Path, prefect_harness: None
) -> None:
    """A factual-accuracy reply due Tue 29 Dec 2026 (10 working days from Fri 11 Dec, skipping
    25 and 28 December) received Mon 4 Jan 2027: 6 calendar days, 3 working days late (1 January
    does not count). A self-assessment return due Fri 22 Jan 2027 (6 weeks) received Mon 25 Jan:
    3 calendar days, 1 working day. An on-time reply is recorded as on time and not listed.
    The numbers are those stored at receipt: `report show`, the dashboard page (html5lib) and
    the `late-receipts` artifact all show them, and a later as-of date does not change them."""
    from flows.artifacts import publish_late
    from states.machines.lateness import for_item, received_late
    from states.services.items import item_json

    s = session
    late_report = engine.create(
        s,
        "report",
        Report(service_id=services[MERSEY], basis_date=D0, state="new"),
        "start_drafting",
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(D0),
    ).row.id
    fire(s, "report", late_report, "send_for_accuracy_check", D0, role=OFFICE)
    on_time = engine.create(
        s,
        "report",
        Report(service_id=services[MRH], basis_date=D0, state="new"),
        "start_drafting",
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(D0),
    ).row.id
    fire(s, "report", on_time, "send_for_accuracy_check", D0, role=OFFICE)
    assert {d.name: d.due_on for d in engine.pending_deadlines(s, "report", late_report)}["accuracy_reply"] == date(
        2026, 12, 29
    )
    fire(s, "report", on_time, "approve", date(2026, 12, 29))  # no inaccuracies: the reply on its due date
    fire(
        s,
        "report",
        late_report,
        "record_inaccuracy",
        date(2027, 1, 4),
        role=OFFICE,
        params={"text": "two consultants, not one"},
    )

    load_standard_sets(
        s,
        read_library(ROOT / "docs" / "standards-example.yaml"),
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(D0),
    )
    sa: SelfAssessment = start(s, services[ACC], 2026, principal=person("Jo Office", OFFICE), clock=FixedClock(D0)).row
    assert {d.name: d.due_on for d in engine.pending_deadlines(s, "selfassessment", sa.id)}["return"] == date(
        2027, 1, 22
    )  # type: ignore[arg-type]
    rows = [
        {
            "row": n + 2,
            "ref": std.ref,
            "status": None if std.has_thresholds else "Met",
            "figure": std.met_threshold if std.has_thresholds else None,
            "comments": "",
            "evidence": "work plan",
        }
        for n, std in enumerate(standards_of(s, sa.standard_set_id))
    ]
    fire(
        s,
        "selfassessment",
        sa.id,
        "receive",
        date(2027, 1, 25),
        role=OFFICE,
        params={"filename": "return.xlsx", "rows": rows},
    )  # type: ignore[arg-type]
    s.commit()

    assert [
        (x["what"], x["due_on"], x["received_on"], x["days_late"], x["working_days_late"])
        for x in for_item(s, "report", late_report)
    ] == [("factual accuracy reply", "2026-12-29", "2027-01-04", 6, 3)]
    assert [(x["late"], x["days_late"]) for x in for_item(s, "report", on_time)] == [(False, 0)]
    shown = item_json(s, "selfassessment", s.get(SelfAssessment, sa.id))
    assert (shown["late"], shown["days_late"], shown["working_days_late"]) == (True, 3, 1)

    late = received_late(s)
    assert [(x["kind"], x["id"], x["working_days_late"], x["network"]) for x in late] == [
        ("selfassessment", sa.id, 1, "WMACC"),
        ("report", late_report, 3, "CMMTN"),
    ]  # newest first

    # The dashboard, written months later: the same figures.
    later = date(2027, 6, 1)
    networks = [(n.code, n.name) for n in s.exec(select(Network).order_by(Network.code))]
    write_site(s, later, tmp_path / "site", networks)
    for code, expect in (
        (
            "CMMTN",
            [
                [
                    "Mon 04 Jan 2027",
                    "Tue 29 Dec 2026",
                    "3",
                    "6",
                    "factual accuracy reply",
                    f"report {late_report}",
                    MERSEY,
                ]
            ],
        ),
        (
            "WMACC",
            [
                [
                    "Mon 25 Jan 2027",
                    "Fri 22 Jan 2027",
                    "1",
                    "3",
                    "self-assessment return 2026-27",
                    f"selfassessment {sa.id}",
                    ACC,
                ]
            ],
        ),
        ("WMTN", []),
    ):
        page = _LateRows()
        page.feed((tmp_path / "site" / code / "index.html").read_text(encoding="utf-8"))
        assert page.heading == "Received late"
        got = page.rows
        assert got == expect, code

    # The artifact, through a real Prefect API.
    from prefect import flow

    @flow(name="late-receipts-test")
    def publish() -> str:
        return publish_late(s, later)

    state = publish(return_state=True)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    (artifact,) = [a for a in found if a.key == "late-receipts"]
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [(r["item"], r["working days late"], r["calendar days late"]) for r in table] == [
        (f"selfassessment {sa.id}", 1, 3),
        (f"report {late_report}", 3, 6),
    ]
    assert artifact.description


class _LateRows(HTMLParser):
    """The page's "Received late" heading and the cells of its rows (tr class="late")."""

    def __init__(self) -> None:
        super().__init__()
        self.heading, self.rows = "", []  # type: str, list[list[str]]
        self._in_heading = self._in_row = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "h2" and a.get("id") == "late":
            self._in_heading = True
        elif tag == "tr" and a.get("class") == "late":
            self._in_row = True
            self.rows.append([])
        elif tag == "td" and self._in_row:
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        elif tag == "tr":
            self._in_row = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.heading += data
        elif self._in_cell:
            self.rows[-1][-1] += data.strip()
