"""Issue 12 item 2 (entry): names, titles and addresses that would break a mail header, a file
name or an ICS line are refused at entry, wherever they come from, with one clear error and
nothing changed; rows stored before the rule are found by ``peerwatch check``."""

from __future__ import annotations

import json
import subprocess
from datetime import date

import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Contact, Organisation, Reviewer, Risk, Service
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, NotFound
from states.principal import Principal
from states.services import contacts, reviewers
from tests import support_accounts
from tests.databases import ON_POSTGRES
from tests.factories import person
from tests.factories import reference_data as seed_reference
from tests.support_cli import cli_env, run

HOSTILE = {
    "line separator": "Dr A\u2028Bcc: evil@x.org",
    "paragraph separator": "Dr A\u2029B",
    "next line": "Dr A\u0085B",
    "CR LF": "Dr A\r\nBcc: evil@x.org",
    "NUL": "Dr A\x00B",
    "tab": "Dr\tA",
    "escape": "Dr \x1b[31mA",
    "DEL": "Dr A\x7f",
}
BAD_EMAILS = {
    "CR LF header injection": "a@x.nhs.uk\r\nBcc: evil@x.org",
    "LF": "a@x.nhs.uk\n",
    "line separator": "a@x.nhs.uk\u2028",
    "NUL": "a\x00@x.nhs.uk",
    "space": "a b@x.nhs.uk",
    "two at signs": "a@b@x.nhs.uk",
    "no dot in domain": "a@localhost",
    "no at sign": "a.x.nhs.uk",
    "display name": "Dr A <a@x.nhs.uk>",
    "empty": "",
}


def _counts(session: Session) -> tuple[int, int, int, int]:
    return tuple(session.exec(select(func.count()).select_from(t)).one() for t in (Contact, AuditEvent, Risk, Service))  # type: ignore[return-value]


@pytest.mark.parametrize("what", list(HOSTILE))
def test_a_hostile_name_is_refused_through_the_use_case_with_nothing_changed(
    session: Session,
    services: dict[str, int],
    clock: FixedClock,
    what: str,
) -> None:
    before = _counts(session)
    with pytest.raises(InvalidInput, match=r"contact name .*one line of printable text.*nothing was changed"):
        contacts.add_contact(
            session,
            role="cqc",
            name=HOSTILE[what],
            email="a@cqc.org.uk",
            network_id=1,
            principal=person("Jo", "network-office"),
            clock=clock,
        )
    session.rollback()
    assert _counts(session) == before


@pytest.mark.parametrize("what", list(BAD_EMAILS))
def test_an_address_is_parsed_strictly(
    session: Session, services: dict[str, int], clock: FixedClock, what: str
) -> None:
    before = _counts(session)
    with pytest.raises(InvalidInput, match="contact email"):
        contacts.add_contact(
            session,
            role="cqc",
            name="CQC inspector",
            email=BAD_EMAILS[what],
            network_id=1,
            principal=person("Jo", "network-office"),
            clock=clock,
        )
    session.rollback()
    assert _counts(session) == before


def test_good_names_and_addresses_pass(
    db: Engine, session: Session, services: dict[str, int], clock: FixedClock
) -> None:
    """Non-Latin letters, apostrophes and internationalised addresses are not refused: neither in
    a contact written at once (checked again at flush) nor in an escalation address, which is
    proposed for a second person to confirm (issue 14)."""
    jo = support_accounts.account(db, "Jo", ("network-office",))  # a proposal names a real account
    for role, email in (("regional-quality-lead", "łukasz@england.nhs.uk"), ("cqc", "łukasz@cqc.org.uk")):
        c = contacts.add_contact(
            session,
            role=role,
            name="Łukasz Wiśniewski-O'Neill, Nguyễn Thị",
            email=email,
            network_id=1,
            principal=jo,
            clock=clock,
        )
        session.commit()
        assert c.id is not None and isinstance(c, Contact) == (role != "cqc")


def test_every_entry_path_meets_the_rule_seed_imports_and_the_engine(
    session: Session, services: dict[str, int], clock: FixedClock
) -> None:
    """Not a check in each CLI handler: a row added by any code (the seed, an import, the engine
    raising the risks found at a visit) is refused at flush."""
    org = session.exec(select(Organisation)).first()
    assert org is not None
    session.add(Service(name="Bad\u2028Service", kind="Burns", organisation_id=org.id, network_id=1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"service name 'Bad\\u2028Service' contains U\+2028 LINE SEPARATOR"):
        session.flush()
    session.rollback()
    session.add(Reviewer(name="Dr R", email="r@x.nhs.uk\r\nBcc: z@y.org", discipline="nurse"))
    with pytest.raises(InvalidInput, match="reviewer email"):
        session.flush()
    session.rollback()
    before = _counts(session)
    row = Risk(
        service_id=services["Midland Royal Major Trauma Centre"],
        level="SC",
        title="Rota\u2029gaps",
        identified_on=date(2026, 12, 11),
        visit_date=date(2026, 12, 11),
        state="new",
    )
    with pytest.raises(InvalidInput, match="risk title"):
        engine.create(session, "risk", row, "raise", principal=person("Jo", "network-manager"), clock=clock)
    session.rollback()
    assert _counts(session) == before
    # an edit of a loaded row is checked too (only the columns that changed)
    svc = session.get(Service, services["Valley Burns Service"])
    assert svc is not None
    svc.name = "Valley\x00Burns"
    session.add(svc)
    with pytest.raises(InvalidInput, match="NUL"):
        session.commit()
    session.rollback()


def test_a_panel_or_subgroup_member_named_in_a_trigger_is_checked_before_any_letter(
    session: Session,
    services: dict[str, int],
    clock: FixedClock,
) -> None:
    """People written to directly (their name and address given to the trigger) meet the same rule."""
    from states.engine.letters import compose
    from states.machines.spec import Letter, get_spec

    row = Risk(
        service_id=services["Midland Royal Major Trauma Centre"],
        level="SC",
        title="t",
        identified_on=date(2026, 12, 11),
        visit_date=date(2026, 12, 11),
        state="new",
    )
    out = engine.create(session, "risk", row, "raise", principal=person("Jo", "network-manager"), clock=clock)
    letter = Letter("chase", to=(), people=(("Dr X", "x@y.org\r\nBcc: all@nhs.uk"),))
    with pytest.raises(InvalidInput, match="recipient email"):
        compose(
            session,
            get_spec("risk"),
            out.row,
            [letter],
            key="k",
            now=clock.now(),
            today=date(2026, 12, 11),
            deadlines={},
        )


def test_ids_past_64_bits_are_not_found_not_a_crash(
    session: Session, services: dict[str, int], clock: FixedClock
) -> None:
    from states.services import milestones

    jo = person("Jo", "network-office")
    for call in (
        lambda: contacts.edit_contact(session, 2**64, name="X", effective=date(2027, 1, 4), principal=jo, clock=clock),
        lambda: contacts.retire_contact(session, -(2**70), effective=date(2027, 1, 4), principal=jo, clock=clock),
        lambda: reviewers.retire_reviewer(session, 2**63, effective=date(2027, 1, 4), principal=jo, clock=clock),
        lambda: milestones.mark_done(session, 2**64, principal=person("Jo", "network-manager"), clock=clock),
        lambda: milestones.add(
            session, 2**64, text="x", due_on=date(2027, 3, 1), principal=person("Jo", "network-manager"), clock=clock
        ),
    ):
        with pytest.raises(NotFound):
            call()


def _run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, run by the OS user of the test (mapped to an account by ``me``)."""
    return run(cli_env(PEERWATCH_DATABASE_URL=db_url), *args)


def test_the_command_line_refuses_with_one_line_and_exit_2(db_url: str, db: Engine, me: Principal) -> None:
    with Session(db) as s:
        seed_reference(s)
        s.commit()
        before = _counts(s)
    proc = _run(
        db_url,
        "contact",
        "add",
        "--role",
        "cqc",
        "--name",
        "Inspector\u2028Bcc: x@y.org",
        "--email",
        "c@cqc.org.uk",
        "--network",
        "WMTN",
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "U+2028 LINE SEPARATOR" in proc.stderr
    proc = _run(db_url, "contact", "edit", str(2**64), "--from", "2027-01-04", "--name", "X")
    assert proc.returncode == 2 and "not found" in proc.stderr
    with Session(db) as s:
        assert _counts(s) == before


def test_check_finds_rows_stored_before_the_rule_and_exits_non_zero(
    db_url: str, db: Engine, training: None, me: Principal
) -> None:
    """Rows written before the rule (here: by plain SQL, as an old version or a restore would)
    are listed with table, id, field and problem; the command exits 1 until they are fixed."""
    with Session(db) as s:
        seed_reference(s)
        s.commit()
    clean = _run(db_url, "--json", "check")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout) == {"ok": True, "problems": []}
    with db.begin() as conn:
        conn.execute(text("UPDATE service SET name = :n WHERE id = 2"), {"n": "Severnside\u2028Trauma Unit"})
        conn.execute(text("UPDATE contact SET email = :e WHERE id = 3"), {"e": "x@y.nhs.uk\r\nBcc: all@nhs.uk"})
        # PostgreSQL cannot store NUL in text at all, so there the old row holds an ESC instead
        conn.execute(
            text("UPDATE reviewer SET name = :n WHERE id = 1"), {"n": "Dr\x1bMaya" if ON_POSTGRES else "Dr\x00Maya"}
        )
    found = _run(db_url, "--json", "check")
    assert found.returncode == 1
    problems = json.loads(found.stdout)["problems"]
    assert {(p["table"], p["id"], p["field"]) for p in problems} == {
        ("service", 2, "name"),
        ("contact", 3, "email"),
        ("reviewer", 1, "name"),
    }
    assert any("U+2028" in p["problem"] for p in problems)
    table = _run(db_url, "check")
    assert table.returncode == 1 and "service" in table.stdout and "3 stored value(s) need correcting" in table.stderr
    # the contact is fixed through the audited edit: the replaced row is kept as history, no
    # longer in force, so no longer listed; the others by hand
    edit = _run(
        db_url,
        "--as-of",
        "2027-01-04",
        "contact",
        "edit",
        "3",
        "--from",
        "2027-01-04",
        "--email",
        "x@y.nhs.uk",
    )
    assert edit.returncode == 0, edit.stderr
    with db.begin() as conn:
        conn.execute(text("UPDATE service SET name = 'Severnside Trauma Unit' WHERE id = 2"))
        conn.execute(text("UPDATE reviewer SET name = 'Dr Maya Fenwick' WHERE id = 1"))
    assert _run(db_url, "--as-of", "2027-01-04", "check").returncode == 0
    assert (
        _run(db_url, "--as-of", "2027-01-03", "check").returncode == 1
    )  # the day before, the bad row was still in force
