"""Several people on one server without handing them the audit key (issue 14): the service
account owns the database and the key (mode 0600); people run peerwatch through
``sudo -u <service account>``, and peerwatch knows them by the ``SUDO_UID`` sudo sets, but only
when the process runs as the service account the *database* names.

As real OS users (tests/support_os_users.py; CI runs as root), each command run holding no
capability (``Box.run_plain``), so a file a user may not read stays unread. sudo itself may not
be installed: a command "through sudo" is run as the service account with the environment sudo
gives it (``SUDO_UID``, ``SUDO_GID``, ``SUDO_USER``, ``SUDO_COMMAND``). Shown: (a) a person running
peerwatch as themselves cannot open the database or the key, refused with one line; (b)
through sudo the person acts as themselves, named in the audit events; (c) ``SUDO_UID`` in a
person's own environment changes nothing; (d) with no service account named in the database,
the service account is only itself; (e) the rule itself, without OS users.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session, select

from cli.context import TRAINING_BANNER
from models.installation import ROW_ID, Installation
from models.tables import AuditEvent
from states.clock import SystemClock, local_date
from states.errors import InvalidInput, MissingActor, PermissionDenied
from states.services import installation
from tests.databases import skip_on_postgres
from tests.factories import person
from tests.support_accounts import account
from tests.support_cli import PEERWATCH
from tests.support_os_users import Box, box, make_os_user, remove_os_user

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="makes OS accounts with useradd: needs root (as in CI, where it always runs)"
)
MRH = "Midland Royal Major Trauma Centre"


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, str]]:
    """The service account, an administrator, a Network Manager (alice) and a colleague with no role (bob)."""
    if os.geteuid() != 0:
        pytest.skip("makes OS accounts with useradd: needs root")
    made: dict[str, str] = {}
    try:
        for who in ("svc", "admin", "alice", "bob"):
            made[who] = make_os_user(who[:3])
        yield made
    finally:
        for name in made.values():
            remove_os_user(name)


@pytest.fixture
def shared() -> Iterator[Box]:
    """The database open to every OS user (0666) and the key in everyone's environment."""
    yield from box()


@pytest.fixture
def served(users: dict[str, str]) -> Iterator[tuple[Box, Path]]:
    """The deployment recipe: the service account's directory (0700), its SQLite database (0600)
    and, made by init, its key file var/audit.key (0600); the environment names both, no key in it."""
    with contextmanager(box)() as b:
        owner = pwd.getpwnam(users["svc"])
        srv = b.root / "srv"
        for d in (srv, srv / "var"):
            d.mkdir()
            os.chown(d, owner.pw_uid, owner.pw_gid)
            d.chmod(0o700)
        url = b.url
        if url.startswith("sqlite:///"):
            db_file = srv / "peerwatch.db"
            db_file.touch()
            os.chown(db_file, owner.pw_uid, owner.pw_gid)
            db_file.chmod(0o600)
            url = f"sqlite:///{db_file}"
        env = {**b.env, "PEERWATCH_DATABASE_URL": url, "PEERWATCH_AUDIT_KEY_FILE": str(srv / "var" / "audit.key")}
        del env["PEERWATCH_AUDIT_KEY"]
        yield Box(b.root, url, env), srv


def uid(login: str) -> int:
    return pwd.getpwnam(login).pw_uid


def sudo_env(env: dict[str, str], caller: str, sudo_uid: str | None = None) -> dict[str, str]:
    """The environment ``sudo -u <service account> peerwatch`` gives the command (env_reset keeps
    the rest out): who ran it, by uid and name."""
    who = pwd.getpwnam(caller)
    return {
        **env,
        "SUDO_UID": str(who.pw_uid) if sudo_uid is None else sudo_uid,
        "SUDO_GID": str(who.pw_gid),
        "SUDO_USER": caller,
        "SUDO_COMMAND": PEERWATCH,
    }


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc))


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, one ``error:`` line on stderr."""
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


def account_id(b: Box, login: str) -> int:
    found = rows(b, "SELECT id FROM account WHERE os_login = :login", login=login)
    assert len(found) == 1, found
    return int(found[0][0])


def raise_ir(run: Any, service_id: int) -> subprocess.CompletedProcess[str]:
    today = local_date(SystemClock().now()).isoformat()
    return run(
        "--json", "risk", "raise", "--service", str(service_id), "--level", "IR",
        "--title", "Trauma team not consultant-led out of hours", "--visit-date", today,
    )  # fmt: skip


def one_line(out: str) -> str:
    """Rich wraps at 80 columns: the words as one line."""
    return " ".join(out.split())


@as_root
@skip_on_postgres(
    "who a person is on the machine (OS users, sudo) does not depend on the database: the SQLite pass runs it"
)
def test_through_sudo_as_the_service_account_each_person_acts_as_themselves(
    served: tuple[Box, Path], users: dict[str, str]
) -> None:
    b, srv = served
    svc, admin, alice, bob = users["svc"], users["admin"], users["alice"], users["bob"]

    def through_sudo(caller: str, *args: str) -> subprocess.CompletedProcess[str]:
        return b.run_plain(svc, *args, env=sudo_env(b.env, caller), cwd=srv)

    # init, run through sudo as the service account: the person who ran it is the first administrator
    out = one_line(
        ok(
            through_sudo(
                admin,
                "init",
                "--demo",
                "--service-account",
                svc,
                "--name",
                "Pat Admin",
                "--email",
                "pat.admin@wmtn.nhs.example",
            )
        )
    )
    assert f"for the OS login {admin}" in out and f"service account: {svc}" in out
    key = srv / "var" / "audit.key"
    owned = [key] + ([Path(b.url.removeprefix("sqlite:///"))] if b.url.startswith("sqlite:///") else [])
    for path in owned:  # the service account's alone
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid(svc), 0o600), path
    admin_id = account_id(b, admin)
    assert rows(b, "SELECT kind, trigger, user_id, actor, role FROM auditevent WHERE kind = 'installation'") == [
        ("installation", "set_service_account", admin_id, "Pat Admin", "administrator")
    ]
    assert rows(b, "SELECT count(*) FROM account WHERE os_login = :svc", svc=svc) == [(0,)]
    me = ok_json(through_sudo(admin, "--json", "whoami"))
    assert (me["name"], me["os_login"], me["via"], me["service_account"]) == ("Pat Admin", admin, "sudo", svc)

    ok(through_sudo(admin, "user", "add", "Dr Asha Patel", "asha.patel@wmtn.nhs.example", "--os-login", alice))
    ok(through_sudo(admin, "user", "grant", alice, "network-manager", "--network", "WMTN"))
    ok(through_sudo(admin, "user", "add", "Mr Bob Stone", "bob.stone@wmtn.nhs.example", "--os-login", bob))
    asha = account_id(b, alice)
    mrh = {s["name"]: s["id"] for s in ok_json(through_sudo(alice, "--json", "service", "list"))}[MRH]

    # (a) alice running peerwatch as herself reaches neither the database nor the key: one line, nothing changed
    before = b.snapshot()
    line = refused(raise_ir(lambda *a: b.run_plain(alice, *a), mrh))
    if b.url.startswith("sqlite:///"):
        assert "database: unable to open database file" in line
    else:  # PostgreSQL lets her connect (its own credentials are the deployment's): the key refuses
        assert "audit key" in line
    assert b.snapshot() == before

    # (b) through sudo, she acts as herself: her account in every audit event, the session via sudo
    who = ok(through_sudo(alice, "whoami"))
    assert (
        f"Dr Asha Patel <asha.patel@wmtn.nhs.example>, account {asha} (active), via sudo as the service account {svc} from the OS login {alice}"
        in one_line(who)
    )
    assert ok_json(through_sudo(alice, "--json", "whoami"))["via"] == "sudo"
    raised = ok_json(raise_ir(lambda *a: through_sudo(alice, *a), mrh))
    fired = ok_json(through_sudo(alice, "--json", "risk", "fire", str(raised["id"]), "send_formal_notification"))
    assert fired["state"] == "awaiting_response"
    assert rows(b, "SELECT trigger, user_id, actor, role FROM auditevent WHERE kind = 'risk' ORDER BY id") == [
        ("raise", asha, "Dr Asha Patel", "network-manager"),
        ("send_formal_notification", asha, "Dr Asha Patel", "network-manager"),
    ]
    assert "intact" in ok(b.run_plain(svc, "audit", "verify", cwd=srv))  # the service account's key verifies

    # bob through sudo is bob: no role lent by the service account; the service account alone is nobody
    before = b.snapshot()
    line = refused(through_sudo(bob, "risk", "fire", str(raised["id"]), "pause_clock", "--note", "inquest"))
    assert line.startswith("error: Mr Bob Stone may not")
    line = refused(b.run_plain(svc, "risk", "fire", str(raised["id"]), "pause_clock", "--note", "x", cwd=srv))
    assert f"the OS account '{svc}' is not mapped to a peerwatch account" in line
    assert b.snapshot() == before


@as_root
@skip_on_postgres(
    "who a person is on the machine (OS users, sudo) does not depend on the database: the SQLite pass runs it"
)
def test_sudo_uid_counts_only_as_the_service_account_the_database_names(shared: Box, users: dict[str, str]) -> None:
    svc, admin, alice, bob = users["svc"], users["admin"], users["alice"], users["bob"]

    # init --service-account run as oneself (not through sudo as it): refused before anything is made
    line = refused(shared.run_plain(admin, "init", "--service-account", svc))
    assert f"init --service-account {svc} is run through sudo as that account" in line
    assert rows(shared, "SELECT count(*) FROM account") == [(1,)]  # the built-in system account only

    ok(shared.run_plain(admin, "init", "--demo", "--name", "Pat Admin", "--email", "pat.admin@wmtn.nhs.example"))
    ok(shared.run_plain(admin, "user", "add", "Dr Asha Patel", "asha.patel@wmtn.nhs.example", "--os-login", alice))
    ok(shared.run_plain(admin, "user", "grant", alice, "network-manager", "--network", "WMTN"))
    ok(shared.run_plain(admin, "user", "add", "Mr Bob Stone", "bob.stone@wmtn.nhs.example", "--os-login", bob))
    mrh = {s["name"]: s["id"] for s in ok_json(shared.run_plain(alice, "--json", "service", "list"))}[MRH]
    rid = str(ok_json(raise_ir(lambda *a: shared.run_plain(alice, *a), mrh))["id"])
    admin_id = account_id(shared, admin)

    # (d) no service account named in the database: the service account with SUDO_UID is only itself
    before = shared.snapshot()
    as_svc_for_alice = sudo_env(shared.env, alice)
    line = refused(shared.run_plain(svc, "risk", "fire", rid, "send_formal_notification", env=as_svc_for_alice))
    assert f"the OS account '{svc}' is not mapped to a peerwatch account" in line
    refused(shared.run_plain(svc, "whoami", env=as_svc_for_alice))

    # only an administrator names it, and only a dedicated OS account that exists here
    line = refused(shared.run_plain(alice, "installation", "service-account", svc))
    assert "Dr Asha Patel may not name the service account: only an administrator may" in line
    for name, says in (
        ("pwnosuchlogin", "there is no OS account 'pwnosuchlogin' on this machine"),
        ("root", "the service account may not be root"),
        (alice, f"the OS login {alice} is mapped to account"),
    ):
        assert says in refused(shared.run_plain(admin, "installation", "service-account", name)), name
    line = refused(shared.run_plain(admin, "init", "--service-account", svc))
    assert "this installation has administrators already" in line
    assert shared.snapshot() == before

    named = ok_json(shared.run_plain(admin, "--json", "installation", "service-account", svc))
    assert named == {"service_account": svc, "changed": True}
    assert rows(shared, "SELECT trigger, user_id, role FROM auditevent WHERE kind = 'installation'") == [
        ("set_service_account", admin_id, "administrator")
    ]
    assert f"service account {svc}" in one_line(ok(shared.run_plain(bob, "installation", "show")))

    # (c) SUDO_UID in a person's own environment changes nothing: bob is bob, alice is alice
    before = shared.snapshot()
    who = ok_json(shared.run_plain(bob, "--json", "whoami", env=sudo_env(shared.env, alice)))
    assert (who["name"], who["os_login"], who["via"]) == ("Mr Bob Stone", bob, "cli")
    line = refused(
        shared.run_plain(bob, "risk", "fire", rid, "send_formal_notification", env=sudo_env(shared.env, alice))
    )
    assert line.startswith("error: Mr Bob Stone may not")
    line = refused(shared.run_plain(alice, "user", "add", "Eve", "eve@example.nhs.uk", env=sudo_env(shared.env, admin)))
    assert "Dr Asha Patel may not add accounts: only an administrator may" in line
    # a SUDO_UID that is the service account's own, unknown or not a plain uid: the service account itself
    for bad in (str(uid(svc)), "abc", "-1", "4294967295", "99999999999", ""):
        line = refused(shared.run_plain(svc, "whoami", env=sudo_env(shared.env, alice, sudo_uid=bad)))
        assert f"the OS account '{svc}' is not mapped" in line, bad
    assert shared.snapshot() == before

    # now the service account named, through sudo alice is alice (and the admin still himself)
    who = ok_json(shared.run_plain(svc, "--json", "whoami", env=as_svc_for_alice))
    assert (who["name"], who["os_login"], who["via"]) == ("Dr Asha Patel", alice, "sudo")
    assert ok_json(shared.run_plain(admin, "--json", "whoami"))["via"] == "cli"

    # cleared: the service account is only itself again
    cleared = ok_json(shared.run_plain(admin, "--json", "installation", "service-account", "--clear"))
    assert cleared == {"service_account": None, "changed": True}
    refused(shared.run_plain(svc, "whoami", env=as_svc_for_alice))
    assert rows(shared, "SELECT trigger FROM auditevent WHERE kind = 'installation' ORDER BY id") == [
        ("set_service_account",),
        ("clear_service_account",),
    ]


# ---------------------------------------------------------------- (e) the rule, without OS users

LOGINS = {0: "root", 990: "pwsvc", 1000: "alice", 1001: "bob"}
UIDS = {login: n for n, login in LOGINS.items()}


def rule(service: str | None, euid_login: str, sudo_uid: str | None) -> str | None:
    return installation.caller_login(service, euid_login, sudo_uid, LOGINS.get, UIDS.get)


def test_the_rule_believes_sudo_uid_only_as_the_named_service_account() -> None:
    assert rule("pwsvc", "pwsvc", "1000") == "alice"
    assert rule("pwsvc", "pwsvc", "1001") == "bob"
    assert rule("pwsvc", "pwsvc", "0") == "root"  # root ran sudo -u pwsvc: root's login (mapped or refused)
    assert rule("pwsvc", "bob", "1000") is None  # bob as himself, SUDO_UID in his own environment
    assert rule("pwsvc", "root", "1000") is None
    assert rule(None, "pwsvc", "1000") is None  # no service account named in the database
    assert rule("", "pwsvc", "1000") is None
    assert rule("pwsvc", "pwsvc", None) is None  # the service account run without sudo (cron, a shell)
    assert rule("pwsvc", "pwsvc", "990") is None  # sudo -u pwsvc by pwsvc itself
    assert rule("pwsvc", "pwsvc", "4242") is None  # a uid this machine does not know
    for bad in ("", " ", "abc", "-1", "+1000", "1e3", "0x3e8", "1000 1001", "१०००", "4294967295", "99999999999"):
        assert rule("pwsvc", "pwsvc", bad) is None, bad


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's accounts, as the rule sees them, made up for the test."""
    monkeypatch.setattr(installation, "_login_of_uid", LOGINS.get)
    monkeypatch.setattr(installation, "_uid_of_login", UIDS.get)


def test_naming_the_service_account_and_whom_it_maps(db: Engine, lookups: None) -> None:
    alice = account(db, "Dr Asha Patel", ("network-manager",), os_login_name="alice")
    account(db, "Mr Bob Stone", (), os_login_name="bob")
    admin = account(db, "Pat Admin", ("administrator",), os_login_name="pat")
    clock = SystemClock()
    with Session(db, expire_on_commit=False) as s:
        assert installation.peer_login(s, "pwsvc", "1000") == "pwsvc"  # none named yet
        with pytest.raises(PermissionDenied, match="only an administrator may"):
            installation.set_service_account(s, person("Ann", "network-manager"), clock, "pwsvc")
        for name, says in (
            ("nosuch", "there is no OS account 'nosuch'"),
            ("root", "may not be root"),
            ("alice", "is mapped to account"),
            ("two words", "one OS login name"),
            ("", "one OS login name"),
        ):
            with pytest.raises(InvalidInput, match=says):
                installation.set_service_account(s, admin, clock, name)
        assert installation.set_service_account(s, admin, clock, " pwsvc ") is True
        assert installation.set_service_account(s, admin, clock, "pwsvc") is False  # unchanged: no event
        s.commit()
        assert installation.service_account(s) == "pwsvc"
        row = s.get(Installation, ROW_ID)
        assert row is not None and row.service_account == "pwsvc"
        events = s.exec(select(AuditEvent).where(AuditEvent.kind == "installation")).all()
        assert [(e.trigger, e.user_id, e.role, e.data) for e in events] == [
            ("set_service_account", admin.user_id, "administrator", {"service_account": "pwsvc", "before": None})
        ]

        p = installation.peer_principal(s, "pwsvc", "1000")
        assert (p.user_id, p.name, p.via, p.roles()) == (alice.user_id, "Dr Asha Patel", "sudo", ["network-manager"])
        assert installation.peer_principal(s, "pwsvc", "1000", "network-manager").prefer == "network-manager"
        bob = installation.peer_principal(s, "bob", "1000")  # bob's own environment: still bob
        assert (bob.name, bob.via) == ("Mr Bob Stone", "cli")
        with pytest.raises(MissingActor, match="'pwsvc' is not mapped"):
            installation.peer_principal(s, "pwsvc", "990")

        # init: the proposed account counts only on a new installation, and only through sudo as it
        assert installation.init_login(s, "pwsvc", "1000", "pwsvc") == "alice"  # as named already
        assert installation.init_login(s, "bob", "1000", None) == "bob"
        with pytest.raises(InvalidInput, match="has administrators already"):
            installation.init_login(s, "bob", "1000", "bob")  # no bob-as-service-account trick
        assert installation.set_service_account(s, admin, clock, None) is True
        assert installation.peer_login(s, "pwsvc", "1000") == "pwsvc"
        s.rollback()


def test_init_names_the_service_account_only_through_sudo_as_it(db: Engine, lookups: None) -> None:
    with Session(db) as s:
        assert not installation.has_administrator(s)
        assert installation.init_login(s, "pwsvc", "1000", "pwsvc") == "alice"
        assert installation.init_login(s, "alice", None, None) == "alice"
        with pytest.raises(InvalidInput, match="is run through sudo as that account"):
            installation.init_login(s, "alice", "1001", "pwsvc")  # run as oneself
        with pytest.raises(InvalidInput, match="is run through sudo as that account"):
            installation.init_login(s, "pwsvc", None, "pwsvc")  # the service account would be the administrator
        with pytest.raises(InvalidInput, match="may not be root"):
            installation.init_login(s, "root", "1000", "root")
