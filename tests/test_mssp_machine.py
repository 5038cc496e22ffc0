"""The MSSP machine, table-driven, and the CQC command line."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import AuditEvent
from models.perinatal import CqcRating, MsspCase
from states import engine
from states.clock import FixedClock
from states.errors import InvalidTrigger
from states.machines.spec import CLOCK_TRIGGERS
from states.principal import Principal
from tests.factories import person
from tests.support_mssp import (
    RI,
    SPEC,
    TODAY,
    G,
    I,
    M,
    letters_to,
    record,
    trust,  # noqa: F401 (pytest fixtures)
)

# ---------------------------------------------------------------- the machine, table-driven


def _case(session: Session, trust: tuple[int, int]) -> MsspCase:
    case = record(session, trust, date(2026, 6, 1), I, I, I).entered
    assert case is not None
    return case  # type: ignore[no-any-return]


def _rating_id(
    session: Session, trust: tuple[int, int], safe: str, well_led: str, day: date = date(2026, 12, 1)
) -> int:
    row = CqcRating(
        organisation_id=trust[0],
        service_id=trust[1],
        assessed_on=day,
        overall=RI,
        safe=safe,
        well_led=well_led,
        recorded_by="o",
        recorded_role="operator",
    )
    session.add(row)
    session.commit()
    assert row.id is not None
    return row.id


def _referred(session: Session, trust: tuple[int, int]) -> MsspCase:
    case = record(session, trust, date(2026, 6, 1), G, G, G, hsib_concern=True).referred
    assert case is not None
    return case  # type: ignore[no-any-return]


DECIDED = {"decided_by": "MSSCG", "decided_on": "2026-12-11"}
# (source, trigger, role, setup, destination, letters)
MACHINE_TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (
        M.IN_PROGRAMME,
        "record_assessment",
        "network-office",
        {"rating": (RI, RI)},
        M.EXIT_PROPOSED,
        {"mssp_exit_proposed"},
    ),
    (M.IN_PROGRAMME, "record_assessment", "system", {"rating": (RI, I)}, M.IN_PROGRAMME, set()),
    (M.EXIT_PROPOSED, "record_assessment", "system", {"rating": (RI, I)}, M.EXIT_PROPOSED, set()),
    (
        M.IN_PROGRAMME,
        "withdraw",
        "network-manager",
        {"note": "entered in error: ratings mis-keyed"},
        M.WITHDRAWN,
        set(),
    ),
    (M.REFERRED, "withdraw", "regional-lead", {"note": "referred in error"}, M.WITHDRAWN, set()),
    (M.EXIT_PROPOSED, "withdraw", "network-manager", {"note": "duplicate case"}, M.WITHDRAWN, set()),
    (
        M.REFERRED,
        "decide_entry",
        "network-office",
        {"params": {"decision": "enter", **DECIDED}},
        M.IN_PROGRAMME,
        {"mssp_entry"},
    ),
    (
        M.REFERRED,
        "decide_entry",
        "operator",
        {"params": {"decision": "not_enter", **DECIDED}},
        M.NOT_ENTERED,
        {"mssp_not_entered"},
    ),
    (
        M.EXIT_PROPOSED,
        "decide_exit",
        "network-manager",
        {"params": {"decision": "exit", **DECIDED}},
        M.EXITED,
        {"mssp_exit"},
    ),
    (
        M.EXIT_PROPOSED,
        "decide_exit",
        "regional-lead",
        {"params": {"decision": "remain", **DECIDED}},
        M.IN_PROGRAMME,
        {"mssp_exit_declined"},
    ),
    (M.REFERRED, "enter", "system", {"rating": (I, I)}, M.IN_PROGRAMME, {"mssp_entry"}),
]


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"),
    MACHINE_TABLE,
    ids=[f"{t[0]}-{t[1]}-{t[4]}" for t in MACHINE_TABLE],
)
def test_allowed_transitions(
    session: Session,
    trust: tuple[int, int],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    case = _referred(session, trust) if source == M.REFERRED else _case(session, trust)
    if source == M.EXIT_PROPOSED:
        engine.fire(
            session,
            "mssp",
            case.id,
            "record_assessment",
            principal=person("t", "system"),
            clock=FixedClock(TODAY),
            params={"rating_id": _rating_id(session, trust, G, G, date(2026, 11, 1))},
        )
        session.commit()
    assert case.state == source
    params = dict(setup.get("params") or {})
    if "rating" in setup:
        params = {
            "rating_id": _rating_id(session, trust, *setup["rating"]),
            **({"criteria": ["overall_inadequate"]} if trigger == "enter" else {}),
        }
    before = set(letters_to(session, case.id))
    out = engine.fire(
        session,
        "mssp",
        case.id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(TODAY),
        note=setup.get("note"),
        params=params or None,
    )
    session.commit()
    assert (out.row.state, out.event.from_state, out.event.to_state) == (dest, source, dest)
    assert set(letters_to(session, case.id)) - before == letters


ALLOWED = {(M.NEW.value, "enter"), (M.NEW.value, "refer"), (M.REFERRED.value, "enter")}
ALLOWED |= {(str(src), trig) for src, trig, *_ in MACHINE_TABLE}
ALLOWED |= {(s.value, t) for s in (M.REFERRED, M.IN_PROGRAMME, M.EXIT_PROPOSED) for t in CLOCK_TRIGGERS}
REFUSED = [(s.value, t) for s in M for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    assert {(s.value, t) for s in M for t in SPEC.allowed_from(s.value)} == ALLOWED


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, trust: tuple[int, int], state: str, trigger: str) -> None:
    case = _case(session, trust)
    case.state = state
    session.add(case)
    session.commit()
    version, events = case.version, session.exec(select(func.count()).select_from(AuditEvent)).one()
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "mssp",
            case.id,
            trigger,
            principal=person("tester", "network-manager"),
            clock=FixedClock(TODAY),
            note="n",
        )
    session.rollback()
    fresh = session.get(MsspCase, case.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == events


def test_cli_cqc_record_says_what_happened(
    db_url: str,
    training: None,
    me: Principal,
    session: Session,
    trust: tuple[int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    def run(*args: str) -> tuple[int, Any]:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-12-11", *args])
        return exit_.value.code, capsys.readouterr()  # type: ignore[return-value]

    org = "Midland Royal Hospitals NHS Trust"
    base = ["cqc", "record", "--organisation", org]
    code, out = run(*base, "--date", "2025-06-01", "--overall", "good", "--safe", "good", "--well-led", "good")
    assert code == 0 and "no MSSP entry criterion met" in out.out
    code, out = run(
        "--json",
        *base,
        "--date",
        "2026-11-01",
        "--overall",
        "RI",
        "--safe",
        "RI",
        "--well-led",
        "good",
        "--warning-notice",
    )
    result = json.loads(out.out)
    assert code == 0 and result["criteria"] == ["warning_notice", "dropped_safe"] and result["mssp_entered"] == 1
    code, out = run(*base, "--date", "2026-12-01", "--overall", "good", "--safe", "good", "--well-led", "outstanding")
    # changed for DOMAIN.md (issue 12 item 15): the exit criterion proposes exit; the MSSCG decides
    assert code == 0 and "MSSP case 1: exit criterion met" in " ".join(out.out.split())
    assert "exit proposed to the MSSCG" in " ".join(out.out.split())
    code, out = run(*base, "--date", "2026-12-02", "--overall", "superb", "--safe", "good", "--well-led", "good")
    assert code == 2 and "error: Overall 'superb'" in out.err
    code, out = run("mssp", "decide", "1", "--decision", "exit", "--decided-by", "MSSCG co-chairs")
    assert code == 2 and "--decided-on" in out.err
    code, out = run(
        "mssp",
        "decide",
        "1",
        "--decision",
        "exit",
        "--decided-by",
        "MSSCG co-chairs",
        "--decided-on",
        "2026-12-10",
    )
    assert code == 2 and "before the question was put" in out.err
    code, out = run(
        "mssp",
        "decide",
        "1",
        "--decision",
        "exit",
        "--decided-by",
        "MSSCG co-chairs",
        "--decided-on",
        "2026-12-11",
    )
    assert code == 0 and "exit_proposed -> exited" in out.out
    code, out = run(
        "--json",
        "mssp",
        "refer",
        "--organisation",
        org,
        "--route",
        "hsib",
        "--note",
        "HSIB letter of 9 Dec",
    )
    assert code == 0 and json.loads(out.out)["state"] == "referred"
    code, out = run(
        "mssp",
        "decide",
        "2",
        "--decision",
        "not-enter",
        "--decided-by",
        "MSSCG",
        "--decided-on",
        "2026-12-11",
    )
    assert code == 0 and "referred -> not_entered" in out.out
