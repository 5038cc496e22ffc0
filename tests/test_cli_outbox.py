"""The command line: calendar, diagram, and chasing, dispatch and the outbox end to end."""

from __future__ import annotations

import email.policy
import re
from email import message_from_bytes
from pathlib import Path

import pytest

from states.machines.risk import TRANSITIONS, RiskState
from states.machines.spec import CLOCK_TRIGGERS
from states.principal import Principal
from tests.support_cli import cli_env, ok, ok_json, run

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
    out = ok(run(cli_env(), "calendar", "add-working-days", *args, cwd=tmp_path))
    assert out.split()[0] == expected


def test_calendar_add_working_days_json(db_url: str, tmp_path: Path) -> None:
    # New Year's Day is Fri 1 Jan 2027 (England works again on Mon 4 Jan); Scotland also keeps
    # 2 January, a Saturday, substituted on Mon 4 Jan -> Tue 5 Jan
    data = ok_json(
        run(cli_env(), "--json", "calendar", "add-working-days", "2026-12-31", "1", "--nation", "sct", cwd=tmp_path)
    )
    assert data == {"start": "2026-12-31", "working_days": 1, "nation": "SCT", "due_on": "2027-01-05"}


def test_diagram_risk_is_the_transition_table(db_url: str, tmp_path: Path) -> None:
    out = ok(run(cli_env(), "diagram", "risk", cwd=tmp_path))
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


def test_chase_dispatch_and_outbox_end_to_end(db_url: str, training: None, me: Principal, tmp_path: Path) -> None:
    outbox = tmp_path / "chase-outbox"
    env = cli_env(PEERWATCH_OUTBOX_DIR=str(outbox), PEERWATCH_MAIL="folder")
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


def test_same_day_record_progress_on_a_new_gc(db_url: str, training: None, me: Principal, tmp_path: Path) -> None:
    """Regression: a trigger that changes no column, on the same --as-of day as the raise (the same
    instant: noon), crashed with RuntimeError and a traceback because the version was not bumped."""
    env = cli_env()
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
        "--role",
        "network-office",
        "--note",
        "work programme agreed",
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-400:]
    fired = ok_json(proc)
    assert fired["state"] == "work_programme" and fired["version"] == 3
