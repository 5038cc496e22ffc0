"""The schedules fire: a real ``prefect server start`` (its own SQLite, its own scheduler
service), prefect.yaml's deployments served as `peerwatch serve` serves them, and nothing
calling a flow by hand.

The other flow tests call the flows directly under ``prefect_test_harness``, which never runs
Prefect's scheduler: with SQLAlchemy 2.1 that service failed every minute and no scheduled run
was ever created (issue 12), and the suite did not notice. Here chase-daily's cron is replaced by
an interval schedule anchored a few seconds out (everything else in prefect.yaml as it is); the
server's scheduler must create the runs by itself and the served process must run one to
COMPLETED, chasing a real overdue risk. The server's log is kept and must hold no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session

from tests.databases import drop, fresh_url
from tests.factories import person

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2027-01-21"
DEADLINE_S = 180.0  # a loaded machine; it takes 30-60 s


@dataclass
class Served:
    api: str
    server_log: Path
    serve_log: Path
    deployments: dict[str, dict[str, Any]]
    completed: dict[str, Any]
    runs: list[dict[str, Any]]
    risk_id: int
    db_url: str
    seconds: float


def _post(api: str, path: str, body: dict[str, Any]) -> Any:
    import httpx

    r = httpx.post(f"{api}{path}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


def _tracebacks(log: Path) -> list[str]:
    """Each traceback in a log, with the lines after it (the exception)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return ["\n".join(lines[i : i + 40]) for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]


def _seed(url: str) -> int:
    """The demo reference data and one serious concern notified on 18 December 2026, so a chase
    as of 21 January 2027 finds it unanswered and chases it. A training database: outside one, a
    run as of a date after today is refused (flows/run_clock.py)."""
    from models import Risk, init_db
    from states import engine
    from states.clock import FixedClock
    from tests.factories import reference_data as seed_reference
    from tests.support_accounts import make_training

    make_training(init_db(url))
    with Session(init_db(url), expire_on_commit=False) as s:
        services = seed_reference(s)
        s.commit()
        row = Risk(
            service_id=next(iter(services.values())),
            level="SC",
            title="SC found at visit",
            identified_on=date(2026, 12, 11),
            visit_date=date(2026, 12, 11),
            state="new",
        )
        risk = engine.create(
            s,
            "risk",
            row,
            "raise",
            principal=person("panel lead", "network-manager"),
            clock=FixedClock(date(2026, 12, 11)),
        ).row
        s.commit()
        engine.fire(
            s,
            "risk",
            risk.id,
            "send_formal_notification",
            principal=person("nm", "network-manager"),
            clock=FixedClock(date(2026, 12, 18)),
        )
        s.commit()
        return int(risk.id)  # type: ignore[arg-type]


def _prefect_yaml(tmp: Path, first: datetime) -> Path:
    """prefect.yaml as it is, except chase-daily: every 30 s from ``first``, as of AS_OF."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for d in spec["deployments"]:
        if d["name"] == "chase-daily":
            d["schedules"] = [{"interval": 30, "anchor_date": first.isoformat(), "timezone": "Europe/London"}]
            d["parameters"] = {"as_of": AS_OF}
    out = tmp / "prefect.yaml"
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from flows.server import local_server, quiet_env

    tmp = tmp_path_factory.mktemp("prefect-server")
    url = fresh_url(tmp)
    risk_id = _seed(url)
    server_log, serve_log = tmp / "prefect-server.log", tmp / "serve.log"
    started = time.monotonic()
    with local_server(tmp / "server-home", server_log) as api:
        env = {
            **os.environ,
            **quiet_env(tmp / "serve-home"),
            "PREFECT_API_URL": api,
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
            "PEERWATCH_DATABASE_URL": url,
            "PEERWATCH_OUTBOX_DIR": str(tmp / "outbox"),
            "PEERWATCH_SITE_DIR": str(tmp / "site"),
            "PEERWATCH_ANCHOR_DIR": str(tmp / "anchors"),
            "PEERWATCH_MAIL": "folder",
        }
        env.pop("PEERWATCH_AS_OF", None)
        spec = _prefect_yaml(tmp, datetime.now(UTC) + timedelta(seconds=20))
        with serve_log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flows.deployments", str(spec)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            completed, runs, deployments = _wait_for_a_scheduled_chase(api, proc, server_log, serve_log)
            yield Served(
                api, server_log, serve_log, deployments, completed, runs, risk_id, url, time.monotonic() - started
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # the served process and the flow runs it started
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    drop(url)


def _wait_for_a_scheduled_chase(
    api: str, proc: subprocess.Popen[bytes], server_log: Path, serve_log: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    deadline = time.monotonic() + DEADLINE_S
    deployments: dict[str, dict[str, Any]] = {}
    while True:
        found = _tracebacks(server_log)
        if found:  # fail at once (the scheduler failing is logged within seconds), not at the deadline
            pytest.fail(f"the Prefect server logged a traceback:\n{found[0]}")
        if proc.poll() is not None:
            pytest.fail(f"the served process stopped (exit {proc.returncode}):\n{_tail(serve_log)}")
        deployments = {d["name"]: d for d in _post(api, "/deployments/filter", {})}
        runs: list[dict[str, Any]] = []
        if "chase-daily" in deployments:
            runs = _post(
                api,
                "/flow_runs/filter",
                {
                    "flow_runs": {"deployment_id": {"any_": [deployments["chase-daily"]["id"]]}},
                    "sort": "EXPECTED_START_TIME_ASC",
                },
            )
            bad = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
            if bad:
                pytest.fail(f"a scheduled chase run {bad[0]['state_type']}: {bad[0]['state']}\n{_tail(serve_log)}")
            done = [r for r in runs if r["state_type"] == "COMPLETED"]
            if done:
                return done[0], runs, deployments
        if time.monotonic() > deadline:
            pytest.fail(
                f"no scheduled chase run completed within {DEADLINE_S:.0f} s; deployments {sorted(deployments)}, "
                f"chase runs {[(r['name'], r['state_type']) for r in runs]}\nserver log:\n{_tail(server_log)}\n"
                f"serve log:\n{_tail(serve_log)}"
            )
        time.sleep(1)


def test_the_scheduler_creates_the_runs_and_a_scheduled_chase_completes_by_itself(served: Served) -> None:
    from models import Risk, init_db

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert set(served.deployments) == {d["name"] for d in spec}
    run = served.completed
    assert run["auto_scheduled"] is True  # created by the server's scheduler, not by a call
    assert run["name"] == f"chase as of {AS_OF}"  # named by what it did (flows/naming.py)
    assert run["parameters"] == {"as_of": AS_OF}
    with Session(init_db(served.db_url)) as s:
        assert s.get(Risk, served.risk_id).state == "chased"  # type: ignore[union-attr]
    # every scheduled deployment, on its real cron, has its upcoming runs created too
    for d in spec:
        if d.get("schedules"):
            upcoming = _post(
                served.api,
                "/flow_runs/filter",
                {"flow_runs": {"deployment_id": {"any_": [served.deployments[d["name"]]["id"]]}}, "limit": 5},
            )
            assert upcoming and all(r["auto_scheduled"] for r in upcoming), d["name"]
    print(f"\nfirst scheduled chase completed {served.seconds:.1f} s after the server was started")


def test_the_prefect_server_logged_no_traceback(served: Served) -> None:
    """The server's log over the whole session (its scheduler had a loop at least every 5 s
    while the chase ran) has no traceback: a failing service shows here first."""
    time.sleep(6)  # one more pass of the recent-deployments scheduler after the run
    assert served.server_log.stat().st_size > 0
    assert _tracebacks(served.server_log) == []
