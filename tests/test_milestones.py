"""Issue 12 item 13: changes a person makes outside a state machine are audited events with the
account acting (issue 14), through the engine's one audit chain: `risk milestone`, `milestone done`, `contact add`,
`outbox retry`, `reviewer add`. Milestones are owned by the service, can be marked done, and an
overdue one is chased by the sweep with its letter, once; dates from the working-day calendar."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Milestone, Network, OutboxMessage, Risk, Service
from models.accounts import User
from models.cycle import CarryForward
from notifications.dispatch import dispatch
from notifications.transports import FolderTransport
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import InvalidInput, PermissionDenied
from states.principal import Grant, Principal
from states.services import milestones
from tests import support_accounts
from tests.factories import person
from tests.factories import reference_data as seed_reference
from tests.support_cli import cli_env, run


def _events(session: Session, kind: str) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id)))  # type: ignore[arg-type]


def test_a_milestone_is_audited_chased_once_when_overdue_and_done(
    db: Engine,
    session: Session,
    raise_risk: Callable[..., Risk],
    tmp_path: Path,
) -> None:
    risk = raise_risk("SC")
    clock = FixedClock(date(2026, 12, 14))
    # Sat 26 Dec 2026 is not a working day (and Mon 28 Dec is the Boxing Day holiday): due Tue 29 Dec
    rec = milestones.add(
        session,
        risk.id,
        text="Consultant rota extended to 24/7",
        due_on=date(2026, 12, 26),  # type: ignore[arg-type]
        principal=person("Jo Smith", "network-manager"),
        clock=clock,
    )
    assert rec.row.due_on == date(2026, 12, 29) and "not a working day" in rec.notes[0]
    other = milestones.add(
        session,
        risk.id,
        text="Interim supervision agreed",
        working_days=10,
        principal=person("Jo Smith", "network-manager"),
        clock=clock,
    )
    assert other.row.due_on == date(2026, 12, 30)  # 10 working days from Mon 14 Dec, skipping 25 and 28 December
    session.commit()
    (added, _) = _events(session, "milestone")
    assert (added.trigger, added.actor, added.role, added.data["due_on"]) == (
        "add_milestone",
        "Jo Smith",
        "network-manager",
        "2026-12-29",
    )

    milestones.mark_done(
        session, other.row.id, principal=person("Sam Lee", "regional-lead"), clock=FixedClock(date(2026, 12, 30))
    )  # type: ignore[arg-type]
    session.commit()
    assert run_sweep(db, FixedClock(date(2026, 12, 29))).count("milestone_chased") == 0  # due today: not yet overdue
    summary = run_sweep(db, FixedClock(date(2026, 12, 30)))
    assert [a["milestone"] for a in summary.actions if a["action"] == "milestone_chased"] == [rec.row.id]
    assert run_sweep(db, FixedClock(date(2026, 12, 31))).count("milestone_chased") == 0  # once only

    letters = session.exec(select(OutboxMessage).where(OutboxMessage.template == "milestone_overdue")).all()
    assert {(m.to[0]["role"], m.category) for m in letters} == {
        ("service-lead", "chase"),
        ("chief-executive", "chase"),
        ("network-manager", "chase"),
    }
    chased = _events(session, "milestone")[-1]
    assert (chased.item_id, chased.trigger, chased.actor, chased.to_state) == (
        rec.row.id,
        "chase_milestone",
        "peerwatch-sweeper",
        "chased",
    )
    assert chased.data["reply_by"] == "2027-01-07"  # 5 working days (local policy) from Wed 30 Dec, skipping 1 January

    # the letter, sent, is read back by Python's email parser
    folder = tmp_path / "mail"
    dispatch(session, FolderTransport(folder), FixedClock(date(2026, 12, 30)))
    parsed = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in folder.glob("*.eml")]
    mine = [m for m in parsed if "milestone overdue" in str(m["Subject"])]
    assert mine and all(not str(m["Subject"]).startswith(" ") for m in mine)
    body = mine[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Consultant rota extended to 24/7" in body and "Tue 29 Dec 2026" in body and "Thu 07 Jan 2027" in body

    milestones.mark_done(
        session, rec.row.id, principal=person("Jo Smith", "network-manager"), clock=FixedClock(date(2027, 1, 6))
    )  # type: ignore[arg-type]
    session.commit()
    done = _events(session, "milestone")[-1]
    assert (done.trigger, done.from_state, done.to_state, done.data["late"]) == (
        "milestone_done",
        "chased",
        "done",
        True,
    )
    with pytest.raises(InvalidInput, match="already marked done on 2027-01-06 by Jo Smith"):
        milestones.mark_done(
            session, rec.row.id, principal=person("Jo", "network-manager"), clock=FixedClock(date(2027, 1, 7))
        )  # type: ignore[arg-type]
    assert engine.verify_chain(session)[2] is None


def test_milestones_refuse_bad_input_with_nothing_changed(session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("SC")
    clock = FixedClock(date(2026, 12, 14))
    home = session.exec(select(Service).where(Service.id == risk.service_id)).one().network_id
    other_network = session.exec(select(Network).where(Network.id != home)).first()
    assert other_network is not None and other_network.id is not None
    elsewhere = Principal(4242, "Cy Elsewhere", (Grant("network-manager", "network", other_network.id),))
    before = session.exec(select(func.count()).select_from(AuditEvent)).one()
    cases = [
        (dict(text="x", due_on=date(2026, 12, 14)), InvalidInput, "not after today"),
        (dict(text="x"), InvalidInput, "due date \\(YYYY-MM-DD\\) or a number of working days"),
        (dict(text="x", due_on=date(2027, 1, 5), working_days=3), InvalidInput, "not both"),
        (dict(text="x\u2028Bcc: y", due_on=date(2027, 1, 5)), InvalidInput, "milestone text"),
        (dict(text="x", due_on=date(2027, 1, 5), owner_role="pope"), InvalidInput, "unknown contact role"),
        # an auditor reads and never writes; a staff role granted for another network does not reach this risk
        (dict(text="x", due_on=date(2027, 1, 5), principal=person("Ann", "auditor")), PermissionDenied, "may not"),
        (dict(text="x", due_on=date(2027, 1, 5), principal=elsewhere), PermissionDenied, "not in the scope"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            milestones.add(session, risk.id, **{"principal": person("Jo", "network-manager"), "clock": clock, **kwargs})  # type: ignore[arg-type]
        session.rollback()
    with pytest.raises(TypeError, match="principal"):  # no principal, no milestone: there is no default account
        milestones.add(session, risk.id, text="x", due_on=date(2027, 1, 5), clock=clock)  # type: ignore[call-arg]
    assert session.exec(select(func.count()).select_from(Milestone)).one() == 0
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == before
    m = milestones.add(
        session, risk.id, text="x", due_on=date(2027, 1, 5), principal=person("Jo", "network-manager"), clock=clock
    )  # type: ignore[arg-type]
    session.commit()
    with pytest.raises(InvalidInput, match="after today"):
        milestones.mark_done(
            session, m.row.id, principal=person("Jo", "network-manager"), clock=clock, on=date(2026, 12, 15)
        )  # type: ignore[arg-type]


def test_a_closed_risks_milestones_are_not_chased(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("GC")
    milestones.add(
        session,
        risk.id,
        text="x",
        due_on=date(2027, 1, 5),
        principal=person("Jo", "network-manager"),  # type: ignore[arg-type]
        clock=FixedClock(date(2026, 12, 14)),
    )
    engine.fire(
        session,
        "risk",
        risk.id,
        "close",
        principal=person("Jo", "network-manager"),
        note="resolved",  # type: ignore[arg-type]
        clock=FixedClock(date(2026, 12, 15)),
    )
    session.commit()
    assert run_sweep(db, FixedClock(date(2027, 1, 7))).count("milestone_chased") == 0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, run by the OS user of the test (peer authentication), in this
    test's database (``PEERWATCH_DATABASE_URL``, set by the ``db_url`` fixture)."""
    return run(cli_env(), *args)


def _refused(proc: subprocess.CompletedProcess[str], says: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _ids(db: Engine) -> dict[str, int]:
    with Session(db) as s:
        return {u.name: u.id for u in s.exec(select(User)) if u.id is not None}


def test_commands_that_write_stored_data_leave_an_audited_event_with_the_account(
    db_url: str, db: Engine, training: None
) -> None:
    """Each command acts as an account (the OS user's, or ``--as`` in a training database) and its
    event records that account's id and name and the role it acted in; nobody can type a name."""
    support_accounts.me(db, name="Pat Operator")
    for name, role in (("Jo Smith", "network-manager"), ("Sam Lee", "regional-lead"), ("Ops Person", "operator")):
        support_accounts.account(db, name, (role,))
    support_accounts.account(db, "Ann Auditor", ("auditor",))
    with Session(db) as s:
        services = seed_reference(s)
        s.commit()
    sid = str(services["Midland Royal Major Trauma Centre"])
    raised = _run(
        "--as-of", "2026-12-11", "--as", "Jo Smith", "risk", "raise", "--service", sid, "--level", "SC",
        "--title", "Rota gaps", "--visit-date", "2026-12-11",
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    steps = [
        ["--as-of", "2026-12-14", "risk", "milestone", "1", "--due", "2027-03-01", "--text", "Rota extended",
         "--role", "network-manager"],
        ["--as-of", "2027-03-02", "--as", "Sam Lee", "milestone", "done", "1"],
        ["--as", "Jo Smith", "contact", "add", "--role", "regional-quality-lead", "--name", "Ms New Lead",
         "--email", "new.lead@nhs.net", "--network", "WMTN"],
        ["reviewer", "add", "--name", "Dr Rae Newton", "--email", "rae@x.nhs.uk", "--discipline", "nurse"],
        ["network", "add", "--code", "NEWN", "--name", "New Network", "--role", "operator"],
        ["--as", "Jo Smith", "service", "add", "--name", "New Burns Service", "--kind", "Burns",
         "--organisation", "New NHS Trust", "--network", "NEWN"],
    ]  # fmt: skip
    for args in steps:
        proc = _run(*args)
        assert proc.returncode == 0, (args, proc.stderr)
    with db.begin() as conn:  # a letter that failed: queued again by hand
        conn.execute(
            text(
                'INSERT INTO outboxmessage (idempotency_key, kind, item_id, template, category, context, "to", cc, status, '
                "attempts, created_at, next_attempt_at, last_error) VALUES ('k1', 'risk', 1, 'chase', 'chase', '{}', '[]', "
                "'[]', 'failed', 5, '2027-01-04 09:00:00', '2027-01-04 09:00:00', 'relay down')"
            )
        )
    proc = _run("--as", "Ops Person", "outbox", "retry", "1")
    assert proc.returncode == 0, proc.stderr
    ids = _ids(db)
    with Session(db) as s:
        got = [
            (e.kind, e.trigger, e.actor, e.role, e.user_id)
            for e in s.exec(select(AuditEvent).where(AuditEvent.kind != "risk").order_by(AuditEvent.id))  # type: ignore[arg-type]
        ]
        assert got == [
            ("milestone", "add_milestone", "Pat Operator", "network-manager", ids["Pat Operator"]),
            ("milestone", "milestone_done", "Sam Lee", "regional-lead", ids["Sam Lee"]),
            ("contact", "add_contact", "Jo Smith", "network-manager", ids["Jo Smith"]),
            ("reviewer", "add_reviewer", "Pat Operator", "network-office", ids["Pat Operator"]),
            ("network", "add_network", "Pat Operator", "operator", ids["Pat Operator"]),
            ("organisation", "add_organisation", "Jo Smith", "network-manager", ids["Jo Smith"]),  # the new Trust
            ("service", "add_service", "Jo Smith", "network-manager", ids["Jo Smith"]),
            ("outbox", "retry", "Ops Person", "operator", ids["Ops Person"]),
        ]
        assert s.exec(select(Milestone)).one().done_by == "Sam Lee"
        assert engine.verify_chain(s)[2] is None
    # no name can be typed; an account that does not exist, or an auditor, is refused with nothing written
    _refused(_run("milestone", "done", "1", "--actor", "Sam Lee"), "--actor")
    _refused(_run("--as", "Nobody At All", "milestone", "done", "1"), "no account 'Nobody At All'")
    _refused(_run("--as", "Ann Auditor", "milestone", "done", "1"), "Ann Auditor may not")
    _refused(_run("--as", "Ann Auditor", "network", "add", "--code", "ANN", "--name", "Ann's"), "Ann Auditor may not")
    with Session(db) as s:
        assert s.exec(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind != "risk")).one() == 8


def test_cqc_record_and_standards_load_are_audited_with_the_account(
    db_url: str, db: Engine, training: None, tmp_path: Path
) -> None:
    """`cqc record` and `selfassessment standards load` write stored data: each is an audited
    change with the account acting (and the role it acts in), on the verified chain."""
    support_accounts.me(db, name="Pat Operator")
    support_accounts.account(db, "Nia Evans", ("regional-lead",))
    support_accounts.account(db, "Jo Smith", ("network-manager",))
    support_accounts.account(db, "Ann Auditor", ("auditor",))
    with Session(db) as s:
        seed_reference(s)
        s.commit()
    org = "Midland Royal Hospitals NHS Trust"
    ratings = ["--overall", "good", "--safe", "good", "--well-led", "good"]
    proc = _run("--as-of", "2026-12-11", "cqc", "record", "--organisation", org, "--date", "2026-11-20", *ratings)
    assert proc.returncode == 0, proc.stderr
    proc = _run(
        "--as-of", "2026-12-11", "--as", "Nia Evans", "cqc", "record", "--organisation", org, "--date", "2026-12-01",
        *ratings,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    library = str(Path(__file__).resolve().parents[1] / "docs" / "standards-example.yaml")
    proc = _run("--as-of", "2026-12-11", "selfassessment", "standards", "load", library)
    assert proc.returncode == 0, proc.stderr
    ids = _ids(db)
    with Session(db) as s:
        got = [
            (e.kind, e.trigger, e.actor, e.role, e.user_id)
            for e in s.exec(select(AuditEvent).order_by(AuditEvent.id))  # type: ignore[arg-type]
        ]
        sets = s.execute(text("SELECT count(*) FROM standardset")).scalar_one()
        assert sets >= 1
        assert got == [
            ("cqc_rating", "record_cqc_assessment", "Pat Operator", "network-office", ids["Pat Operator"]),
            ("cqc_rating", "record_cqc_assessment", "Nia Evans", "regional-lead", ids["Nia Evans"]),
            *[("standard_set", "load_standard_set", "Pat Operator", "network-office", ids["Pat Operator"])] * sets,
        ]
        first = s.exec(select(AuditEvent).order_by(AuditEvent.id)).first()  # type: ignore[arg-type]
        assert first is not None and first.data["assessed_on"] == "2026-11-20" and first.data["safe"] == "Good"
        recorded = s.execute(text("SELECT recorded_by, recorded_role FROM cqcrating ORDER BY id")).all()
        assert [tuple(r) for r in recorded] == [("Pat Operator", "network-office"), ("Nia Evans", "regional-lead")]
        assert engine.verify_chain(s)[2] is None
    # a newer set supersedes the current one: both audited, with the account that loaded it
    newer = tmp_path / "newer.json"
    newer.write_text(
        json.dumps(
            {
                "service_kind": "Adult Critical Care",
                "name": "Ten standards",
                "version": "2026.1",
                "effective_from": "2026-04-01",
                "standards": [
                    {
                        "ref": f"{n}.1",
                        "descriptor": f"standard {n}",
                        "criteria_met": "yes",
                        "criteria_partly": "partly",
                        "criteria_unmet": "no",
                    }
                    for n in range(1, 11)
                ],
            }
        )
    )
    proc = _run("--as-of", "2026-12-11", "--as", "Jo Smith", "selfassessment", "standards", "load", str(newer))
    assert proc.returncode == 0, proc.stderr
    # nobody can be named, an unknown account and the auditor are refused: nothing written
    before = _audit_count(db)
    cqc = ["cqc", "record", "--organisation", org, "--date", "2026-12-05", *ratings]
    _refused(_run("--as-of", "2026-12-11", *cqc, "--actor", "Nia Evans"), "--actor")
    _refused(_run("--as-of", "2026-12-11", "--as", "Nobody At All", *cqc), "no account 'Nobody At All'")
    _refused(_run("--as", "Ann Auditor", "selfassessment", "standards", "load", library), "Ann Auditor may not")
    _refused(_run("--as-of", "2026-12-11", "--as", "Ann Auditor", *cqc), "Ann Auditor may not")
    assert _audit_count(db) == before
    with Session(db) as s:
        last = list(s.exec(select(AuditEvent).where(AuditEvent.kind == "standard_set").order_by(AuditEvent.id)))[sets:]  # type: ignore[arg-type]
        assert {(e.trigger, e.actor, e.user_id) for e in last} == {
            ("load_standard_set", "Jo Smith", ids["Jo Smith"]),
            ("supersede_standard_set", "Jo Smith", ids["Jo Smith"]),
        }
        assert s.execute(text("SELECT count(*) FROM cqcrating")).scalar_one() == 2
        assert engine.verify_chain(s)[2] is None


def _audit_count(db: Engine) -> int:
    with Session(db) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


def test_cycle_plan_and_set_quarter_are_audited_with_the_account(db_url: str, db: Engine, training: None) -> None:
    """`cycle plan` (phases and the open concerns carried into a new cycle) and `cycle set-quarter`
    (the network's quarter, even with no phase to move) are audited with the account acting."""
    support_accounts.me(db, name="Pat Operator")
    support_accounts.account(db, "Jo Smith", ("network-manager",))
    support_accounts.account(db, "Sam Lee", ("network-manager", "regional-lead"))
    with Session(db) as s:
        services = seed_reference(s)
        s.commit()
    sid = str(services["Midland Royal Major Trauma Centre"])
    raised = _run(
        "--as-of", "2026-12-11", "--as", "Jo Smith", "risk", "raise", "--service", sid, "--level", "SC",
        "--title", "Rota gaps", "--visit-date", "2026-12-11",
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    proc = _run(
        "--as-of", "2027-04-01", "--as", "Sam Lee", "cycle", "plan", "--network", "WMTN", "--year", "2027",
        "--role", "network-manager",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ids = _ids(db)
    with Session(db) as s:
        planned = list(s.exec(select(AuditEvent).where(AuditEvent.kind == "phase")))
        carried = list(s.exec(select(AuditEvent).where(AuditEvent.kind == "carry_forward")))
        assert planned and {(e.trigger, e.actor, e.role, e.user_id) for e in planned} == {
            ("plan", "Sam Lee", "network-manager", ids["Sam Lee"])
        }
        assert [(e.trigger, e.actor, e.role, e.data["item_id"]) for e in carried] == [
            ("carry_forward", "Sam Lee", "network-manager", 1)
        ]
        assert s.exec(select(func.count()).select_from(CarryForward)).one() == 1
    # 2028-29 is not planned yet: no phase to move, but the network's choice is stored, so audited
    proc = _run(
        "--as-of", "2027-04-01", "cycle", "set-quarter", "--network", "WMTN", "--step", "visits", "--quarter", "Q3",
        "--from-year", "2028",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with Session(db) as s:
        (moved,) = s.exec(select(AuditEvent).where(AuditEvent.kind == "phase_quarter")).all()
        assert (moved.trigger, moved.actor, moved.role, moved.user_id, moved.to_state, moved.data["from_year"]) == (
            "set_quarter",
            "Pat Operator",
            "network-manager",
            ids["Pat Operator"],
            "Q3",
            2028,
        )
        assert engine.verify_chain(s)[2] is None
