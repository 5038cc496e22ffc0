"""QNT surveillance through the command line (split from test_surveillance.py): assess, propose
and the two agreements, each by a named account. The story runs over simulated dates, so the
test database is a training database (``--as-of`` and ``--as`` on actions are refused in any
other); one person recording both agreements is refused by account."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent
from states.principal import Principal
from tests.support_accounts import account

NM, OFFICE = "network-manager", "network-office"
MRH = "Midland Royal Major Trauma Centre"


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("peerwatch")), "--as-of", "2026-12-14", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_assess_propose_agree(
    training: None, db: Engine, me: Principal, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    pat = account(db, "Pat Provider", (OFFICE,))
    cy = account(db, "Cy Commissioner", (OFFICE,))
    nia = account(db, "Nia Manager", (NM,))
    sid = str(services[MRH])
    assessed = _cli(
        env, tmp_path, "surveillance", "assess", "--service", sid, "--year", "2026", "--agreed", "20", "--met", "19"
    )
    out = json.loads(assessed.stdout or "null")
    assert out is not None and out["state"] == "decision_required", assessed.stderr
    item = str(out["id"])
    proc = _cli(
        env,
        tmp_path,
        "surveillance",
        "fire",
        item,
        "propose_options",
        "--param",
        "options=enhanced,3",
        "--param",
        "provider_action=weekly rota review",
        "--as",
        "Nia Manager",
    )
    assert json.loads(proc.stdout or "null")["state"] == "options_proposed", proc.stderr
    first = json.loads(
        _cli(env, tmp_path, "surveillance", "agree", item, "--party", "provider", "--as", "Pat Provider").stdout
    )
    assert (first["state"], first["waiting_for"], first["recorded_by"]) == (
        "options_proposed",
        ["commissioner"],
        "Pat Provider",
    )
    refused = _cli(env, tmp_path, "surveillance", "agree", item, "--party", "commissioner", "--as", "Pat Provider")
    banner, error = refused.stderr.splitlines()  # the training banner, then one error line
    assert banner.startswith("TRAINING DATABASE") and refused.returncode == 2
    assert error.startswith("error:") and "is_not_provider_signatory" in error
    second = json.loads(
        _cli(env, tmp_path, "surveillance", "agree", item, "--party", "commissioner", "--as", "Cy Commissioner").stdout
    )
    assert second["state"] == "agreed" and second["visit_id"] is not None and second["waiting_for"] == []
    bad = _cli(env, tmp_path, "surveillance", "agree", item, "--party", "regulator", "--as", "Cy Commissioner")
    assert bad.returncode == 2 and "use provider or commissioner" in bad.stderr
    session.expire_all()
    events = session.exec(select(AuditEvent).where(AuditEvent.kind == "surveillance").order_by(col(AuditEvent.id)))
    assert [(e.trigger, e.user_id) for e in events] == [
        ("assess", me.user_id),
        ("propose_options", nia.user_id),
        ("record_provider_agreement", pat.user_id),
        ("record_commissioner_agreement", cy.user_id),
        ("agree", cy.user_id),
    ]
