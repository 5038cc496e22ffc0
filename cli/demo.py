"""``peerwatch demo``: a fresh demo database, a visit, risks and a report, and the real
Prefect ``chase`` and ``dispatch`` flows run day by day over simulated weekdays.

The story itself is in ``cli.demo_story``; what is shown at the end in ``cli.demo_report``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cli.demo_report import escalations_since, last_letter_id
from cli.demo_story import story
from cli.output import console
from flows.server import local_server, quiet_env

__all__ = ["escalations_since", "last_letter_id", "run_demo"]

VAR = Path("var") / "demo"


def run_demo(keep_server: bool = False) -> None:
    if VAR.exists():
        shutil.rmtree(VAR)
    VAR.mkdir(parents=True)
    db_path, outbox = VAR / "peerwatch.db", VAR / "outbox"
    os.environ.update(
        {
            "PEERWATCH_DATABASE_URL": f"sqlite:///{db_path}",
            "PEERWATCH_MAIL": "folder",
            "PEERWATCH_OUTBOX_DIR": str(outbox),
            "PEERWATCH_SITE_DIR": str(VAR / "site"),
            "PEERWATCH_ANCHOR_DIR": str(VAR / "anchors"),  # the demo's own: never mixed with a real installation's
        }
    )
    home = Path("var") / "prefect"
    os.environ.update(quiet_env(home))
    console.print("[bold]peerwatch demo[/bold]: starting a local Prefect server (var/prefect) ...")
    with local_server(home, VAR / "prefect-server.log", keep=keep_server) as api:
        os.environ["PREFECT_API_URL"] = api
        story(db_path, outbox, api, keep_server)
