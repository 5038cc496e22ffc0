"""The appeal decision: refused decisions, upheld, partly upheld, not upheld, and what follows."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pypdf
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Risk
from models.tables import (
    Appeal,
    Attachment,
    Report,
)
from notifications.attachments import render_attachment
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, InvalidTrigger
from states.machines.spec import CLOCK_TRIGGERS
from tests.factories import person
from tests.support_appeals import (
    DECIDER,
    DECISION,
    FEEDBACK,
    NM,
    OFFICE,
    OUTSIDER,
    RL,
    SPEC,
    P,
    World,
    considering,
    emails,
    letters_to,
    row_counts,
    world,  # noqa: F401 (pytest fixtures)
)

# --------------------------------------------------------------------------- the decision

DECISION_DAY = date(2027, 3, 15)


def _decide(
    session: Session, appeal_id: int, outcome: str, *, note: str | None = DECISION, **params: Any
) -> engine.Outcome:
    """Four eyes: the Network Manager proposes, the decider confirms (same outcome and changes)."""
    proposed = engine.fire(
        session,
        "appeal",
        appeal_id,
        "decide",
        principal=person("Second Pair", NM),
        clock=FixedClock(DECISION_DAY),
        note=note,
        params={"outcome": outcome, **params},
    )
    assert proposed.proposed and proposed.row.state != "decided"
    return engine.fire(
        session,
        "appeal",
        appeal_id,
        "decide",
        principal=person(DECIDER, RL),
        clock=FixedClock(DECISION_DAY),
        note=note,
        params={"outcome": outcome, **params},
    )


def _snapshot(session: Session, w: World, appeal_id: int) -> tuple[Any, ...]:
    session.expire_all()
    appeal, report = session.get(Appeal, appeal_id), session.get(Report, w.report_id)
    risks = tuple((r.state, r.level, r.version) for r in (session.get(Risk, i) for i in (w.ir, w.sc, w.gc)) if r)
    assert appeal is not None and report is not None
    return (
        (appeal.state, appeal.version, appeal.outcome, appeal.decision),
        (report.state, report.issue, report.version),
        risks,
        row_counts(session),
    )


@pytest.mark.parametrize(
    ("params", "note", "match"),
    [
        ({"outcome": "granted"}, DECISION, "outcome= one of upheld, partly_upheld, not_upheld"),
        ({"outcome": ""}, DECISION, "outcome= one of"),
        ({"outcome": "not_upheld", "withdraw": "SC"}, DECISION, "not upheld changes nothing"),
        ({"outcome": "not_upheld", "regrade": {"IR": "SC"}}, DECISION, "not upheld changes nothing"),
        ({"outcome": "upheld", "withdraw": "OTHER"}, DECISION, "is not a conclusion of report"),
        ({"outcome": "partly_upheld", "regrade": {"IR": "GC"}}, DECISION, "regrade needs level=IR or SC"),
        ({"outcome": "upheld", "withdraw": "SC"}, "  ", "needs a reason"),
    ],
    ids=[
        "unknown-outcome",
        "no-outcome",
        "not-upheld-withdraw",
        "not-upheld-regrade",
        "other-risk",
        "regrade-to-gc",
        "no-note",
    ],
)
def test_bad_decisions_are_refused_and_change_nothing(
    db: Engine, session: Session, world: World, raise_risk: Any, params: dict[str, Any], note: str, match: str
) -> None:
    row = considering(db, session, world)
    ids = {"SC": world.sc, "IR": world.ir, "OTHER": raise_risk("SC").id}
    params = {
        k: ([ids[v]] if k == "withdraw" else {ids[a]: b for a, b in v.items()} if k == "regrade" else v)
        for k, v in params.items()
    }
    before = _snapshot(session, world, row.id)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=match):
        _decide(session, row.id, note=note, **params)  # type: ignore[arg-type]
    session.rollback()
    assert _snapshot(session, world, row.id) == before  # type: ignore[arg-type]


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_upheld_withdraws_the_sc_and_reissues_the_report(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    out = _decide(session, row.id, "upheld", withdraw=[world.sc])  # type: ignore[arg-type]
    session.commit()
    assert (out.row.state, out.row.outcome, out.row.decision, out.row.decided_on) == (
        "decided",
        "upheld",
        DECISION,
        DECISION_DAY,
    )  # type: ignore[attr-defined]
    sc, ir, gc = session.get(Risk, world.sc), session.get(Risk, world.ir), session.get(Risk, world.gc)
    assert sc is not None and (sc.state, sc.closed_reason) == ("withdrawn", f"appeal {row.id} upheld: {DECISION}")
    assert (
        ir is not None and gc is not None and (ir.state, ir.level, gc.state) == ("identified", "IR", "work_programme")
    )
    withdraw = engine.history(session, "risk", world.sc)[-1]
    assert (withdraw.trigger, withdraw.from_state, withdraw.to_state) == ("withdraw", "identified", "withdrawn")
    assert f"appeal {row.id}" in (withdraw.note or "") and withdraw.data["params"]["appeal_id"] == row.id
    assert letters_to(session, "risk", world.sc, "withdrawal")

    report = session.get(Report, world.report_id)
    assert report is not None and (report.state, report.issue, report.reissued_on, report.published_on) == (
        "published",
        2,
        DECISION_DAY,
        P,
    )
    events = [
        (e.trigger, e.from_state, e.to_state, e.actor, e.data.get("params", {}).get("appeal_id"))
        for e in engine.history(session, "report", world.report_id)
    ]
    assert events[-2:] == [
        ("reopen_for_amendment", "published", "amending", DECIDER, row.id),
        ("reissue", "amending", "published", DECIDER, row.id),
    ]
    (reissued,) = letters_to(session, "report", world.report_id, "report_reissued")
    assert [p["role"] for p in reissued.to] == ["service-lead"] and "issue 2" in rendered(reissued).subject
    (pdf,) = session.exec(select(Attachment).where(Attachment.idempotency_key == reissued.idempotency_key)).all()
    assert pdf.content_type == "application/pdf" and render_attachment(pdf).startswith(b"%PDF")
    text = _pdf_text(render_attachment(pdf))
    assert "issue 2" in text and "Re-issued Mon 15 Mar 2027 after an appeal" in text and "(withdrawn)" in text
    # everything happened at the one instant of the decision
    assert {e.at for e in (withdraw, *engine.history(session, "report", world.report_id)[-2:])} == {
        FixedClock(DECISION_DAY).now()
    }


def test_the_decision_and_its_effects_are_one_transaction(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    before = _snapshot(session, world, row.id)  # type: ignore[arg-type]
    _decide(session, row.id, "upheld", withdraw=[world.sc])  # type: ignore[arg-type]
    sc, report = session.get(Risk, world.sc), session.get(Report, world.report_id)
    assert (
        sc is not None and report is not None and (sc.state, report.issue) == ("withdrawn", 2)
    )  # in flight, not committed
    with Session(db) as other:  # nobody else sees any of it yet
        assert other.get(Risk, world.sc).state == "identified"  # type: ignore[union-attr]
        assert other.get(Report, world.report_id).issue == 1  # type: ignore[union-attr]
        assert other.get(Appeal, row.id).state == "initial_consideration"  # type: ignore[union-attr]
    session.rollback()
    assert _snapshot(session, world, row.id) == before  # type: ignore[arg-type]


def test_partly_upheld_regrades_the_ir_to_an_sc(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    _decide(session, row.id, "partly_upheld", regrade={world.ir: "SC"})  # type: ignore[arg-type]
    session.commit()
    ir, sc = session.get(Risk, world.ir), session.get(Risk, world.sc)
    assert ir is not None and sc is not None
    assert (ir.level, ir.state, sc.level, sc.state) == ("SC", "identified", "SC", "identified")
    regrade = engine.history(session, "risk", world.ir)[-1]
    assert (regrade.trigger, regrade.actor, regrade.data["params"]) == (
        "regrade",
        DECIDER,
        {"appeal_id": row.id, "level": "SC"},
    )
    assert f"appeal {row.id} partly_upheld" in (regrade.note or "")
    report = session.get(Report, world.report_id)
    assert report is not None and (report.state, report.issue) == ("published", 2)


def test_not_upheld_changes_nothing_in_the_report(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    _decide(session, row.id, "not_upheld")  # type: ignore[arg-type]
    session.commit()
    report = session.get(Report, world.report_id)
    assert report is not None and (report.state, report.issue, report.reissued_on) == ("published", 1, None)
    assert [session.get(Risk, i).state for i in (world.ir, world.sc)] == ["identified", "identified"]  # type: ignore[union-attr]
    assert letters_to(session, "report", world.report_id, "report_reissued") == []


def test_the_decision_is_final_and_communicated_to_the_chief_executive(
    db: Engine, session: Session, world: World
) -> None:
    row = considering(db, session, world)
    _decide(session, row.id, "not_upheld")  # type: ignore[arg-type]
    session.commit()
    assert SPEC.allowed_from("decided") == ["communicate", *CLOCK_TRIGGERS]
    back = [
        t
        for t in SPEC.all_transitions
        if "decided" in ([t["source"]] if isinstance(t["source"], str) else t["source"])
        and t["dest"] not in (None, "communicated")
    ]
    assert back == []
    assert engine.pending_deadlines(session, "appeal", row.id) == []  # type: ignore[arg-type]
    for trigger in ("begin_consideration", "add_subgroup_member", "convene_subgroup", "decide", "submit"):
        with pytest.raises(InvalidTrigger, match="'decided'"):
            engine.fire(
                session,
                "appeal",
                row.id,
                trigger,
                principal=person(DECIDER, RL),
                clock=FixedClock(DECISION_DAY),
                note="again",  # type: ignore[arg-type]
                params={"outcome": "upheld", "name": OUTSIDER[0], "email": OUTSIDER[1]},
            )
        session.rollback()
    out = engine.fire(
        session,
        "appeal",
        row.id,
        "communicate",
        principal=person("Ms Nora Office", OFFICE),
        clock=FixedClock(DECISION_DAY),
    )  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == "communicated" and SPEC.allowed_from("communicated") == []
    (letter,) = letters_to(session, "appeal", row.id, "appeal_decision")  # type: ignore[arg-type]
    assert emails(letter.to) == [world.ceo.email]
    assert (
        "NOT UPHELD" in rendered(letter).body_text
        and DECISION in rendered(letter).body_text
        and "final" in rendered(letter).body_text
    )


def test_risk_history_shows_the_withdrawal_by_the_decider(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    _decide(session, row.id, "upheld", withdraw=[world.sc])  # type: ignore[arg-type]
    session.commit()
    assert [
        (e.trigger, e.actor, e.role, e.from_state, e.to_state) for e in engine.history(session, "risk", world.sc)
    ] == [
        ("raise", FEEDBACK, NM, "new", "identified"),
        ("withdraw", DECIDER, RL, "identified", "withdrawn"),
    ]
