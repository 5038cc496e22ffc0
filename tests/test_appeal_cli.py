"""Appeals from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cli.context import TRAINING_BANNER
from models.tables import (
    Appeal,
    RefusedAttempt,
)
from tests.support_accounts import account
from tests.support_appeals import (
    MRH_TRUST,
    STATEMENT,
    P,
    World,
    count,
    emails,
    letters_to,
    world,  # noqa: F401 (pytest fixtures)
)

# --------------------------------------------------------------------------- the command line

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))


def test_cli_appeal_submit_refused_records_the_attempt(
    db_url: str, db: Engine, training: None, session: Session, world: World, tmp_path: Path
) -> None:
    """The network office records an appeal from the Medical Director (on a training database,
    as the account of Ms Nora Office, so the story's dates hold): refused, and the refused
    attempt names her account."""
    nora = account(db, "Ms Nora Office", ("network-office",), email="nora.office@wmtn.nhs.example")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PEERWATCH_AS_OF", "PEERWATCH_MAIL")}
    env["PEERWATCH_DATABASE_URL"] = db_url
    proc = subprocess.run(
        [
            PEERWATCH,
            "--as-of",
            (P + timedelta(days=3)).isoformat(),
            "appeal",
            "submit",
            "--report",
            str(world.report_id),
            "--appellant",
            str(world.md.id),
            "--statement",
            STATEMENT,
            "--grounds",
            f"risk:{world.sc}",
            "--as",
            "nora.office@wmtn.nhs.example",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line != TRAINING_BANNER]
    assert len(lines) == 1 and lines[0].startswith("error: appeal refused: "), lines
    assert f"Chief Executive of {MRH_TRUST}" in lines[0]
    with Session(db) as s:
        assert count(s, Appeal) == 0
        (attempt,) = s.exec(select(RefusedAttempt)).all()
        assert (attempt.kind, attempt.trigger, attempt.actor, attempt.user_id, attempt.data["grounds"]) == (
            "appeal",
            "submit",
            "Ms Nora Office",
            nora.user_id,
            [{"risk_id": world.sc}],
        )
        (letter,) = letters_to(s, "report", world.report_id, "appeal_refusal")
        assert emails(letter.to) == [world.md.email]
