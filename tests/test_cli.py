"""The command line through its real entry point: the installed ``peerwatch`` console script,
run as a subprocess against a throw-away database (a SQLite file, or a PostgreSQL schema when
``PEERWATCH_TEST_DATABASE`` is set: the subprocess gets its URL through PEERWATCH_DATABASE_URL).

What the CLI promises (cli/app.py docstring): every error a user can cause prints one line
on stderr starting with "error:", exits 2, and changes nothing; interactive commands never
import Prefect. The commands run as the OS user of the test, mapped to an account with every
staff role (the ``me`` fixture), on a training database (``training``) so that --as-of dates
the story's actions.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from states.principal import Principal
from tests.support_cli import cli_env, ok, ok_json, run

# ---------------------------------------------------------------- setup commands


def test_init_demo_service_list_contact_add_and_service_add(
    db_url: str, me: Principal, training: None, tmp_path: Path
) -> None:
    env = cli_env()
    out = ok(run(env, "init", "--demo", cwd=tmp_path))
    assert "database ready" in out and "demo data loaded" in out

    services = ok_json(run(env, "--json", "service", "list", cwd=tmp_path))
    assert isinstance(services, list) and len(services) == 6
    assert all(set(s) == {"id", "name", "kind", "trust", "nation", "network"} for s in services)
    by_name = {s["name"]: s for s in services}
    mrh = by_name["Midland Royal Major Trauma Centre"]
    assert (mrh["trust"], mrh["nation"], mrh["network"]) == ("Midland Royal Hospitals NHS Trust", "ENG", "WMTN")

    # a valid contact, scoped to a service
    created = ok_json(
        run(
            env,
            "--json",
            "contact",
            "add",
            "--role",
            "lead-nurse",
            "--name",
            "Ms New Nurse",
            "--email",
            "new.nurse@midland-royal.nhs.example",
            "--service",
            str(mrh["id"]),
            cwd=tmp_path,
        )
    )
    reader = create_engine(db_url, poolclass=NullPool)
    with reader.connect() as con:
        row = tuple(
            con.execute(
                text("SELECT role, name, email, service_id, organisation_id, network_id FROM contact WHERE id = :id"),
                {"id": created["id"]},
            ).one()
        )
        org_id = con.execute(text("SELECT organisation_id FROM service WHERE id = :id"), {"id": mrh["id"]}).scalar_one()
    reader.dispose()
    assert row == ("lead-nurse", "Ms New Nurse", "new.nurse@midland-royal.nhs.example", mrh["id"], org_id, None)
    # (an unknown contact role is refused: see test_bad_input_is_refused[unknown-contact-role])

    # a service run by a new Trust in Scotland: the Trust is created with its nation
    new = ok_json(
        run(
            env,
            "--json",
            "service",
            "add",
            "--name",
            "Clyde Trauma Unit",
            "--kind",
            "Trauma Unit",
            "--organisation",
            "Clyde Valley NHS Board",
            "--network",
            "WMTN",
            "--nation",
            "sct",
            cwd=tmp_path,
        )
    )
    services = ok_json(run(env, "--json", "service", "list", cwd=tmp_path))
    assert len(services) == 7
    added = next(s for s in services if s["id"] == new["id"])
    assert added == {
        "id": new["id"],
        "name": "Clyde Trauma Unit",
        "kind": "Trauma Unit",
        "trust": "Clyde Valley NHS Board",
        "nation": "SCT",
        "network": "WMTN",
    }

    # the new Trust's nation picks the calendar: St Andrew's Day (Mon 30 Nov 2026) is not a
    # working day in Scotland, so the 5th working day after Tue 24 Nov is Wed 2 Dec (ENG: 1 Dec)
    raised = ok_json(
        run(
            env,
            "--as-of",
            "2026-11-24",
            "--json",
            "risk",
            "raise",
            "--service",
            str(new["id"]),
            "--level",
            "IR",
            "--title",
            "No on-call rota",
            "--visit-date",
            "2026-11-24",
            "--role",
            "network-manager",
            cwd=tmp_path,
        )
    )
    assert [(d["name"], d["due_on"]) for d in raised["deadlines"]] == [("formal_notification", "2026-12-02")]


# ---------------------------------------------------------------- the risk lifecycle


def test_risk_raise_show_fire_history_list(db_url: str, me: Principal, training: None, tmp_path: Path) -> None:
    env = cli_env()
    ok(run(env, "init", "--demo", cwd=tmp_path))

    raised = ok_json(
        run(
            env,
            "--as-of",
            "2026-12-11",
            "--json",
            "risk",
            "raise",
            "--service",
            "1",
            "--level",
            "SC",
            "--title",
            "No consultant cover at night",
            "--visit-date",
            "2026-12-11",
            "--role",
            "network-manager",
            cwd=tmp_path,
        )
    )
    rid = raised["id"]
    assert isinstance(rid, int) and raised["state"] == "identified"
    gc = ok_json(
        run(
            env,
            "--as-of",
            "2026-12-11",
            "--json",
            "risk",
            "raise",
            "--service",
            "1",
            "--level",
            "GC",
            "--title",
            "Audit programme incomplete",
            "--visit-date",
            "2026-12-11",
            "--role",
            "network-office",
            cwd=tmp_path,
        )
    )
    assert gc["state"] == "work_programme" and gc["id"] != rid
    assert [(d["name"], d["due_on"]) for d in gc["deadlines"]] == [("monitoring_review", "2027-03-12")]  # 13 weeks

    shown = ok_json(run(env, "--json", "risk", "show", str(rid), cwd=tmp_path))
    assert shown["id"] == rid and shown["state"] == "identified" and shown["level"] == "SC"
    pending = {d["name"]: d for d in shown["deadlines"]}
    assert set(pending) == {"formal_notification"}
    # 5 working days after Fri 11 Dec 2026 is Fri 18 Dec 2026, printed as an ISO date
    assert pending["formal_notification"]["due_on"] == "2026-12-18"
    assert date.fromisoformat(pending["formal_notification"]["due_on"]) == date(2026, 12, 18)
    assert "send_formal_notification" in shown["triggers"] and "close" not in shown["triggers"]

    fired = ok(
        run(
            env,
            "--as-of",
            "2026-12-18",
            "risk",
            "fire",
            str(rid),
            "send_formal_notification",
            "--role",
            "network-manager",
            cwd=tmp_path,
        )
    )
    assert "identified -> awaiting_response" in fired

    shown = ok_json(run(env, "--json", "risk", "show", str(rid), cwd=tmp_path))
    assert shown["state"] == "awaiting_response"
    assert shown["formal_notification_on"] == "2026-12-18"
    # SC: 20 working days after Fri 18 Dec 2026, skipping Christmas, the Boxing Day
    # substitute (Mon 28 Dec) and New Year's Day -> Wed 20 Jan 2027
    assert [(d["name"], d["due_on"]) for d in shown["deadlines"]] == [("response", "2027-01-20")]

    # the history, as people read it (a wide terminal, so nothing is folded) ...
    text = ok(run(cli_env(env, COLUMNS="250"), "risk", "history", str(rid), cwd=tmp_path))
    for word in (
        "raise",
        "send_formal_notification",
        "Test Operator (network-manager)",
        "identified",
        "awaiting_response",
        "2026-12-18",
        "2027-01-20",
    ):
        assert word in text, (word, text)
    assert text.index(" raise ") < text.index("send_formal_notification")
    # ... and as scripts read it
    events = ok_json(run(env, "--json", "risk", "history", str(rid), cwd=tmp_path))
    assert [(e["trigger"], e["from_state"], e["to_state"], e["actor"], e["role"]) for e in events] == [
        ("raise", "new", "identified", "Test Operator", "network-manager"),
        ("send_formal_notification", "identified", "awaiting_response", "Test Operator", "network-manager"),
    ]
    assert events[-1]["version"] == shown["version"]

    listed = ok_json(run(env, "--json", "risk", "list", "--state", "awaiting_response", cwd=tmp_path))
    assert [(r["id"], r["state"], r["next_deadline"], r["due_on"]) for r in listed] == [
        (rid, "awaiting_response", "response", "2027-01-20")
    ]

    # --due-before: the SC's response (20 Jan) is before 21 Jan; the GC's quarterly review
    # (13 weeks after 11 Dec: 12 Mar 2027) is not; "before" is strict
    listed = ok_json(run(env, "--json", "risk", "list", "--due-before", "2027-01-21", cwd=tmp_path))
    assert [r["id"] for r in listed] == [rid]
    listed = ok_json(run(env, "--json", "risk", "list", "--due-before", "2027-01-20", cwd=tmp_path))
    assert listed == []
