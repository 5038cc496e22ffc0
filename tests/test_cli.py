"""The command line through its real entry point: the installed ``peerwatch`` console script,
run as a subprocess against a throw-away database (a SQLite file, or a PostgreSQL schema when
``PEERWATCH_TEST_DATABASE`` is set: the subprocess gets its URL through PEERWATCH_DATABASE_URL).

What the CLI promises (cli/app.py docstring): every error a user can cause prints one line
on stderr starting with "error:", exits 2, and changes nothing; interactive commands never
import Prefect.
"""

from __future__ import annotations

import email.policy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from states.machines.risk import TRANSITIONS, RiskState
from states.machines.spec import CLOCK_TRIGGERS
from tests.databases import drop, fresh_url
from tests.databases import snapshot as snapshot_tables
from tests.probes import cli_without_prefect

PEERWATCH = str(Path(sys.executable).with_name("peerwatch"))
TIMEOUT = 120


# ---------------------------------------------------------------- helpers


def _env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for a subprocess: the caller's, made deterministic.

    ``COLUMNS``/``LINES`` are dropped so Rich uses its default width (80) exactly as it would
    when output is piped to a file or a log; ``PEERWATCH_AS_OF`` is dropped so only
    ``--as-of`` sets the date.
    """
    env = dict(os.environ if base is None else base)
    for name in ("COLUMNS", "LINES", "PEERWATCH_AS_OF", "PEERWATCH_MAIL"):
        env.pop(name, None)
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PEERWATCH, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the command succeeded cleanly; return its stdout."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc))


SNAPSHOT_TABLES = ("risk", "auditevent", "outboxmessage", "deadline", "contact", "service", "organisation")


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a refused command must not touch, read through a private
    connection (SQLModel names the audit_event and outbox_message tables ``auditevent``/``outboxmessage``)."""
    return snapshot_tables(url, SNAPSHOT_TABLES)


# ---------------------------------------------------------------- setup commands


def test_init_demo_service_list_contact_add_and_service_add(db_url: str, tmp_path: Path) -> None:
    env = _env()
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
            "--actor",
            "A",
            "--role",
            "network-manager",
            cwd=tmp_path,
        )
    )
    assert [(d["name"], d["due_on"]) for d in raised["deadlines"]] == [("formal_notification", "2026-12-02")]


# ---------------------------------------------------------------- the risk lifecycle


def test_risk_raise_show_fire_history_list(db_url: str, tmp_path: Path) -> None:
    env = _env()
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
            "--actor",
            "A",
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
            "--actor",
            "A",
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
            "--actor",
            "X",
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
    text = ok(run(_env(env, COLUMNS="250"), "risk", "history", str(rid), cwd=tmp_path))
    for word in (
        "raise",
        "send_formal_notification",
        "A (network-manager)",
        "X (network-manager)",
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
        ("raise", "new", "identified", "A", "network-manager"),
        ("send_formal_notification", "identified", "awaiting_response", "X", "network-manager"),
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


# ---------------------------------------------------------------- bad input

# One database for every refusal: nothing a refused command does may change it, and each
# case compares its own before/after snapshot. Risk 1: SC raised as of Fri 11 Dec 2026
# (identified, version 2).


@dataclass
class World:
    env: dict[str, str]
    db: str  # the database URL
    cwd: Path

    def refuse(self, args: list[str]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]]:
        """Run a bad command: (process, snapshot before, snapshot after)."""
        before = snapshot(self.db)
        proc = run(self.env, *args, cwd=self.cwd)
        return proc, before, snapshot(self.db)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("cli-world")
    url = fresh_url(tmp)
    env = _env(PEERWATCH_DATABASE_URL=url, PEERWATCH_OUTBOX_DIR=str(tmp / "outbox"))
    ok(run(env, "init", "--demo", cwd=tmp))
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
            "--actor",
            "A",
            "--role",
            "network-manager",
            cwd=tmp,
        )
    )
    assert raised["id"] == 1
    yield World(env=env, db=url, cwd=tmp)
    drop(url)


def _fire(*args: str, as_of: str = "2026-12-18") -> list[str]:
    return ["--as-of", as_of, "risk", "fire", *args]


def _raise(*args: str) -> list[str]:
    return [
        "--as-of",
        "2026-12-18",
        "risk",
        "raise",
        "--service",
        "1",
        "--title",
        "t",
        "--actor",
        "A",
        "--role",
        "network-manager",
        *args,
    ]


NM = ("--actor", "A", "--role", "network-manager")
# case -> (command line, words the one-line message must contain)
BAD_INPUT: dict[str, tuple[list[str], str]] = {
    "show-unknown-id": (["risk", "show", "999"], "risk 999 not found"),
    "fire-unknown-id": (_fire("999", "send_formal_notification", *NM), "risk 999 not found"),
    "trigger-not-allowed-from-state": (_fire("1", "close", *NM, "--note", "all done"), "'close' is not allowed"),
    "unknown-trigger": (_fire("1", "explode", *NM), "unknown trigger 'explode'"),
    "malformed-as-of": (["--as-of", "2026-13-45", "risk", "show", "1"], "2026-13-45"),
    "malformed-visit-date": (_raise("--level", "SC", "--visit-date", "yesterday"), "'yesterday'"),
    "missing-actor": (_fire("1", "send_formal_notification", "--actor", "", "--role", "network-manager"), "no actor"),
    "wrong-role": (
        _fire("1", "send_formal_notification", "--actor", "A", "--role", "auditor"),
        "role 'auditor' is read-only",
    ),
    "stale-version": (_fire("1", "send_formal_notification", *NM, "--version", "1"), "at version 2, not 1"),
    "back-in-time": (_fire("1", "send_formal_notification", *NM, as_of="2026-12-10"), "cannot move back in time"),
    "withdraw-without-note": (_fire("1", "withdraw", *NM), "--note"),
    "bad-level": (_raise("--level", "XX", "--visit-date", "2026-12-11"), "level 'XX'"),
    "impact-out-of-range": (
        _raise("--level", "SC", "--visit-date", "2026-12-11", "--impact", "9", "--likelihood", "2"),
        "1-6",
    ),
    "impact-not-a-number": (_raise("--level", "SC", "--visit-date", "2026-12-11", "--impact", "nine"), "--impact"),
    "unknown-contact-role": (
        ["contact", "add", "--role", "pope", "--name", "N", "--email", "n@x.nhs.example"],
        "unknown contact role 'pope'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused(world: World, case: str) -> None:
    """Exit 2, exactly one line on stderr starting "error:" that names the problem, no
    traceback, nothing on stdout, and not one row of the database changed."""
    args, words = BAD_INPUT[case]
    proc, before, after = world.refuse(args)
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert words in lines[0], (words, lines[0])
    assert proc.stdout == ""
    assert after == before, f"{case} changed the database"


def test_interactive_commands_do_not_import_prefect(world: World) -> None:
    code = cli_without_prefect(["--json", "risk", "show", "1"])
    proc = subprocess.run(
        [sys.executable, "-c", code], env=world.env, capture_output=True, text=True, timeout=TIMEOUT, cwd=world.cwd
    )
    assert proc.returncode == 0, proc.stderr
    assert '"state": "identified"' in proc.stdout
    assert proc.stdout.rstrip().endswith("NO-PREFECT"), proc.stdout[-300:]


AS_OF_TWICE = """
import contextlib, io, json
from datetime import UTC, datetime
from cli.app import main
from states.clock import local_date

def as_of(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(list(args))
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
    return json.loads(out.getvalue())["as_of"]

print(as_of("--as-of", "2026-03-02", "--json", "cycle", "status"))
print(as_of("cycle", "status", "--json", "--as-of", "2027-07-01"))
print(as_of("--json", "cycle", "status") == local_date(datetime.now(UTC)).isoformat())
"""


def test_as_of_belongs_to_one_invocation(world: World) -> None:
    """--as-of lives in the invocation's context, not a module global: three runs in one process
    each see their own date, and the last, given none, is today's."""
    proc = subprocess.run(
        [sys.executable, "-c", AS_OF_TWICE],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=world.cwd,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2026-03-02", "2027-07-01", "True"]


def test_only_the_group_typed_is_mounted() -> None:
    """Start-up time: the line names one group, so only that group is built (and imported);
    help, or a word that is not a command, mounts every one."""
    import typer

    from cli.app import ROOT_COMMANDS, build

    def mounted(word: str | None) -> set[str]:
        return set(typer.main.get_command(build(word)).commands)  # type: ignore[attr-defined]

    assert mounted("risk") == {"risk"}
    assert mounted("phase") == {"phase"}  # a kind with no commands of its own: the generic ones
    assert mounted("chase") == set(ROOT_COMMANDS)
    every = mounted(None)
    assert every == mounted("no-such-command")
    assert {*ROOT_COMMANDS, "risk", "visit", "outbox", "contact", "reviewer", "network", "service"} <= every


# ---------------------------------------------------------------- calendar and diagram


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # DOMAIN.md: notification Fri 18 Dec 2026 + 10 working days (IR) -> Wed 6 Jan 2027
        (["2026-12-18", "10"], "2027-01-06"),
        # Christmas (Fri), the weekend and the Boxing Day substitute (Mon 28 Dec) are skipped
        (["2026-12-24", "1", "--nation", "SCT"], "2026-12-29"),
    ],
)
def test_calendar_add_working_days(db_url: str, tmp_path: Path, args: list[str], expected: str) -> None:
    out = ok(run(_env(), "calendar", "add-working-days", *args, cwd=tmp_path))
    assert out.split()[0] == expected


def test_calendar_add_working_days_json(db_url: str, tmp_path: Path) -> None:
    # New Year's Day is Fri 1 Jan 2027 (England works again on Mon 4 Jan); Scotland also keeps
    # 2 January, a Saturday, substituted on Mon 4 Jan -> Tue 5 Jan
    data = ok_json(
        run(_env(), "--json", "calendar", "add-working-days", "2026-12-31", "1", "--nation", "sct", cwd=tmp_path)
    )
    assert data == {"start": "2026-12-31", "working_days": 1, "nation": "SCT", "due_on": "2027-01-05"}


def test_diagram_risk_is_the_transition_table(db_url: str, tmp_path: Path) -> None:
    out = ok(run(_env(), "diagram", "risk", cwd=tmp_path))
    lines = out.splitlines()
    assert lines[0] == "stateDiagram-v2"
    edges = set()
    nodes = set()
    for line in lines[1:]:
        m = re.fullmatch(r"\s+(\S+) --> (\S+?)(?:: (\w+)(?: \[.*\])?)?", line)
        if m:
            src, dst, trig = m.groups()
            nodes.update({src, dst})
            if trig:
                edges.add((src, dst, trig))
    assert {s.value for s in RiskState} <= nodes, {s.value for s in RiskState} - nodes
    assert "[*] --> new" in out
    expected = set()
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for s in sources:
            expected.add((s, t["dest"] or s, t["trigger"]))
    assert edges == expected
    assert {t["trigger"] for t in TRANSITIONS} == {e[2] for e in edges}
    assert not any(e[2] in CLOCK_TRIGGERS for e in edges)  # clock triggers are a note, not edges
    for t in CLOCK_TRIGGERS:
        assert t in out


# ---------------------------------------------------------------- chase, dispatch, outbox


def test_chase_dispatch_and_outbox_end_to_end(db_url: str, tmp_path: Path) -> None:
    outbox = tmp_path / "chase-outbox"
    env = _env(PEERWATCH_OUTBOX_DIR=str(outbox), PEERWATCH_MAIL="folder")
    ok(run(env, "init", "--demo", cwd=tmp_path))
    # A: SC found Fri 11 Dec; formal notification due Fri 18 Dec, reminder Wed 16 Dec
    a = ok_json(
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
            "A",
            "--visit-date",
            "2026-12-11",
            "--actor",
            "A",
            "--role",
            "network-manager",
            cwd=tmp_path,
        )
    )["id"]
    # B: IR notified Tue 1 Dec; the Trust's response is due Tue 15 Dec (10 working days)
    b = ok_json(
        run(
            env,
            "--as-of",
            "2026-12-01",
            "--json",
            "risk",
            "raise",
            "--service",
            "2",
            "--level",
            "IR",
            "--title",
            "B",
            "--visit-date",
            "2026-12-01",
            "--actor",
            "A",
            "--role",
            "network-manager",
            cwd=tmp_path,
        )
    )["id"]
    fired = ok_json(
        run(
            env,
            "--as-of",
            "2026-12-01",
            "--json",
            "risk",
            "fire",
            str(b),
            "send_formal_notification",
            "--actor",
            "X",
            "--role",
            "regional-lead",
            cwd=tmp_path,
        )
    )
    assert fired["state"] == "awaiting_response" and fired["letters_queued"] == 1
    assert [(d["name"], d["due_on"]) for d in fired["deadlines"]] == [("response", "2026-12-15")]

    # Wed 16 Dec: A's reminder day; B's response deadline has passed -> chased
    day1 = ok_json(run(env, "--as-of", "2026-12-16", "--json", "chase", cwd=tmp_path))
    assert day1["as_of"] == "2026-12-16" and day1["skipped"] == []
    got = {(x["id"], x["deadline"], x["action"], x.get("to_state")) for x in day1["actions"]}
    assert got == {(a, "formal_notification", "reminded", None), (b, "response", "no_response", "chased")}
    # the same day again: nothing more to do
    again = ok_json(run(env, "--as-of", "2026-12-16", "--json", "chase", cwd=tmp_path))
    assert again["actions"] == [] and again["skipped"] == []

    # Mon 21 Dec: A's formal notification is overdue; B's chase runs to Wed 23 Dec
    day2 = ok_json(run(env, "--as-of", "2026-12-21", "--json", "chase", cwd=tmp_path))
    assert [(x["id"], x["deadline"], x["action"]) for x in day2["actions"]] == [
        (a, "formal_notification", "overdue_notice")
    ]

    # Before it is sent, a letter is shown as it will go: rendered from what the transition stored.
    queued = ok_json(run(env, "--json", "outbox", "list", "--status", "queued", cwd=tmp_path))
    (formal,) = [m for m in queued if m["item"] == f"risk {b}" and m["template"] == "formal_notification"]
    preview = ok(run(env, "outbox", "show", str(formal["id"]), cwd=tmp_path))
    assert "not sent yet" in preview and f"IR-{b}" in preview and "Tue 15 Dec 2026" in preview
    assert "<strong>Tue 15 Dec 2026</strong>" in ok(
        run(env, "outbox", "show", str(formal["id"]), "--html", cwd=tmp_path)
    )
    missing = run(env, "outbox", "show", "999999", cwd=tmp_path)
    assert missing.returncode != 0 and "outbox message 999999 not found" in missing.stderr + missing.stdout
    assert "Traceback" not in missing.stderr

    sent = ok_json(run(env, "--as-of", "2026-12-21", "--json", "dispatch", cwd=tmp_path))
    assert sent["failed"] == 0 and sent["retried"] == 0 and sent["emails_sent"] >= 1
    # Once sent, the row keeps the text that went, word for word.
    kept = ok_json(run(env, "--json", "outbox", "show", str(formal["id"]), cwd=tmp_path))
    assert kept["sent_at"] and kept["subject"] and kept["body_text"] in preview

    messages = ok_json(run(env, "--json", "outbox", "list", cwd=tmp_path))
    assert messages and all(m["status"] == "sent" for m in messages), messages
    assert sent["messages_sent"] == len(messages)
    templates = {(m["item"], m["template"]) for m in messages}
    assert {
        (f"risk {b}", "formal_notification"),
        (f"risk {b}", "chase"),
        (f"risk {a}", "formal_notification_due"),
        (f"risk {a}", "formal_notification_overdue"),
    } <= templates

    files = sorted(outbox.glob("*.eml"))
    assert len(files) == sent["emails_sent"]
    sent_templates = set()
    for f in files:
        msg = message_from_bytes(f.read_bytes())
        assert msg["To"] and msg["Subject"]
        sent_templates.add(msg["X-Peerwatch-Template"])
        if msg["X-Peerwatch-Key"].startswith(f"risk:{b}:") and msg["X-Peerwatch-Template"] == "formal_notification":
            assert " ".join(str(msg["Subject"]).split()) == kept["subject"]
            plain = message_from_bytes(f.read_bytes(), policy=email.policy.default).get_body(("plain",))
            assert kept["body_text"].strip() in plain.get_content()  # type: ignore[union-attr]
    assert "formal_notification" in sent_templates


def test_same_day_record_progress_on_a_new_gc(db_url: str, tmp_path: Path) -> None:
    """Regression: a trigger that changes no column, on the same --as-of day as the raise (the same
    instant: noon), crashed with RuntimeError and a traceback because the version was not bumped."""
    env = _env()
    ok(run(env, "init", "--demo", cwd=tmp_path))
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
            "--actor",
            "A",
            "--role",
            "network-office",
            cwd=tmp_path,
        )
    )
    proc = run(
        env,
        "--as-of",
        "2026-12-11",
        "--json",
        "risk",
        "fire",
        str(gc["id"]),
        "record_progress",
        "--actor",
        "A",
        "--role",
        "network-office",
        "--note",
        "work programme agreed",
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-400:]
    fired = ok_json(proc)
    assert fired["state"] == "work_programme" and fired["version"] == 3
