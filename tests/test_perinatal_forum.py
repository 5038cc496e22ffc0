"""The forum decides, the office records: escalation decisions of the receiving forum."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from models import OutboxMessage
from models.perinatal import PerinatalConcern
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput
from states.principal import Principal
from tests.factories import person
from tests.support_perinatal import LATER, RQC, S, maternity, put_in, raise_concern, row_counts  # noqa: F401 (pytest fixtures)

# ---------------------------------------------------------------- the forum decides, the office records (DOMAIN.md, issue 12 item 15)


def test_escalation_is_the_receiving_forums_decision_recorded_as_such(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    counts = row_counts(session)
    with pytest.raises(InvalidInput, match="the local quality surveillance group decides this, not the network office"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            note="no improvement",
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="decided_on 2026-12-22 is after today"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            note="no improvement",
            params={"decided_on": "2026-12-22"},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="before the concern was raised"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            note="no improvement",
            params={"decided_on": "2026-12-01"},
        )
    session.rollback()
    assert row_counts(session) == counts and session.get(PerinatalConcern, row.id).state == S.PROVIDER  # type: ignore[union-attr]
    out = engine.fire(
        session,
        "perinatal",
        row.id,
        "escalate",
        principal=person("office", "network-office"),
        clock=FixedClock(LATER),
        note="no improvement",
        params={"decided_on": "2026-12-17"},
    )
    session.commit()
    assert out.row.state == S.LMS_ICS
    assert out.row.forum_decisions == [
        {
            "level": "lms_ics",
            "forum": "local quality surveillance group",
            "decision": "escalate to LMS/ICS level",
            "decided_on": "2026-12-17",
            "agreed_with": None,
            "recorded_by": "office",
            "recorded_role": "network-office",
            "recorded_on": "2026-12-21",
            "note": "no improvement",
        }
    ]
    assert out.event.data["params"] == {"decided_on": "2026-12-17"}
    # the regional quality committee decides, with the regional chief nurse, who is named
    with pytest.raises(
        InvalidInput, match="the regional quality committee decides with the regional chief nurse: name them"
    ):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "escalate",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            note="worse",
            params={"decided_on": "2026-12-18"},
        )
    session.rollback()
    engine.fire(
        session,
        "perinatal",
        row.id,
        "escalate",
        principal=person("office", "network-office"),
        clock=FixedClock(LATER),
        note="worse",
        params=RQC,
    )
    session.commit()
    letter = session.exec(
        select(OutboxMessage).where(OutboxMessage.template == "perinatal_escalation").order_by(OutboxMessage.id.desc())
    ).first()  # type: ignore[union-attr]
    assert letter is not None
    body = " ".join(rendered(letter).body_text.split())
    assert "The regional quality committee has decided to take the perinatal clinical quality concern" in body
    assert (
        "Forum: regional quality committee" in body and "Agreed with: Ms Rae Chief-Nurse, regional chief nurse" in body
    )
    assert "Decided on: 2026-12-18" in body and "Recorded by: office on 2026-12-21" in body
    html = rendered(letter).body_html
    assert "Ms Rae Chief-Nurse" in html
    # a regional referral is the committee's decision too
    with pytest.raises(InvalidInput, match="regional quality committee decides this"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "refer_to_jsog",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            note="x",
        )
    session.rollback()
    ref = engine.fire(
        session,
        "perinatal",
        row.id,
        "refer_to_jsog",
        principal=person("office", "network-office"),
        clock=FixedClock(LATER),
        note="system-wide",
        params=RQC,
    )
    session.commit()
    assert ref.row.referrals[-1]["by"] == "regional quality committee" and ref.row.referrals[-1]["on"] == "2026-12-18"
    assert [d["decision"] for d in ref.row.forum_decisions] == [
        "escalate to LMS/ICS level",
        "escalate to Regional level",
        "refer to the Joint Strategic Oversight Group (JSOG)",
    ]


def test_a_forum_decision_that_moves_nothing_is_recorded(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = put_in(session, raise_concern(), S.LMS_ICS)
    with pytest.raises(InvalidInput, match="forum 'provider'"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "record_forum_decision",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            params={"forum": "provider", "decision": "x", "decided_on": "2026-12-18"},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="give what the forum decided"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "record_forum_decision",
            principal=person("office", "network-office"),
            clock=FixedClock(LATER),
            params={"forum": "regional", "decided_on": "2026-12-18"},
        )
    session.rollback()
    out = engine.fire(
        session,
        "perinatal",
        row.id,
        "record_forum_decision",
        principal=person("office", "network-office"),
        clock=FixedClock(LATER),
        params={"forum": "regional", "decision": "not to escalate: LMS support suffices", **RQC},
    )
    session.commit()
    assert out.row.state == S.LMS_ICS
    assert out.row.forum_decisions[-1]["forum"] == "regional quality committee"
    assert out.row.forum_decisions[-1]["decision"] == "not to escalate: LMS support suffices"
    assert out.event.trigger == "record_forum_decision" and out.event.actor == "office"


def test_cli_escalate_records_the_forum_decision(
    db_url: str, training: None, me: Principal, session: Session, maternity: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    def run(*args: str) -> Any:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-12-21", *args])
        return exit_.value.code, capsys.readouterr()

    code, out = run(
        "--json",
        "perinatal",
        "raise",
        "--service",
        str(maternity),
        "--title",
        "Staffing gaps",
        "--raised",
        "2026-12-11",
    )
    cid = str(json.loads(out.out)["id"])
    code, out = run("perinatal", "escalate", cid, "--decided-on", "2026-12-17", "--note", "no plan")
    assert code == 0 and "provider -> lms_ics" in out.out, out.err
    code, out = run("perinatal", "escalate", cid, "--decided-on", "2026-12-18", "--note", "worse")
    assert code == 2 and "regional chief nurse" in out.err
    code, out = run(
        "perinatal",
        "escalate",
        cid,
        "--decided-on",
        "2026-12-18",
        "--agreed-with",
        "Ms Rae, regional chief nurse",
        "--note",
        "worse",
    )
    assert code == 0 and "lms_ics -> regional" in out.out
    code, out = run(
        "perinatal",
        "forum-decision",
        cid,
        "--forum",
        "national",
        "--decision",
        "not to take it to national level",
        "--decided-on",
        "2026-12-18",
    )
    assert code == 0, out.err
    code, out = run("--json", "perinatal", "decisions", cid)
    rows = json.loads(out.out)
    assert [r["forum"] for r in rows] == [
        "local quality surveillance group",
        "regional quality committee",
        "Maternity Safety Surveillance and Concerns Group (MSSCG)",
    ]
