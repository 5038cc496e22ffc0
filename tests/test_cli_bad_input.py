"""The command line refuses bad input in one line, keeps --as-of to one invocation, and mounts only what is typed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.context import TRAINING_BANNER, os_login
from models.db import get_engine
from tests import support_accounts
from tests.databases import drop, fresh_url
from tests.probes import cli_without_prefect
from tests.support_cli import TIMEOUT, cli_env, ok, ok_json, run, snapshot

# ---------------------------------------------------------------- bad input

# One database for every refusal: nothing a refused command does may change it, and each
# case compares its own before/after snapshot. Risk 1: SC raised as of Fri 11 Dec 2026
# (identified, version 2). A training database (so actions take --as-of), made by
# `peerwatch init --training`, which makes the OS user running the tests its administrator;
# that account is then granted three of the network's roles (not auditor, not operator) by
# the fixture, as another administrator would.


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
    env = cli_env(PEERWATCH_DATABASE_URL=url, PEERWATCH_OUTBOX_DIR=str(tmp / "outbox"))
    ok(run(env, "init", "--training", "--demo", cwd=tmp))
    # nobody grants a role to their own account: the fixture writes the grants, as a second
    # administrator would (tests/test_who_is_acting.py shows the refusal)
    eng = get_engine(url)
    support_accounts.account(eng, os_login(), ("network-manager", "regional-lead", "network-office"))
    eng.dispose()
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
        "--role",
        "network-manager",
        *args,
    ]


NM = ("--role", "network-manager")
# case -> (command line, words the one-line message must contain)
BAD_INPUT: dict[str, tuple[list[str], str]] = {
    "show-unknown-id": (["risk", "show", "999"], "risk 999 not found"),
    "fire-unknown-id": (_fire("999", "send_formal_notification", *NM), "risk 999 not found"),
    "trigger-not-allowed-from-state": (_fire("1", "close", *NM, "--note", "all done"), "'close' is not allowed"),
    "unknown-trigger": (_fire("1", "explode", *NM), "unknown trigger 'explode'"),
    "malformed-as-of": (["--as-of", "2026-13-45", "risk", "show", "1"], "2026-13-45"),
    "malformed-visit-date": (_raise("--level", "SC", "--visit-date", "yesterday"), "'yesterday'"),
    "actor-is-gone": (_fire("1", "send_formal_notification", "--actor", "Tom Hughes", *NM), "No such option: --actor"),
    "role-not-held": (
        _fire("1", "send_formal_notification", "--role", "auditor"),
        "does not hold the role 'auditor'",
    ),
    "role-held-but-not-allowed": (
        _fire("1", "send_formal_notification", "--role", "network-office"),
        "role 'network-office' may not fire 'send_formal_notification'",
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
    """Exit 2, exactly one line on stderr starting "error:" that names the problem (after the
    training database's banner), no traceback, nothing on stdout, and not one row of the
    database changed."""
    args, words = BAD_INPUT[case]
    proc, before, after = world.refuse(args)
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line != TRAINING_BANNER]
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
