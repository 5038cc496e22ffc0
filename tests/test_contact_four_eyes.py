"""Issue 14: a change to an escalation address (CQC, Commissioning Lead, commissioners, ICB, TPD,
RA, ASCT) needs a second person. One account proposes it (audited), nothing the letters use
changes, and a different account (compared by user id) confirms it; a stale confirmation, the
proposer confirming, and anyone but the proposer withdrawing are refused with nothing changed.
The issue's probe (``contact add --role cqc --email ...@evil.example`` redirected the escalation
letter, unaudited) is run through the command line as two real accounts in a training database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Contact, Service
from models.accounts import PendingChange
from states import engine
from states.clock import FixedClock, local_date
from states.engine.letters import resolve
from states.errors import InvalidInput, NotFound, PermissionDenied, StaleVersion
from states.principal import Grant, Principal
from states.services import contacts
from tests.factories import MRH, person
from tests.support_accounts import account
from tests.support_cli import cli_env, ok, run

CLOCK = FixedClock(date(2027, 1, 11))


def _scope(session: Session, services: dict[str, int]) -> dict[str, int | None]:
    svc = session.get(Service, services[MRH])
    assert svc is not None
    return {"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": svc.network_id}


def _counts(session: Session) -> tuple[int, int, int]:
    return (
        session.exec(select(func.count()).select_from(Contact)).one(),
        session.exec(select(func.count()).select_from(AuditEvent)).one(),
        session.exec(select(func.count()).select_from(PendingChange).where(PendingChange.status == "pending")).one(),
    )


def test_the_set_that_needs_four_eyes_is_the_escalation_ladder() -> None:
    assert set(contacts.ESCALATION_ROLES) == {
        "cqc",
        "commissioning-lead",
        "responsible-commissioner",
        "accountable-officer",
        "icb",
        "tpd",
        "ra",
        "asct",
    }


def test_an_added_cqc_address_takes_effect_only_when_a_different_account_confirms_it(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    scope = _scope(session, services)
    jo, ann = account(db, "Jo Smith", ("network-office",)), account(db, "Ann Other", ("network-manager",))
    before = [c.email for c in resolve(session, "cqc", scope, date(2027, 1, 11))]
    contacts_before = _counts(session)[0]
    pc = contacts.add_contact(
        session,
        role="cqc",
        name="Mr Mallory",
        email="x@evil.example",
        network_id=scope["network_id"],
        principal=jo,
        clock=CLOCK,
    )
    session.commit()
    assert isinstance(pc, PendingChange) and pc.status == "pending" and pc.proposed_by == jo.user_id
    # proposed and audited, and nothing the letters use changed
    assert _counts(session)[0] == contacts_before
    assert [c.email for c in resolve(session, "cqc", scope, date(2027, 1, 11))] == before
    (proposal,) = engine.changes(session, "pending_change", [pc.id])  # type: ignore[list-item]
    assert (proposal.trigger, proposal.actor, proposal.user_id, proposal.role) == (
        "propose",
        "Jo Smith",
        jo.user_id,
        "network-office",
    )
    assert proposal.data["email"] == "x@evil.example" and proposal.data["role"] == "cqc"
    # the same account is refused, even under another spelling of its name ("Jo  Smith")
    counts = _counts(session)
    for same in (jo, Principal(jo.user_id, "Jo  Smith", jo.grants)):
        with pytest.raises(PermissionDenied, match=r"your own account.*different person must confirm"):
            contacts.confirm_change(session, pc.id, principal=same, clock=CLOCK)  # type: ignore[arg-type]
        session.rollback()
        assert _counts(session) == counts
    # a different account confirms: applied in the same transaction, both audited
    out = contacts.confirm_change(session, pc.id, principal=ann, clock=CLOCK)  # type: ignore[arg-type]
    session.commit()
    assert out.row.email == "x@evil.example"
    assert "x@evil.example" in [c.email for c in resolve(session, "cqc", scope, date(2027, 1, 11))]
    session.refresh(pc)
    assert (pc.status, pc.decided_by) == ("confirmed", ann.user_id)
    confirm = engine.changes(session, "pending_change", [pc.id])[-1]  # type: ignore[list-item]
    added = engine.changes(session, "contact", [out.row.id])[0]
    assert (confirm.trigger, confirm.user_id, confirm.data["proposed_by"]) == ("confirm", ann.user_id, jo.user_id)
    assert (added.trigger, added.actor, added.user_id) == ("add_contact", "Ann Other", ann.user_id)
    assert (added.data["proposed_name"], added.data["change"]) == ("Jo Smith", pc.id)
    assert "proposed by Jo Smith" in contacts.describe(added.data)
    # confirmed once only
    with pytest.raises(InvalidInput, match="already confirmed"):
        contacts.confirm_change(session, pc.id, principal=person("Third", "network-office"), clock=CLOCK)  # type: ignore[arg-type]
    session.rollback()
    assert engine.verify_chain(session)[2] is None


def test_edit_and_retire_are_proposed_one_at_a_time_and_a_stale_confirmation_is_refused(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    jo, ann = account(db, "Jo Smith", ("network-office",)), account(db, "Ann Other", ("network-manager",))
    tpd = session.exec(select(Contact).where(Contact.role == "tpd")).first()
    assert tpd is not None and tpd.id is not None
    old_email = tpd.email
    out = contacts.edit_contact(
        session, tpd.id, email="tpd.new@hee.nhs.uk", effective=date(2027, 1, 18), principal=jo, clock=CLOCK
    )
    session.commit()
    assert out.pending is not None and out.row.id == tpd.id and out.replaced is None
    session.refresh(tpd)
    assert tpd.valid_until is None and tpd.email == old_email
    # one change at a time on a contact
    with pytest.raises(InvalidInput, match=f"already has change {out.pending.id} waiting"):
        contacts.retire_contact(session, tpd.id, effective=date(2027, 2, 1), principal=ann, clock=CLOCK)
    session.rollback()
    # the contact changes behind the proposal's back: confirming is refused, nothing changed
    with db.begin() as conn:
        conn.execute(text("UPDATE contact SET email = 'tpd.sql@hee.nhs.uk' WHERE id = :id"), {"id": tpd.id})
    counts = _counts(session)
    with pytest.raises(StaleVersion, match=f"contact {tpd.id} changed since change {out.pending.id} was proposed"):
        contacts.confirm_change(session, out.pending.id, principal=ann, clock=CLOCK)  # type: ignore[arg-type]
    session.rollback()
    assert _counts(session) == counts
    # only the proposer withdraws it
    with pytest.raises(PermissionDenied, match="only that account may withdraw"):
        contacts.withdraw_change(session, out.pending.id, principal=ann, clock=CLOCK)  # type: ignore[arg-type]
    session.rollback()
    contacts.withdraw_change(session, out.pending.id, principal=jo, clock=CLOCK, note="stale")  # type: ignore[arg-type]
    session.commit()
    with pytest.raises(InvalidInput, match="already withdrawn"):
        contacts.confirm_change(session, out.pending.id, principal=ann, clock=CLOCK)  # type: ignore[arg-type]
    session.rollback()
    # a retirement, proposed by Ann and confirmed by Jo, closes it at its date
    session.refresh(tpd)
    retire = contacts.retire_contact(session, tpd.id, effective=date(2027, 2, 1), principal=ann, clock=CLOCK)
    assert retire.pending is not None and tpd.valid_until is None
    contacts.confirm_change(session, retire.pending.id, principal=jo, clock=CLOCK)  # type: ignore[arg-type]
    session.commit()
    session.refresh(tpd)
    assert tpd.valid_until == date(2027, 2, 1)
    _, events = contacts.contact_history(session, tpd.id)
    assert [(e.kind, e.trigger, e.actor) for e in events] == [
        ("pending_change", "propose", "Jo Smith"),
        ("pending_change", "withdraw", "Jo Smith"),
        ("pending_change", "propose", "Ann Other"),
        ("pending_change", "confirm", "Jo Smith"),
        ("contact", "retire_contact", "Jo Smith"),
    ]
    assert engine.verify_chain(session)[2] is None


def test_who_may_propose_and_confirm(db: Engine, session: Session, services: dict[str, int]) -> None:
    """Network staff in the contact's scope; not auditors, not administrators, not another network."""
    jo = account(db, "Jo Smith", ("network-office",))
    cqc = session.exec(select(Contact).where(Contact.role == "cqc", Contact.network_id == 1)).one()
    assert cqc.id is not None
    counts = _counts(session)
    for principal, message in (
        (account(db, "Aud Itor", ("auditor",)), "may not retire contact"),
        (account(db, "Ad Min", ("administrator",)), "may not retire contact"),
        (account(db, "Cee Mersey", ("network-manager",), scope="network", scope_id=3), "not in the scope"),
    ):
        with pytest.raises(PermissionDenied, match=message):
            contacts.retire_contact(session, cqc.id, effective=date(2027, 2, 1), principal=principal, clock=CLOCK)
        session.rollback()
    assert _counts(session) == counts
    out = contacts.retire_contact(session, cqc.id, effective=date(2027, 2, 1), principal=jo, clock=CLOCK)
    session.commit()
    assert out.pending is not None and out.pending.id is not None
    for principal in (
        account(db, "Aud Itor", ("auditor",)),
        account(db, "Cee Mersey", ("network-manager",), scope="network", scope_id=3),
    ):
        with pytest.raises(PermissionDenied):
            contacts.confirm_change(session, out.pending.id, principal=principal, clock=CLOCK)
        session.rollback()
    wm = account(db, "Wyn Midlands", ("regional-lead",), scope="network", scope_id=1)
    contacts.confirm_change(session, out.pending.id, principal=wm, clock=CLOCK)
    session.commit()
    with pytest.raises(NotFound):
        contacts.confirm_change(session, 2**70, principal=wm, clock=CLOCK)
    assert Grant("regional-lead", "network", 1) in wm.grants


def _holders(db: Engine, email: str) -> int:
    with Session(db) as s:
        return s.exec(select(func.count()).select_from(Contact).where(Contact.email == email)).one()


@pytest.mark.usefixtures("training")
def test_the_probe_through_the_command_line_does_not_redirect_the_letter_until_a_second_account_confirms(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    jo = account(db, "Jo Smith", ("network-office",), email="jo@wmtn.nhs.uk")
    account(db, "Ann Other", ("network-manager",), email="ann@wmtn.nhs.uk")
    env = cli_env()
    scope = _scope(session, services)
    probe = ["contact", "add", "--role", "cqc", "--name", "Mr Mallory", "--email", "x@evil.example", "--network"]
    # --actor is gone: a usage error, nothing changed
    gone = run(env, *probe, "WMTN", "--actor", "Tom Hughes")
    assert gone.returncode == 2 and "--actor" in gone.stderr
    proposed = json.loads(ok(run(env, "--as", "jo@wmtn.nhs.uk", "--json", *probe, "WMTN")))
    change = proposed["change"]
    assert proposed["status"] == "pending" and _holders(db, "x@evil.example") == 0
    today = local_date(datetime.now(UTC))  # an action in a training database without --as-of happens now
    with Session(db) as s:
        assert "x@evil.example" not in [c.email for c in resolve(s, "cqc", scope, today)]
        event = s.exec(select(AuditEvent).where(AuditEvent.kind == "pending_change")).one()
        assert (event.trigger, event.user_id, event.actor) == ("propose", jo.user_id, "Jo Smith")
    pending = json.loads(ok(run(env, "--json", "contact", "pending")))
    assert [(p["change"], p["role"], p["proposed by"]) for p in pending] == [
        (change, "Care Quality Commission", "Jo Smith")
    ]
    # the proposer cannot confirm it: one error line, exit 2, nothing changed
    own = run(env, "--as", "jo@wmtn.nhs.uk", "contact", "confirm", str(change))
    assert own.returncode == 2
    assert [line for line in own.stderr.splitlines() if line.startswith("error:")] == [
        f"error: change {change} was proposed by your own account (Jo Smith): a different person must confirm it; "
        "nothing was changed"
    ]
    assert _holders(db, "x@evil.example") == 0
    # a second account confirms: now (and only now) letters go there too
    confirmed = json.loads(ok(run(env, "--as", "ann@wmtn.nhs.uk", "--json", "contact", "confirm", str(change))))
    assert confirmed["status"] == "confirmed" and _holders(db, "x@evil.example") == 1
    with Session(db) as s:
        assert "x@evil.example" in [c.email for c in resolve(s, "cqc", scope, today)]
        added = s.exec(
            select(AuditEvent).where(AuditEvent.kind == "contact", AuditEvent.trigger == "add_contact")
        ).one()
        assert (added.actor, added.data["proposed_name"]) == ("Ann Other", "Jo Smith")
    assert json.loads(ok(run(env, "--json", "contact", "pending"))) == []
    # a contact that is not an escalation address changes at once, audited with the account;
    # an auditor may not change one (one error line, nothing changed)
    account(db, "Aud Itor", ("auditor",), email="aud@wmtn.nhs.uk")
    nurse = session.exec(select(Contact).where(Contact.role == "lead-nurse")).first()
    assert nurse is not None
    edit = ["contact", "edit", str(nurse.id), "--from", "2027-01-18", "--email", "n@x.nhs.uk"]
    refused = run(env, "--as", "aud@wmtn.nhs.uk", *edit)
    assert refused.returncode == 2 and _holders(db, "n@x.nhs.uk") == 0
    assert [line for line in refused.stderr.splitlines() if line.startswith("error:")] == [
        f"error: Aud Itor may not change contact {nurse.id}: needs one of network-manager, network-office, "
        "operator, regional-lead (holds: auditor)"
    ]
    ok(run(env, "--as", "jo@wmtn.nhs.uk", *edit))
    assert _holders(db, "n@x.nhs.uk") == 1
    # so do reviewers
    ok(run(env, "--as", "jo@wmtn.nhs.uk", "reviewer", "retire", "3", "--from", "2027-04-01"))
    with Session(db) as s:
        retired = s.exec(select(AuditEvent).where(AuditEvent.kind == "reviewer")).one()
        assert (retired.trigger, retired.user_id, retired.role) == ("retire_reviewer", jo.user_id, "network-office")
