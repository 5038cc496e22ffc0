"""The standards library and the self-assessment command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models.selfassessment import SelfAssessment, Standard, StandardSet
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, NotFound
from states.machines.standards import (
    current_set,
    standards_of,
)
from states.principal import Principal
from states.services.selfassessment import start
from states.services.standards import load_standard_sets, read_library
from tests.factories import person
from tests.support_selfassessment import (  # noqa: F401 (pytest fixtures)
    ACC,
    DAY,
    GOOD,
    LIBRARY,
    OFFICE,
    circulate,
    fill,
    library,
    run_cli,
    ten_standard_set,
)

# ---------------------------------------------------------------- the standards library


def test_a_superseded_set_is_not_used_for_new_circulations(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    old = library["Adult Critical Care"]
    pending = SelfAssessment(service_id=services[ACC], standard_set_id=old, programme_year=2026, state="new")
    pending.created_at = pending.updated_at = clock.now()
    session.add(pending)
    session.commit()
    (loaded,) = load_standard_sets(
        session,
        [ten_standard_set("Adult Critical Care", "2026.1", "2026-10-01")],
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(DAY),
    )
    session.commit()
    assert loaded["supersedes"] == old
    assert session.get(StandardSet, old).superseded_by_id == loaded["id"]  # type: ignore[union-attr]
    assert current_set(session, "Adult Critical Care", date(2026, 9, 30)).id == old  # type: ignore[union-attr]
    assert current_set(session, "Adult Critical Care", DAY).id == loaded["id"]  # type: ignore[union-attr]
    # a declaration made out against the superseded set cannot be circulated
    with pytest.raises(GuardRefused, match="is_standard_set_current"):
        engine.fire(session, "selfassessment", pending.id, "circulate", principal=person("Jo", OFFICE), clock=clock)  # type: ignore[arg-type]
    session.rollback()
    # a new circulation uses the new set
    row = circulate(session, services, clock, year=2027)
    assert row.standard_set_id == loaded["id"]
    assert len(standards_of(session, row.standard_set_id)) == 10
    # another kind is untouched
    assert current_set(session, "Major Trauma Centre", DAY).id == library["Major Trauma Centre"]  # type: ignore[union-attr]


def test_a_set_effective_in_future_waits_for_its_date(
    session: Session, services: dict[str, int], library: dict[str, int]
) -> None:
    (loaded,) = load_standard_sets(
        session,
        [ten_standard_set("Adult Critical Care", "2027.1", "2027-04-01")],
        principal=person("Jo Office", OFFICE),
        clock=FixedClock(DAY),
    )
    session.commit()
    assert current_set(session, "Adult Critical Care", DAY).id == library["Adult Critical Care"]  # type: ignore[union-attr]
    row = circulate(session, services, FixedClock(date(2027, 4, 1)), year=2027)
    assert row.standard_set_id == loaded["id"]


def test_library_refuses_old_duplicate_and_malformed_sets(
    session: Session, services: dict[str, int], library: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput, match="already loaded"):
        load_standard_sets(session, read_library(LIBRARY), principal=person("Jo Office", OFFICE), clock=FixedClock(DAY))
    session.rollback()
    with pytest.raises(InvalidInput, match="is not newer than the current set"):
        load_standard_sets(
            session,
            [ten_standard_set("Adult Critical Care", "2024.1", "2024-04-01")],
            principal=person("Jo Office", OFFICE),
            clock=FixedClock(DAY),
        )
    session.rollback()
    bad = ten_standard_set("Burns", "1", "2026-04-01")
    bad["standards"][0].update(met_threshold=90, partly_threshold=95)
    bad["standards"][1].update(ref="1.1")
    bad["standards"][2].update(met_threshold=120, criteria_partly=None)
    with pytest.raises(InvalidInput) as caught:
        load_standard_sets(session, [bad], principal=person("Jo Office", OFFICE), clock=FixedClock(DAY))
    msg = str(caught.value)
    assert "partly_threshold 95 must be below met_threshold 90" in msg
    assert "standard 1.1: ref appears twice" in msg
    assert "met_threshold 120 is outside 0-100" in msg
    session.rollback()
    assert session.exec(select(func.count()).select_from(Standard)).one() == 10  # only the example library
    assert read_library(LIBRARY)[0]["standards"][0]["criteria_partly"] is None


def test_no_set_for_the_kind_is_named(
    session: Session, services: dict[str, int], library: dict[str, int], clock: FixedClock
) -> None:
    with pytest.raises(NotFound, match="no standard set in force for 'Burns'"):
        start(session, services["Valley Burns Service"], 2026, principal=person("Jo", OFFICE), clock=clock)


# ---------------------------------------------------------------- the command line


def test_cli_import_prints_every_problem_and_exits_2(
    db: Engine,
    training: None,
    me: Principal,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    clock: FixedClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., int],
) -> None:
    assert (
        run_cli(
            "--as-of",
            "2026-12-11",
            "selfassessment",
            "circulate",
            "--service",
            str(services[ACC]),
            "--year",
            "2026",
        )
        == 0
    )
    assert "selfassessment 1 created, state circulated" in capsys.readouterr().out
    blank = tmp_path / "blank.xlsx"
    assert run_cli("--as-of", "2026-12-11", "selfassessment", "export", "1", "--out", str(blank)) == 0
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(
        fill(
            blank.read_bytes(),
            {
                **GOOD,
                "1.1": ("Partially Met", None, "", "p"),
                "1.3": ("Met", "n/a", "", "w"),
                "2.2": ("Met", None, "", None),
            },
        )
    )
    capsys.readouterr()
    assert run_cli("--as-of", "2026-12-11", "selfassessment", "import", "1", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad.xlsx refused, nothing imported: 3 problem(s)" in err
    for where in ("row 2, Self-Assessment", "row 4, Figure Achieved", "row 7, Evidence location"):
        assert where in err
    good = tmp_path / "good.xlsx"
    good.write_bytes(fill(blank.read_bytes(), GOOD))
    assert run_cli("--as-of", "2026-12-14", "selfassessment", "import", "1", str(good)) == 0
    assert "report 1 started; report_due due 2027-02-08" in capsys.readouterr().out
    day = ("--as-of", "2026-12-15")
    assert run_cli(*day, "selfassessment", "validate", "1", "--ref", "1.2", "--status", "Met") == 0
    assert run_cli(*day, "selfassessment", "validate", "1", "--complete") == 2
    assert "are_all_items_validated" in capsys.readouterr().err
    assert run_cli(*day, "selfassessment", "validate", "1", "--accept-all") == 0
    assert run_cli("--json", "selfassessment", "show", "1") == 0
    assert '"achievement": 66.7' in capsys.readouterr().out


def test_cli_loads_a_json_library_that_supersedes_and_lists_what_is_in_force(
    training: None,
    me: Principal,
    session: Session,
    services: dict[str, int],
    library: dict[str, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., int],
) -> None:
    import json

    doc = ten_standard_set("Adult Critical Care", "2026.2", "2026-09-01")
    (tmp_path / "acc.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert run_cli("selfassessment", "standards", "load", str(tmp_path / "acc.json")) == 0
    assert f"supersedes set {library['Adult Critical Care']}" in capsys.readouterr().out
    assert run_cli("selfassessment", "standards", "load", str(tmp_path / "acc.json")) == 2
    assert "already loaded" in capsys.readouterr().err
    assert run_cli("--json", "--as-of", "2026-12-11", "selfassessment", "standards", "list") == 0
    listed = {(x["service_kind"], x["version"]): x for x in json.loads(capsys.readouterr().out)}
    assert listed[("Adult Critical Care", "2026.2")]["in_force"] is True
    assert listed[("Adult Critical Care", "2025.1")]["in_force"] is False
    assert listed[("Major Trauma Centre", "2025.1")]["in_force"] is True
