"""Who is acting, at the command line, as real OS accounts (issue 14 item 3): each command runs
as an OS user made for the test (tests/support_os_users.py), and peerwatch knows it only by
the effective uid's login name.

Shown here: ``peerwatch init`` makes the OS user who runs it the first administrator; an
unmapped OS user changes nothing; a mapped Network Manager fires in their network and not in
another; ``--actor`` is no option; ``--role`` chooses only among one's own roles; only an
administrator adds accounts, grants roles and changes permissions, each an audited event; a
disabled account is refused; ``--as`` and ``--as-of`` on an action are refused outside a
training database and taken in one; and the newcomer's path of the README end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cli.context import TRAINING_BANNER
from states.clock import SystemClock, local_date
from tests.databases import skip_on_postgres
from tests.support_os_users import Box, box, make_os_user, remove_os_user

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="makes OS accounts with useradd: needs root (as in CI, where it always runs)"
)


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, str]]:
    """Four OS accounts: who runs init, a Network Manager to be, a stranger, and a newcomer."""
    made: dict[str, str] = {}
    try:
        for who in ("admin", "manager", "stranger", "newcomer"):
            made[who] = make_os_user(who[:3])
        yield made
    finally:
        for name in made.values():
            remove_os_user(name)


@pytest.fixture
def shared() -> Iterator[Box]:
    yield from box()


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc))


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, one ``error:`` line on stderr (after a training banner)."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and line != TRAINING_BANNER]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def rows(b: Box, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(b.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def today() -> str:
    return local_date(SystemClock().now()).isoformat()


def services(b: Box, user: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in ok_json(b.run(user, "--json", "service", "list"))}


def raise_ir(b: Box, user: str, service_id: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return b.run(
        user,
        "--json",
        *extra,
        "risk",
        "raise",
        "--service",
        str(service_id),
        "--level",
        "IR",
        "--title",
        "Trauma team not consultant-led out of hours",
        "--visit-date",
        extra[extra.index("--as-of") + 1] if "--as-of" in extra else today(),
    )


def test_the_readme_newcomer_path_init_add_grant_fire(shared: Box, users: dict[str, str]) -> None:
    """README "Accounts": init as yourself (first administrator), add a Network Manager mapped to
    their OS login, grant a network, and they fire a transition as themselves."""
    admin, manager, newcomer = users["admin"], users["manager"], users["newcomer"]
    out = ok(shared.run(admin, "init", "--demo", "--name", "Pat Admin", "--email", "pat.admin@wmtn.nhs.example"))
    assert "database ready" in out and "not a training database" in out
    assert "administrator: account" in out and "Pat Admin" in out and admin in out.replace("\n", " ")
    me = ok_json(shared.run(admin, "--json", "whoami"))
    assert (me["name"], me["os_login"], me["training"]) == ("Pat Admin", admin, False)
    assert [(g["role"], g["where"]) for g in me["grants"]] == [("administrator", "whole installation")]

    added = ok_json(
        shared.run(
            admin, "--json", "user", "add", "Dr Asha Patel", "asha.patel@wmtn.nhs.example", "--os-login", manager
        )
    )
    grant = ok_json(shared.run(admin, "--json", "user", "grant", manager, "network-manager", "--network", "WMTN"))
    assert (grant["user_id"], grant["role"], grant["scope"]) == (added["id"], "network-manager", "network")

    svc = services(shared, manager)
    mrh, mersey = svc["Midland Royal Major Trauma Centre"], svc["Mersey Harbour Major Trauma Centre"]
    raised = ok_json(raise_ir(shared, manager, mrh["id"]))
    fired = ok_json(shared.run(manager, "--json", "risk", "fire", str(raised["id"]), "send_formal_notification"))
    assert (fired["from"], fired["state"]) == ("identified", "awaiting_response")
    events = ok_json(shared.run(manager, "--json", "risk", "history", str(raised["id"])))
    assert [(e["trigger"], e["actor"], e["role"], e["user_id"]) for e in events] == [
        ("raise", "Dr Asha Patel", "network-manager", added["id"]),
        ("send_formal_notification", "Dr Asha Patel", "network-manager", added["id"]),
    ]

    # the grant is for WMTN: a Cheshire & Mersey service is out of her scope
    before = shared.snapshot()
    line = refused(raise_ir(shared, manager, mersey["id"]))
    assert "Dr Asha Patel holds network-manager but not in the scope" in line
    assert shared.snapshot() == before

    # a second init, by someone else, makes nobody administrator
    out = ok(shared.run(newcomer, "init"))
    assert "administrators exist already" in out and "has no account" in out
    assert rows(shared, "SELECT count(*) FROM role_grant WHERE role = 'administrator'") == [(1,)]


@skip_on_postgres(
    "who a person is on the machine (OS users, sudo) does not depend on the database: the SQLite pass runs it"
)
def test_who_may_do_what_as_os_users(shared: Box, users: dict[str, str]) -> None:
    admin, manager, stranger = users["admin"], users["manager"], users["stranger"]
    ok(shared.run(admin, "init", "--demo"))
    ok(shared.run(admin, "user", "add", "Dr Asha Patel", "asha.patel@wmtn.nhs.example", "--os-login", manager))
    ok(shared.run(admin, "user", "grant", manager, "network-manager"))
    mrh = services(shared, admin)["Midland Royal Major Trauma Centre"]["id"]
    rid = str(ok_json(raise_ir(shared, manager, mrh))["id"])
    asha = rows(shared, "SELECT id FROM account WHERE os_login = :login", login=manager)[0][0]

    before = shared.snapshot()
    # an OS account mapped to nobody: refused, naming the fix, nothing changed
    line = refused(shared.run(stranger, "risk", "fire", rid, "send_formal_notification"))
    assert f"the OS account '{stranger}' is not mapped to a peerwatch account" in line
    assert f"--os-login {stranger}" in line
    refused(shared.run(stranger, "user", "add", "Eve", "eve@example.nhs.uk", "--os-login", stranger))
    # --actor is no longer an option; --role chooses only among one's own roles
    assert "No such option: --actor" in refused(
        shared.run(manager, "risk", "fire", rid, "send_formal_notification", "--actor", "Tom Hughes")
    )
    line = refused(shared.run(manager, "risk", "fire", rid, "send_formal_notification", "--role", "regional-lead"))
    assert "Dr Asha Patel does not hold the role 'regional-lead'" in line
    # --as and --as-of on an action: a training database only
    line = refused(shared.run(manager, "--as", admin, "risk", "fire", rid, "send_formal_notification"))
    assert "--as acts as another account: it is refused outside a training database" in line
    line = refused(shared.run(manager, "--as-of", "2026-01-05", "risk", "fire", rid, "send_formal_notification"))
    assert "--as-of 2026-01-05 refused" in line and "training database" in line
    # a Network Manager is no administrator
    for args in (
        ("user", "add", "Eve", "eve@example.nhs.uk"),
        ("user", "grant", manager, "regional-lead"),
        ("permissions", "set", "risk", "withdraw", "--roles", "operator"),
        ("user", "disable", admin),
    ):
        assert "only an administrator may" in refused(shared.run(manager, *args)), args
    assert shared.snapshot() == before

    # the administrator may, each an audited event in the administrator's name
    admin_id = rows(shared, "SELECT id FROM account WHERE os_login = :login", login=admin)[0][0]
    events = len(before["auditevent"])
    ok(shared.run(admin, "user", "add", "Mr Tom Hughes", "tom.hughes@wmtn.nhs.example"))
    ok(shared.run(admin, "user", "grant", "tom.hughes@wmtn.nhs.example", "regional-lead", "--network", "WMTN"))
    ok(shared.run(admin, "permissions", "set", "risk", "withdraw", "--roles", "regional-lead"))
    audited = rows(shared, "SELECT kind, trigger, user_id, role FROM auditevent WHERE id > :n ORDER BY id", n=events)
    assert audited == [
        ("account", "add", admin_id, "administrator"),
        ("account", "grant", admin_id, "administrator"),
        ("permission", "set", admin_id, "administrator"),
    ]
    listed = ok(shared.run(admin, "permissions", "--kind", "risk"))
    assert "CHANGED" in listed

    # the Network Manager fires, as herself
    fired = ok_json(shared.run(manager, "--json", "risk", "fire", rid, "send_formal_notification"))
    assert fired["state"] == "awaiting_response"
    assert rows(shared, "SELECT user_id, actor FROM auditevent ORDER BY id DESC LIMIT 1") == [(asha, "Dr Asha Patel")]

    # disabled: refused, with nothing changed
    ok(shared.run(admin, "user", "disable", manager, "--note", "left the network"))
    before = shared.snapshot()
    line = refused(shared.run(manager, "risk", "fire", rid, "pause_clock", "--note", "inquest"))
    assert f"account {asha} (Dr Asha Patel) is disabled: it may not act" in line
    assert shared.snapshot() == before

    # a disabled account cannot re-enable itself; the administrator does (audited): she acts again
    assert "is disabled: it may not act" in refused(shared.run(manager, "user", "enable", manager))
    assert "re-enabled" in ok(shared.run(admin, "user", "enable", manager, "--note", "back from leave"))
    assert rows(shared, "SELECT trigger, user_id FROM auditevent ORDER BY id DESC LIMIT 1") == [("enable", admin_id)]
    paused = ok_json(shared.run(manager, "--json", "risk", "fire", rid, "pause_clock", "--note", "inquest"))
    assert paused["state"] == "awaiting_response"


def test_a_training_database_takes_as_and_as_of_and_names_the_account(shared: Box, users: dict[str, str]) -> None:
    admin = users["admin"]
    out = ok(shared.run(admin, "init", "--training", "--demo"))
    assert "training database: simulated dates and --as ACCOUNT are allowed" in out
    ok(shared.run(admin, "user", "add", "Ms Grace Okafor", "grace.okafor@wmtn.nhs.example"))
    ok(shared.run(admin, "user", "grant", "grace.okafor@wmtn.nhs.example", "network-office", "--network", "WMTN"))
    grace = rows(shared, "SELECT id FROM account WHERE email = 'grace.okafor@wmtn.nhs.example'")[0][0]
    mrh = services(shared, admin)["Midland Royal Major Trauma Centre"]["id"]

    proc = raise_ir(shared, admin, mrh, "--as", "grace.okafor@wmtn.nhs.example", "--as-of", "2026-12-11")
    assert TRAINING_BANNER in proc.stderr  # every command on a training database says so
    raised = ok_json(proc)
    # the IR's notification is due 1 working day after Fri 11 Dec 2026, the simulated date
    assert raised["state"] == "identified"
    assert rows(shared, "SELECT user_id, actor, role FROM auditevent WHERE kind = 'risk'") == [
        (grace, "Ms Grace Okafor", "network-office")
    ]
    who = ok_json(shared.run(admin, "--json", "--as", "grace.okafor@wmtn.nhs.example", "whoami"))
    assert (who["name"], who["via"], who["training"]) == ("Ms Grace Okafor", "training", True)
    # --as does not lend a role the account lacks
    line = refused(
        shared.run(
            admin, "--as", "grace.okafor@wmtn.nhs.example", "risk", "fire", str(raised["id"]), "withdraw", "--note", "x"
        )
    )
    assert "Ms Grace Okafor may not fire 'withdraw'" in line
