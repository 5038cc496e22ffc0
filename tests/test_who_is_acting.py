"""The probes of issue 14, each now refused (or detected) with one ``error:`` line and nothing
changed, through the real command line run as the OS user of the test (peer authentication).

The probes of the audit chain, the contacts and the Prefect ``fire`` flow have their own files:
tests/test_audit_keys.py, tests/test_audit_replay.py, tests/test_contact_four_eyes.py and
tests/test_flows*.py (named in docs/security.md)."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models import AuditEvent, Deadline, Risk
from models.accounts import User
from states import engine
from states.clock import SystemClock, local_date
from states.errors import BadDate, InvalidInput, PermissionDenied
from states.roles import ADMINISTRATOR as ADMIN
from states.services import accounts, intake, milestones
from tests import support_accounts
from tests.factories import MRH, person
from tests.support_cli import cli_env, ok, run, snapshot


def _risk_now(db: Engine, services: dict[str, int], level: str = "IR", to: str | None = None) -> int:
    """An IR raised today on the real clock (a person's CLI action happens now, so the item must
    not have been changed later than now), moved on to ``to`` by a Network Manager."""
    today = local_date(SystemClock().now())
    nm = person("Dr Asha Patel", "network-manager")
    with Session(db, expire_on_commit=False) as s:
        row = Risk(
            service_id=services[MRH], level=level, title=f"{level} at visit", identified_on=today, visit_date=today
        )
        out = engine.create(s, "risk", row, "raise", principal=nm, clock=SystemClock())
        if to == "awaiting_response":
            engine.fire(s, "risk", out.row.id, "send_formal_notification", principal=nm, clock=SystemClock())  # type: ignore[arg-type]
        s.commit()
        assert out.row.id is not None
        return out.row.id


def _error_line(proc: Any) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def test_someone_elses_name_cannot_be_typed_and_a_role_not_held_is_refused(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    """Probe: `risk fire 1 withdraw --actor "Tom Hughes" --role regional-lead` withdrew an IR in
    someone else's name. Now there is no --actor, and --role chooses only among one's own roles."""
    support_accounts.me(db, roles=("operator",), name="Ola Operator")
    rid = _risk_now(db, services)
    before = snapshot(db_url)
    env = cli_env()
    line = _error_line(
        run(
            env, "risk", "fire", str(rid), "withdraw", "--actor", "Tom Hughes", "--role", "regional-lead", "--note", "x"
        )
    )
    assert "--actor" in line
    line = _error_line(run(env, "risk", "fire", str(rid), "withdraw", "--role", "regional-lead", "--note", "x"))
    assert "does not hold the role 'regional-lead'" in line and "Ola Operator" in line
    line = _error_line(run(env, "risk", "fire", str(rid), "withdraw", "--note", "x"))
    assert "may not fire 'withdraw'" in line
    assert snapshot(db_url) == before
    with Session(db) as s:
        refused = s.exec(text("SELECT user_id, actor FROM refusedattempt WHERE trigger = 'withdraw'")).all()  # type: ignore[call-overload]
        me = s.exec(select(User).where(User.name == "Ola Operator")).one()
    assert [(r[0], r[1]) for r in refused] == [(me.id, "Ola Operator")]  # the engine's refusal names the account


def test_nobody_can_act_as_the_system(db_url: str, db: Engine, services: dict[str, int]) -> None:
    """Probe: `--actor peerwatch-sweeper --role system` escalated an IR on day 1 of its window."""
    support_accounts.me(db, roles=(*support_accounts.EVERY_STAFF_ROLE, ADMIN))
    rid = _risk_now(db, services, to="awaiting_response")
    before = snapshot(db_url)
    line = _error_line(run(cli_env(), "risk", "fire", str(rid), "no_response", "--role", "system"))
    assert "does not hold the role 'system'" in line
    assert snapshot(db_url) == before
    with Session(db) as s:  # no administrator can grant it, and the database refuses it outright
        admin = accounts.principal_for(s, s.exec(select(User).where(User.name == "Test Operator")).one(), "test")
        with pytest.raises(InvalidInput, match="unknown role 'system'"):
            accounts.grant(s, admin, SystemClock(), "Test Operator", "system")
    with Session(db) as s, pytest.raises(IntegrityError):
        s.exec(  # type: ignore[call-overload]
            text(
                "INSERT INTO role_grant (user_id, role, scope, granted_at, source) "
                "VALUES (2, 'system', 'installation', CURRENT_TIMESTAMP, 'sql')"
            )
        )
        s.commit()


def test_four_eyes_is_two_accounts_not_two_spellings(db_url: str, db: Engine, services: dict[str, int]) -> None:
    """Probe: four eyes was met by "Jo Smith" then "Jo  Smith". Now the proposer and the
    confirmer are compared by account: the same account twice is refused, whatever it types."""
    support_accounts.me(db, roles=(*support_accounts.EVERY_STAFF_ROLE, ADMIN))
    rid = _risk_now(db, services)
    env = cli_env()
    ok(run(env, "permissions", "set", "risk", "rescore", "--four-eyes"))  # an administrator's audited change
    params = ["--param", "impact=5", "--param", "likelihood=4", "--role", "network-manager"]
    out = ok(run(env, "--json", "risk", "fire", str(rid), "rescore", *params))
    assert json.loads(out)["proposed"] is True
    before = snapshot(db_url)
    line = _error_line(run(env, "risk", "fire", str(rid), "rescore", *params))
    assert "needs four eyes" in line and "different person" in line
    assert snapshot(db_url) == before


def test_the_permissions_environment_variable_changes_nothing(
    db_url: str, db: Engine, services: dict[str, int], tmp_path: Path
) -> None:
    """Probe: PEERWATCH_PERMISSIONS (any user's environment) granted `operator` the right to withdraw."""
    support_accounts.me(db, roles=("operator",))
    rid = _risk_now(db, services)
    grant = tmp_path / "perms.yaml"
    grant.write_text("risk:\n  withdraw: [operator]\n")
    before = snapshot(db_url)
    line = _error_line(
        run(cli_env(PEERWATCH_PERMISSIONS=str(grant)), "risk", "fire", str(rid), "withdraw", "--note", "gone")
    )
    assert "may not fire 'withdraw'" in line
    assert snapshot(db_url) == before


@pytest.mark.parametrize(
    ("as_of", "trigger", "params"),
    [
        ("2099-12-31", "rescore", ["--param", "impact=2", "--param", "likelihood=2"]),  # froze chasing for ever
        ("2026-01-05", "response_adequate", []),  # a late response back-dated
    ],
)
def test_a_persons_action_happens_now_not_on_a_date_they_type(
    db_url: str, db: Engine, services: dict[str, int], as_of: str, trigger: str, params: list[str]
) -> None:
    """Probe: `--as-of 2099-12-31 risk fire 1 rescore` froze the IR's chasing for ever; a late
    response could be back-dated. Outside a training database --as-of on an action is refused."""
    support_accounts.me(db)
    rid = _risk_now(db, services, to="awaiting_response")
    before = snapshot(db_url)
    line = _error_line(
        run(cli_env(), "--as-of", as_of, "risk", "fire", str(rid), trigger, "--role", "network-manager", *params)
    )
    assert f"--as-of {as_of} refused" in line and "training database" in line
    assert snapshot(db_url) == before
    proc = run(cli_env(), "--as-of", as_of, "risk", "show", str(rid))  # reading as of a date is still allowed
    ok(proc)


def test_an_action_records_the_account_and_both_times(db: Engine, services: dict[str, int]) -> None:
    """The audit event names the account (id and display name at the time), the effective time,
    and the wall-clock time it was recorded."""
    me = support_accounts.me(db, name="Dr Asha Patel")
    rid = _risk_now(db, services, to="awaiting_response")
    ok(run(cli_env(), "risk", "fire", str(rid), "response_adequate", "--role", "regional-lead"))
    with Session(db) as s:
        s.exec(text("UPDATE account SET name = 'Dr Asha Patel-Jones' WHERE id = :id").bindparams(id=me.user_id))  # type: ignore[call-overload]
        s.commit()
        e = s.exec(select(AuditEvent).where(AuditEvent.trigger == "response_adequate")).one()
    assert (e.user_id, e.actor, e.role) == (me.user_id, "Dr Asha Patel", "regional-lead")
    assert e.recorded_at is not None and abs((e.recorded_at - e.at).total_seconds()) < 120
    assert e.key_id == "test-1"


@pytest.mark.parametrize(("via", "noted"), [("cli", False), ("sudo", True), ("token", True), ("training", True)])
def test_the_event_says_how_the_account_was_authenticated_when_not_the_plain_command_line(
    db: Engine, services: dict[str, int], via: str, noted: bool
) -> None:
    """Through sudo as the service account, a personal access token or ``--as`` in a training
    database: the audit event's data carries ``via`` (the command line's own peer
    authentication and the system are the default and are not noted)."""
    acting = dataclasses.replace(person("Dr Asha Patel", "network-manager"), via=via)
    rid = _risk_now(db, services)
    with Session(db) as s:
        engine.fire(s, "risk", rid, "send_formal_notification", principal=acting, clock=SystemClock())
        s.commit()
        e = s.exec(select(AuditEvent).where(AuditEvent.trigger == "send_formal_notification")).one()
    assert e.data.get("via") == (via if noted else None)


@pytest.mark.parametrize("name", ["Jo\u2028Smith", "Jo\u2029Smith", "Jo\u0085Smith", "Jo\r\nSmith", "Jo\x1bSmith"])
def test_an_account_name_with_a_line_separator_is_refused_not_folded(db: Engine, name: str) -> None:
    """Hostile input is normal input: one clear error, nothing stored (not silently folded into a space)."""
    admin = support_accounts.me(db, roles=(ADMIN,))
    with Session(db) as s:
        before = len(s.exec(select(User)).all())
        with pytest.raises(InvalidInput, match="one line of printable text"):
            accounts.add_user(s, admin, SystemClock(), name=name, email="jo.smith@example.nhs.uk")
        s.rollback()
        assert len(s.exec(select(User)).all()) == before
        with pytest.raises(InvalidInput, match="one line of printable text"):
            accounts.create_token(s, admin, SystemClock(), name)


def test_a_refusal_before_the_engine_is_recorded_with_the_account_and_the_os_login(
    db_url: str, db: Engine, services: dict[str, int]
) -> None:
    """A role the account does not hold, or --as-of on an action, is refused before the engine
    sees the trigger: the refusal is recorded too (kind ``command``), with the account the OS
    login maps to and the login, never the values typed."""
    me = support_accounts.me(db, roles=("operator",), name="Ola Operator")
    rid = _risk_now(db, services)
    _error_line(run(cli_env(), "risk", "fire", str(rid), "withdraw", "--role", "regional-lead", "--note", "secret"))
    _error_line(run(cli_env(), "--as-of", "2099-12-31", "risk", "fire", str(rid), "rescore"))
    with Session(db) as s:
        rows = s.exec(  # type: ignore[call-overload]
            text(
                "SELECT kind, \"trigger\", user_id, actor, data FROM refusedattempt WHERE kind = 'command' ORDER BY id"
            )
        ).all()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("command", "risk fire", me.user_id, "Ola Operator"),
        ("command", "risk fire", me.user_id, "Ola Operator"),
    ]
    assert all("secret" not in str(r[4]) and "os_login" in str(r[4]) for r in rows)


def test_dates_a_person_types_cannot_hold_off_a_chase_or_hide_lateness(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    """A complaint "received" in 2099 would hold off its acknowledgement for ever; a milestone
    "done" before today hides that it was recorded late unless someone says how it is known."""
    today = local_date(SystemClock().now())
    office = person("Office", "network-office")
    with pytest.raises(InvalidInput, match="after today"):
        intake.receive_complaint(
            session,
            network="WMTN",
            category="arrangements",
            from_name="K Irwin",
            from_email="k.irwin@example.nhs.uk",
            summary="the visit's arrangements",
            service=None,
            about_person=False,
            received=date(2099, 12, 31),
            principal=office,
            clock=SystemClock(),
        )
    session.rollback()
    rid = _risk_now(db, services)
    nm = person("Dr Asha Patel", "network-manager")
    due = today + timedelta(days=14)
    m = milestones.add(session, rid, text="Rota extended", due_on=due, principal=nm, clock=SystemClock()).row
    session.commit()
    with pytest.raises(InvalidInput, match="needs a note"):
        milestones.mark_done(session, m.id, principal=nm, clock=SystemClock(), on=today - timedelta(days=3))  # type: ignore[arg-type]
    session.rollback()
    milestones.mark_done(session, m.id, principal=nm, clock=SystemClock(), on=today - timedelta(days=3), note="minutes")  # type: ignore[arg-type]
    session.commit()
    e = session.exec(select(AuditEvent).where(AuditEvent.trigger == "milestone_done")).one()
    assert e.data["recorded_on"] == today.isoformat() and e.data["done_on"] == (today - timedelta(days=3)).isoformat()


def test_demo_data_and_a_restore_over_real_accounts_are_an_administrators(
    db_url: str, db: Engine, tmp_path: Path
) -> None:
    """`init --demo` (reference data and escalation addresses) and `restore` over a database
    with people's accounts are refused to an account that is not an administrator."""
    support_accounts.account(db, "Pat Admin", (ADMIN,))
    support_accounts.me(db, roles=("operator",), name="Ola Operator")
    before = snapshot(db_url)
    line = _error_line(run(cli_env(), "init", "--demo"))
    assert "may not load the demo reference data" in line
    assert snapshot(db_url) == before
    ok(run(cli_env(), "backup", str(tmp_path / "copy.db")))
    line = _error_line(run(cli_env(), "restore", "--replace", str(tmp_path / "copy.db")))
    assert "may not restore a backup over this database" in line
    assert snapshot(db_url) == before


def test_one_extension_cannot_freeze_a_chase_and_an_administrator_cannot_grant_themselves_a_clinical_role(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    """`extend_deadline days=100000` froze chasing for ever without --as-of; an administrator
    granting themselves network-manager could then fire clinical triggers."""
    rid = _risk_now(db, services)
    nm = person("Dr Asha Patel", "network-manager")
    before = session.exec(select(Deadline).where(Deadline.item_id == rid)).one().due_on
    for params in ({"days": 100000}, {"until": "9999-12-31"}):
        with pytest.raises(BadDate, match="at most 60 working days"):
            engine.fire(
                session, "risk", rid, "extend_deadline", principal=nm, clock=SystemClock(), note="x", params=params
            )
        session.rollback()
    engine.fire(
        session, "risk", rid, "extend_deadline", principal=nm, clock=SystemClock(), note="x", params={"days": 60}
    )
    session.commit()
    assert session.exec(select(Deadline).where(Deadline.item_id == rid)).one().due_on > before
    admin = support_accounts.me(db, roles=(ADMIN,), name="Pat Admin")
    with pytest.raises(PermissionDenied, match="own account"):
        accounts.grant(session, admin, SystemClock(), "Pat Admin", "network-manager")
