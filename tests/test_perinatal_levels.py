"""Configured escalation level names, and raising and escalating from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from cli.diagram import documented
from models import OutboxMessage
from models.perinatal import PerinatalConcern
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput
from states.machines.perinatal import PerinatalPolicy
from states.principal import Principal
from tests.factories import person
from tests.support_perinatal import LATER, LQSG, MRH, NM, SPEC, maternity, raise_concern  # noqa: F401 (pytest fixtures)


def _escalation_letter(session: Session) -> OutboxMessage:
    m = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.template == "perinatal_escalation", OutboxMessage.category == "letter")
        .order_by(OutboxMessage.id.desc())
    ).first()  # type: ignore[union-attr]
    assert m is not None
    return m


def test_configured_level_names_appear_in_letters_show_and_diagram(
    session: Session, raise_concern: Callable[..., PerinatalConcern], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERWATCH_PERINATAL_LEVELS", '{"lms_ics": "LMNS/ICB"}')
    monkeypatch.setenv("PEERWATCH_PERINATAL_FORUMS", '{"lms_ics": "ICB system quality group"}')
    row = raise_concern()
    raised = _escalation_letter(session)
    assert "LMNS/ICB to support implementation of the action plan" in " ".join(rendered(raised).body_text.split())
    engine.fire(
        session,
        "perinatal",
        row.id,
        "escalate",
        principal=person("nm", NM),
        clock=FixedClock(LATER),
        note="no improvement",
        params=LQSG,
    )
    session.commit()
    letter = _escalation_letter(session)
    assert rendered(letter).subject.endswith("escalated to LMNS/ICB level")
    assert "The ICB system quality group has decided to take the perinatal" in " ".join(
        rendered(letter).body_text.split()
    )
    assert "LMNS/ICB" in rendered(letter).body_html and "LMS/ICS" not in rendered(letter).body_text
    assert SPEC.next_step.get("lms_ics").startswith("LMNS/ICB (ICB system quality group)")
    assert SPEC.next_step.get("regional").endswith("de-escalate to LMNS/ICB")
    assert row.level_history[-1]["name"] == "LMNS/ICB"
    assert 'state "LMNS/ICB: ICB system quality group" as lms_ics' in documented("perinatal")
    monkeypatch.delenv("PEERWATCH_PERINATAL_LEVELS")
    assert SPEC.next_step.get("lms_ics").startswith("LMS/ICS ")  # read when shown, not frozen at import


def test_level_names_load_from_a_json_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "levels.json"
    path.write_text(json.dumps({"national": "National (MSSCG)", "regional": "Regional (NHSE region)"}))
    monkeypatch.setenv("PEERWATCH_PERINATAL_LEVELS", str(path))
    pol = PerinatalPolicy.from_env()
    assert dict(pol.levels) == {
        "provider": "Provider",
        "lms_ics": "LMS/ICS",
        "regional": "Regional (NHSE region)",
        "national": "National (MSSCG)",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"lms": "LMNS"}', "unknown level"),
        ('{"lms_ics": ', "not valid JSON"),
        ('{"lms_ics": ""}', "non-empty text"),
        ('["LMNS"]', "is neither a JSON object"),
        ("/no/such/file.json", "is neither a JSON object"),
    ],
)
def test_bad_level_configuration_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("PEERWATCH_PERINATAL_LEVELS", value)
    with pytest.raises(InvalidInput, match=message):
        PerinatalPolicy.from_env()


def test_cli_raise_and_escalate(
    db_url: str,
    training: None,
    me: Principal,
    session: Session,
    maternity: int,
    services: dict[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    def run(*args: str) -> Any:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-12-11", "--json", *args])
        out = capsys.readouterr()
        return exit_.value.code, out

    code, out = run("perinatal", "raise", "--service", str(maternity), "--title", "Staffing gaps")
    assert code == 0, out.err
    created = json.loads(out.out)
    assert created["state"] == "provider" and created["deadlines"][0]["due_on"] == "2026-12-31"
    code, out = run(
        "perinatal",
        "fire",
        str(created["id"]),
        "escalate",
        "--role",
        NM,
        "--note",
        "no plan",
        "--param",
        "decided_on=2026-12-11",
    )
    assert code == 0 and json.loads(out.out)["state"] == "lms_ics"
    code, out = run("perinatal", "raise", "--service", str(services[MRH]), "--title", "x")
    assert code == 2 and "is a Major Trauma Centre service" in out.err
