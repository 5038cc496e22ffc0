"""Shared learning themes (seed 002 s3.5, s3.7): concerns and good practice by standard and by
theme across services and two networks, time to resolution from the audit trail, and no
names of people anywhere in the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Contact, Report, Reviewer, Risk
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, NotFound
from states.views.themes import NO_STANDARD, ThemeMap, positive_ref, shared_learning, table_rows
from tests.factories import person
from tests.probes import cli_without_prefect

MRH, SEV, BURNS = "Midland Royal Major Trauma Centre", "Severnside Trauma Unit", "Valley Burns Service"  # WMTN
MERSEY, WIRRAL = "Mersey Harbour Major Trauma Centre", "Wirral Coast Trauma Unit"  # CMMTN
NM = "network-manager"


def _close(session: Session, risk: Risk, day: date, *, withdraw: bool = False) -> None:
    """Resolve a raised risk through the engine on ``day`` (noon, London)."""
    clock = FixedClock(day)
    if withdraw:
        engine.fire(
            session,
            "risk",
            risk.id,
            "withdraw",
            principal=person("Rita Registrar", NM),
            clock=clock,
            note="raised in error",
        )  # type: ignore[arg-type]
    else:
        if risk.level != "GC":
            engine.fire(
                session,
                "risk",
                risk.id,
                "send_formal_notification",
                principal=person("Rita Registrar", NM),
                clock=clock,
            )  # type: ignore[arg-type]
            engine.fire(
                session, "risk", risk.id, "response_adequate", principal=person("Rita Registrar", NM), clock=clock
            )  # type: ignore[arg-type]
        engine.fire(session, "risk", risk.id, "close", principal=person("Rita Registrar", NM), clock=clock, note="done")  # type: ignore[arg-type]
    session.commit()


def _report(
    session: Session, services: dict[str, int], service: str, positives: list[str], state: str = "published"
) -> Report:
    row = Report(service_id=services[service], basis_date=date(2026, 12, 1), state="new")
    out = engine.create(
        session,
        "report",
        row,
        "start_drafting",
        principal=person("Olu Office", "network-office"),
        clock=FixedClock(date(2026, 12, 11)),
    )
    for text in positives:
        engine.fire(
            session,
            "report",
            out.row.id,
            "add_positive",
            principal=person("Olu Office", "network-office"),  # type: ignore[arg-type]
            clock=FixedClock(date(2026, 12, 11)),
            params={"text": text},
        )
    out.row.state = state  # test setup shortcut: past the factual accuracy check
    session.add(out.row)
    session.commit()
    return out.row  # type: ignore[return-value]


@pytest.fixture
def raise_risk(session: Session, services: dict[str, int]) -> Callable[..., Risk]:
    """Raise a risk through the engine on Fri 11 Dec 2026 (noon, London) and commit."""

    def make(level: str, service: str, title: str, standard_ref: str | None = None) -> Risk:
        row = Risk(
            service_id=services[service],
            level=level,
            title=title,
            standard_ref=standard_ref,
            identified_on=date(2026, 12, 1),
            visit_date=date(2026, 12, 11),
            state="new",
        )
        out = engine.create(
            session, "risk", row, "raise", principal=person("Pat Panel", NM), clock=FixedClock(date(2026, 12, 11))
        )
        session.commit()
        return out.row  # type: ignore[return-value]

    return make


@pytest.fixture
def world(session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]) -> dict[str, Any]:
    """Concerns and good practice across WMTN and CMMTN, raised on Fri 11 Dec 2026."""
    r = {
        # workforce by keyword, standard T-1.2, in both networks
        "rota": raise_risk("SC", MRH, title="Consultant rota gaps at night", standard_ref="T-1.2"),
        "staffing": raise_risk("GC", MERSEY, title="Weekend staffing below establishment", standard_ref="T-1.2"),
        # imaging by the IMG prefix
        "ct": raise_risk("IR", SEV, title="Delays to CT reporting", standard_ref="IMG-4"),
        # workforce by the WF prefix, although the title says "audit" (governance): the prefix wins
        "audit": raise_risk("SC", BURNS, title="Audit of transfers not done", standard_ref="WF-2"),
        "rehab": raise_risk("GC", WIRRAL, title="Rehabilitation prescriptions missing"),
        # names a person in its title: the title must never reach the output
        "other": raise_risk("GC", MERSEY, title="Signage complaint raised by Dr Felix Okoro", standard_ref="T-9"),
        "guideline": raise_risk("GC", MRH, title="Guidelines out of date", standard_ref="T-1.2"),
    }
    _close(session, r["rota"], date(2027, 1, 10))  # 30 days
    _close(session, r["staffing"], date(2026, 12, 21))  # 10 days
    _close(session, r["ct"], date(2026, 12, 16), withdraw=True)  # 5 days, withdrawn counts as resolved
    _close(session, r["rehab"], date(2026, 12, 13))  # 2 days
    _report(
        session,
        services,
        MRH,
        [
            "T-1.2: Consultant-led trauma team around the clock",
            "Excellent rehabilitation coordinator, thanks to Ms Ada Lindqvist",
        ],
    )
    _report(
        session,
        services,
        WIRRAL,
        ["[IMG-4] Hot reporting of CT within the hour", "Strong audit culture"],
        state="approved",
    )
    _report(session, services, MERSEY, ["Rota redesign led by nurses"], state="drafting")  # not yet shareable
    return r


def _row(rows: list[dict[str, Any]], kind: str, key: str) -> dict[str, Any]:
    found = [x for x in rows if x["type"] == kind and x["key"] == key]
    assert len(found) == 1, (kind, key, rows)
    return found[0]


def test_counts_by_theme_across_two_networks(session: Session, world: dict[str, Any]) -> None:
    out = shared_learning(session)
    assert (out["concerns"], out["good_practice"]) == (7, 4)
    workforce = _row(out["by_theme"], "concern", "workforce")
    assert (workforce["count"], workforce["ir"], workforce["sc"], workforce["gc"]) == (3, 0, 2, 1)
    assert (workforce["open"], workforce["closed"]) == (1, 2)  # the WF-2 audit SC is still open
    assert workforce["networks"] == ["CMMTN", "WMTN"]
    assert workforce["service_names"] == [MERSEY, MRH, BURNS] and workforce["services"] == 3
    assert (workforce["median_days"], workforce["mean_days"]) == (20.0, 20.0)  # 30 and 10 days
    imaging = _row(out["by_theme"], "concern", "imaging")
    assert (imaging["count"], imaging["ir"], imaging["closed"], imaging["median_days"]) == (1, 1, 1, 5.0)
    assert _row(out["by_theme"], "concern", "rehabilitation")["median_days"] == 2.0
    assert _row(out["by_theme"], "concern", "protocols")["count"] == 1  # "Guidelines" (plural) matches
    other = _row(out["by_theme"], "concern", "other")
    assert (other["count"], other["open"], other["closed"], other["median_days"], other["mean_days"]) == (
        1,
        1,
        0,
        None,
        None,
    )
    assert "governance" not in {x["key"] for x in out["by_theme"] if x["type"] == "concern"}
    # good practice: only reports past the factual accuracy check
    gp = {x["key"]: x for x in out["by_theme"] if x["type"] == "good_practice"}
    assert {k: v["count"] for k, v in gp.items()} == {
        "workforce": 1,
        "rehabilitation": 1,
        "imaging": 1,
        "governance": 1,
    }
    assert gp["imaging"]["networks"] == ["CMMTN"] and gp["workforce"]["networks"] == ["WMTN"]
    assert gp["imaging"]["open"] is None and gp["imaging"]["median_days"] is None


def test_counts_by_standard(session: Session, world: dict[str, Any]) -> None:
    out = shared_learning(session)
    t12 = _row(out["by_standard"], "concern", "T-1.2")
    assert (t12["count"], t12["sc"], t12["gc"], t12["open"], t12["closed"]) == (3, 1, 2, 1, 2)
    assert t12["networks"] == ["CMMTN", "WMTN"] and t12["median_days"] == 20.0
    assert _row(out["by_standard"], "concern", NO_STANDARD)["count"] == 1
    assert _row(out["by_standard"], "good_practice", "T-1.2")["count"] == 1
    assert _row(out["by_standard"], "good_practice", "IMG-4")["service_names"] == [WIRRAL]
    assert _row(out["by_standard"], "good_practice", NO_STANDARD)["count"] == 2
    # concerns first, then most frequent first
    assert [x["type"] for x in out["by_standard"]][:5] == ["concern"] * 5 and out["by_standard"][0]["key"] == "T-1.2"


def test_one_network_only(session: Session, world: dict[str, Any]) -> None:
    out = shared_learning(session, "CMMTN")
    assert (out["concerns"], out["good_practice"]) == (3, 2)
    assert all(x["networks"] == ["CMMTN"] for x in out["by_theme"] + out["by_standard"])
    assert _row(out["by_standard"], "concern", "T-1.2")["count"] == 1
    with pytest.raises(NotFound, match="network 'NOPE' not found"):
        shared_learning(session, "NOPE")


def test_time_to_resolution_comes_from_the_audit_trail(session: Session, world: dict[str, Any]) -> None:
    """Move the raise of the 30-day risk 6 hours earlier in the audit log: the figures follow."""
    rota = world["rota"]
    raised = session.exec(
        select(AuditEvent).where(
            AuditEvent.kind == "risk", AuditEvent.item_id == rota.id, AuditEvent.trigger == "raise"
        )
    ).one()
    pg = session.get_bind().dialect.name == "postgresql"
    for trig in (
        "audit_event_no_update",
        "audit_event_no_delete",
    ):  # the audit table is append-only: lift it for this test
        session.connection().exec_driver_sql(f"DROP TRIGGER IF EXISTS {trig}" + (" ON auditevent" if pg else ""))
    raised.at = raised.at - timedelta(hours=6)
    session.add(raised)
    session.commit()
    workforce = _row(shared_learning(session)["by_theme"], "concern", "workforce")
    assert workforce["median_days"] == 20.1 and workforce["mean_days"] == 20.1  # (30.25 + 10) / 2 = 20.125
    rotas = _row(shared_learning(session)["by_standard"], "concern", "T-1.2")
    assert rotas["resolved_with_time"] == 2


def test_median_differs_from_mean(session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]) -> None:
    for days in (1, 2, 9):
        risk = raise_risk("GC", MRH, title="Consultant cover", standard_ref="T-5")
        _close(session, risk, date(2026, 12, 11) + timedelta(days=days))
    row = _row(shared_learning(session)["by_standard"], "concern", "T-5")
    assert (row["median_days"], row["mean_days"], row["closed"]) == (2.0, 4.0, 3)


def test_no_names_of_people_in_the_output(
    db: Engine, session: Session, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.themes as flow_module

    published: list[dict[str, Any]] = []
    monkeypatch.setattr(flow_module, "create_table_artifact", lambda **kw: published.append(kw))
    names = set(session.exec(select(Contact.name)).all()) | set(session.exec(select(Reviewer.name)).all())
    names |= set(session.exec(select(AuditEvent.actor)).all())
    assert {"Pat Panel", "Rita Registrar", "Olu Office", "Dr Felix Okoro", "Ms Ada Lindqvist"} <= names
    names |= {n.split(" ", 1)[1] for n in names if n.split(" ", 1)[0] in ("Dr", "Mr", "Ms", "Mrs", "Prof")}
    for network in (None, "WMTN", "CMMTN"):
        text = json.dumps(shared_learning(session, network)) + json.dumps(table_rows(shared_learning(session, network)))
        text += json.dumps(flow_module.themes.fn(network=network), default=str) + json.dumps(published)
        leaked = sorted(n for n in names if n and n in text)
        assert leaked == [], leaked
    assert MRH in text or WIRRAL in text  # service names are fine


def test_flow_publishes_the_same_table(
    db: Engine, session: Session, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.themes as flow_module

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(flow_module, "create_table_artifact", lambda **kw: calls.append(kw))
    result = flow_module.themes.fn(network="WMTN")
    expected = table_rows(shared_learning(session, "WMTN"))
    assert len(calls) == 1 and calls[0]["key"] == "shared-learning-themes"
    assert calls[0]["table"] == expected == result["rows"]
    assert "network WMTN" in calls[0]["description"]
    assert result["by_theme"] == shared_learning(session, "WMTN")["by_theme"]


def test_flow_with_nothing_recorded_publishes_a_note(
    db: Engine, services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.themes as flow_module

    notes: list[dict[str, Any]] = []
    monkeypatch.setattr(flow_module, "create_table_artifact", lambda **kw: pytest.fail("no table when empty"))
    monkeypatch.setattr(flow_module, "create_markdown_artifact", lambda **kw: notes.append(kw))
    assert flow_module.themes.fn()["rows"] == []
    assert notes[0]["key"] == "shared-learning-themes" and "nothing recorded yet" in notes[0]["markdown"]


@pytest.mark.parametrize(
    ("ref", "text", "theme"),
    [
        ("WF-1", "CT scanner down", "workforce"),  # prefix before keywords
        ("wf-1", None, "workforce"),  # prefixes are case-insensitive
        ("T-1", "No CT out of hours", "imaging"),
        (None, "Consultants not resident", "workforce"),  # plural
        (None, "Rotation of junior staff", "other"),  # whole words: "rota" is not "rotation"
        (None, "Clinical audits incomplete", "governance"),
        (None, "Major haemorrhage protocol missing", "protocols"),
        (None, "", "other"),
    ],
)
def test_theme_map(ref: str | None, text: str | None, theme: str) -> None:
    assert ThemeMap().theme(ref, text) == theme


def test_theme_map_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERWATCH_THEME_PREFIXES", "t=trauma")
    monkeypatch.setenv("PEERWATCH_THEME_KEYWORDS", "transfer=transfer|retrieval; workforce=locum")
    themes = ThemeMap.from_env()
    assert themes.theme("T-1.2", "rota") == "trauma"
    assert themes.theme(None, "Retrieval delays") == "transfer"
    assert themes.theme(None, "Consultant rota") == "other"  # the default keywords were replaced
    monkeypatch.setenv("PEERWATCH_THEME_KEYWORDS", "broken")
    with pytest.raises(InvalidInput, match="PEERWATCH_THEME_KEYWORDS"):
        ThemeMap.from_env()


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("T-1.2: Consultant-led team", "T-1.2"),
        ("[IMG-4] Hot reporting", "IMG-4"),
        ("1.2 - rapid access", "1.2"),
        ("Strong audit culture", None),
        ("24/7 consultant cover", None),
    ],
)
def test_positive_ref(text: str, ref: str | None) -> None:
    assert positive_ref(text) == ref


def test_cli_themes(db: Engine, session: Session, world: dict[str, Any], tmp_path: Path) -> None:
    """`peerwatch themes` prints the same aggregation and never imports Prefect."""
    env = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    code = cli_without_prefect(["themes", "--network", "CMMTN", "--json"])
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    body, _, last = proc.stdout.rstrip().rpartition("\n")
    assert last == "NO-PREFECT"
    assert json.loads(body) == json.loads(json.dumps(shared_learning(session, "CMMTN")))
    table = subprocess.run(
        [str(Path(sys.executable).with_name("peerwatch")), "themes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert table.returncode == 0 and "workforce" in table.stdout and "Felix" not in table.stdout
