"""The workload simulation (issue 7 item 4): a small run through the CLI and the same run in
process, checked against what its own database holds.

The window, July to December 2027, is year 2 of the biennial programme and a visiting year of
the annual one (DOMAIN.md "Programme cycles": the biennial formal peer review meetings are in
year 1 only), so the annual network must hold visits and the biennial one none.
"""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from flows.simulation import Settings, simulate, visit_phase_keys
from models import AuditEvent, Network, OutboxMessage, Report, Service, Visit, init_db
from models.db import dispose_engine
from states import engine
from states.programmes import phases_for, programme_for
from states.views.workload import MEASURES, quarters
from tests.probes import cli_without_prefect

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))
START, END = date(2027, 7, 1), date(2027, 12, 31)
ARGS = ["--from", START.isoformat(), "--to", END.isoformat(), "--networks", "2", "--services", "6", "--seed", "7"]


def _cli(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    env["PEERWATCH_DATABASE_URL"] = f"sqlite:///{tmp}/users-own.db"
    return subprocess.run([PEERWATCH, *args], env=env, capture_output=True, text=True, timeout=180, cwd=tmp)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The small run through the real console script, with --json."""
    tmp = tmp_path_factory.mktemp("simulate-cli")
    proc = _cli("simulate", *ARGS, "--out", str(tmp / "out"), "--json", tmp=tmp)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp / "users-own.db").exists(), "the simulation must not touch the configured database"
    return json.loads(proc.stdout), tmp / "out"


@pytest.fixture(scope="module")
def db_session(cli_run: tuple[dict[str, Any], Path]) -> Any:
    url = f"sqlite:///{cli_run[1]}/simulation.db"
    with Session(init_db(url)) as s:
        yield s
    dispose_engine(url)


def test_json_output_has_every_network_quarter_and_measure(cli_run: tuple[dict[str, Any], Path]) -> None:
    result, out = cli_run
    assert result["measures"] == list(MEASURES)
    assert result["quarters"] == quarters(START, END) == ["2027-28 Q2", "2027-28 Q3"]
    assert [(n["code"], n["cycle"]) for n in result["networks"]] == [("SYN-A1", "annual"), ("SYN-B1", "biennial")]
    for n in result["networks"]:
        assert set(n["quarters"]) == set(result["quarters"])
        assert all(
            set(q) == set(MEASURES) and all(isinstance(v, int) for v in q.values()) for q in n["quarters"].values()
        )
        assert n["totals"] == {m: sum(n["quarters"][q][m] for q in result["quarters"]) for m in MEASURES}
    assert set(result["by_cycle"]) == {"annual", "biennial"}
    assert result["by_cycle"]["annual"]["networks"] == 1
    assert result["skipped"] == [], "every simulated step must be one the engine accepts"
    assert {Path(p) for p in result["files"].values()} == {
        out / "workload.csv",
        out / "workload.json",
        out / "workload.png",
    }


def test_counts_are_what_the_audit_log_and_the_outbox_hold(
    cli_run: tuple[dict[str, Any], Path], db_session: Session
) -> None:
    result, _ = cli_run
    s = db_session
    totals = {n["code"]: n["totals"] for n in result["networks"]}
    code_of = dict(s.execute(select(Network.id, Network.code)).all())
    network_of = {svc: code_of[net] for svc, net in s.execute(select(Service.id, Service.network_id)).all()}
    held = Counter(
        network_of[v.service_id]
        for v in s.execute(select(Visit)).scalars()
        if v.state in ("held", "feedback_given", "closed")
    )
    published = Counter(network_of[r.service_id] for r in s.execute(select(Report)).scalars() if r.published_on)
    assert {c: t["visits"] for c, t in totals.items()} == {c: held[c] for c in totals}
    assert {c: t["reports"] for c, t in totals.items()} == {c: published[c] for c in totals}
    escalated = s.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.kind == "risk", AuditEvent.to_state == "escalated", AuditEvent.from_state != "escalated")
    )
    assert sum(t["escalations"] for t in totals.values()) == escalated
    letters = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.category == "letter"))
    assert sum(t["letters"] for t in totals.values()) == letters > 0
    keys = (
        s.execute(select(OutboxMessage.idempotency_key).where(OutboxMessage.category.in_(("reminder", "chase"))))
        .scalars()
        .all()
    )  # type: ignore[attr-defined]
    assert sum(t["chases"] for t in totals.values()) == len({k.rsplit(":", 1)[0] for k in keys}) > 0
    statuses = set(s.execute(select(OutboxMessage.status)).scalars().all())
    assert statuses == {"sent"}, "every letter was dispatched, and every role a letter needs has a contact"
    assert result["audit_events"] == s.scalar(select(func.count()).select_from(AuditEvent))
    checked, broken, problem = engine.verify_chain(s)
    assert (checked, broken, problem) == (result["audit_events"], None, None), "every change went through the engine"


def test_the_annual_network_visits_in_a_year_the_biennial_programme_does_not(
    cli_run: tuple[dict[str, Any], Path],
) -> None:
    result, _ = cli_run
    visiting = {}
    for n in result["networks"]:
        net = Network(code=n["code"], name=n["name"], cycle=n["cycle"])
        keys = visit_phase_keys(net, Settings(START, END).rates.visit_phase_pattern)
        visiting[n["cycle"]] = any(p.definition.key in keys for p in phases_for(programme_for(n["cycle"]), 2027))
    assert visiting == {"annual": True, "biennial": False}
    visits = {n["cycle"]: n["totals"]["visits"] for n in result["networks"]}
    assert visits == {"annual": 6, "biennial": 0}  # each of the 6 annual services is visited (visit_share 1.0)


def test_the_same_seed_gives_the_same_figures(cli_run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    result, _ = cli_run
    again = simulate(Settings(START, END, networks=2, services=6, seed=7, out=tmp_path / "again"))
    assert again["networks"] == result["networks"]
    assert again["audit_events"] == result["audit_events"]
    dispose_engine(f"sqlite:///{tmp_path}/again/simulation.db")


def test_chart_is_a_png_and_the_csv_matches_the_json(cli_run: tuple[dict[str, Any], Path]) -> None:
    result, out = cli_run
    data = (out / "workload.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 400 and height > 400
    with (out / "workload.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result["networks"]) * len(result["quarters"])
    by = {(n["code"], q): n["quarters"][q] for n in result["networks"] for q in result["quarters"]}
    assert all({m: int(r[m]) for m in MEASURES} == by[(r["network"], r["quarter"])] for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--networks", "1"], "at least 2"),
        (["--from", "2027-05-01", "--to", "2027-04-01"], "before --from"),
        (["--from", "2027-13-01"], "malformed --from date"),
    ],
)
def test_bad_options_print_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _cli("simulate", *args, "--out", str(tmp_path / "out"), tmp=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_the_prefect_flow_runs_the_same_simulation(tmp_path: Path) -> None:
    from flows.simulate import simulate as flow

    settings = Settings(date(2027, 10, 1), date(2027, 11, 30), networks=2, services=2, seed=3, out=tmp_path / "plain")
    plain = simulate(settings)
    state = flow(
        start="2027-10-01",
        end="2027-11-30",
        networks=2,
        services=2,
        seed=3,
        out=str(tmp_path / "flow"),
        return_state=True,
    )
    assert state.is_completed()
    assert state.result()["networks"] == plain["networks"]
    assert plain["networks"][0]["totals"]["visits"] > 0
    for sub in ("plain", "flow"):
        dispose_engine(f"sqlite:///{tmp_path}/{sub}/simulation.db")


def test_without_prefect_option_prefect_is_never_imported(tmp_path: Path) -> None:
    code = cli_without_prefect(
        [
            "--json",
            "simulate",
            "--from",
            "2027-04-01",
            "--to",
            "2027-04-03",
            "--networks",
            "2",
            "--services",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PEERWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/users-own.db"},
    )
    assert proc.returncode == 0, proc.stderr
    assert '"days": 3' in proc.stdout
    assert proc.stdout.rstrip().endswith("NO-PREFECT"), proc.stdout[-300:]
