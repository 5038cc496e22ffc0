"""Issue 12 item 14: contacts and reviewers edited and retired with an effective date, history
kept, audited; from that date letters go to the successor; a change to an escalation address
is shown in the next views artifact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, Contact, OutboxMessage, Reviewer, Risk, Service
from models.accounts import PendingChange
from states import engine
from states.clock import FixedClock
from states.engine.letters import resolve
from states.engine.sweep import run_sweep
from states.errors import InvalidInput, PermissionDenied
from states.principal import Grant, Principal
from states.services import contacts
from tests.factories import person
from tests.support_accounts import account

MRH = "Midland Royal Major Trauma Centre"


def _ceo(session: Session, service_id: int) -> Contact:
    svc = session.get(Service, service_id)
    assert svc is not None
    return session.exec(
        select(Contact).where(Contact.role == "chief-executive", Contact.organisation_id == svc.organisation_id)
    ).one()


def _id(row: Contact | Reviewer | Risk | PendingChange | None) -> int:
    assert row is not None and row.id is not None
    return row.id


def _emails(session: Session, risk_id: int, template: str) -> set[str]:
    rows = session.exec(
        select(OutboxMessage).where(OutboxMessage.item_id == risk_id, OutboxMessage.template == template)
    ).all()
    return {p["email"] for m in rows for p in (*m.to, *m.cc)}


def test_a_replaced_chief_executive_gets_letters_until_the_date_and_the_successor_after(
    db: Engine,
    session: Session,
    raise_risk: Callable[..., Risk],
) -> None:
    risk = raise_risk("SC")
    old = _ceo(session, risk.service_id)
    old_email = old.email
    out = contacts.edit_contact(
        session,
        _id(old),
        name="Dr Nia Successor",
        email="nia.successor@midland-royal.nhs.example",
        effective=date(2027, 1, 4),
        principal=person("Jo Smith", "network-office"),
        clock=FixedClock(date(2026, 12, 14)),
        note="new Chief Executive from January",
    )
    session.commit()
    new_id = out.row.id
    # before the date: the formal notification goes to the Chief Executive in post
    engine.fire(
        session,
        "risk",
        _id(risk),
        "send_formal_notification",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2026, 12, 18)),
    )
    session.commit()
    sent = _emails(session, _id(risk), "formal_notification")
    assert old_email in sent and "nia.successor@midland-royal.nhs.example" not in sent
    # the response is never received: the sweep's chase, after the date, goes to the successor
    summary = run_sweep(db, FixedClock(date(2027, 1, 21)))
    assert any(a["action"] == "no_response" for a in summary.actions)
    chased = _emails(session, _id(risk), "chase")
    assert "nia.successor@midland-royal.nhs.example" in chased and old_email not in chased
    # history kept: both rows, each with its span, and the audited changes with who made them
    rows, events = contacts.contact_history(session, _id(old))
    assert [(r.id, r.valid_from, r.valid_until) for r in rows] == [
        (old.id, None, date(2027, 1, 4)),
        (new_id, date(2027, 1, 4), None),
    ]
    assert [(e.item_id, e.trigger, e.actor, e.role) for e in events] == [
        (old.id, "replace_contact", "Jo Smith", "network-office"),
        (new_id, "succeed_contact", "Jo Smith", "network-office"),
    ]
    assert events[0].data["changes"]["email"] == {"was": old_email, "now": "nia.successor@midland-royal.nhs.example"}
    assert contacts.contact_history(session, _id(out.row))[0] == rows
    assert engine.verify_chain(session)[2] is None


def test_retired_with_no_successor_warns_and_letters_become_an_incident_naming_the_role(
    db: Engine,
    session: Session,
    services: dict[str, int],
) -> None:
    svc = session.get(Service, services[MRH])
    assert svc is not None
    cqc = session.exec(select(Contact).where(Contact.role == "cqc", Contact.network_id == svc.network_id)).one()
    scope = {"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": svc.network_id}
    jo, ann = account(db, "Jo Smith", ("network-manager",)), account(db, "Ann Other", ("network-office",))
    clock = FixedClock(date(2027, 1, 11))
    # the CQC is an escalation address: retiring it is proposed, and done when a second person confirms
    proposed = contacts.retire_contact(session, _id(cqc), effective=date(2027, 2, 1), principal=jo, clock=clock)
    session.commit()
    assert proposed.pending is not None and not proposed.warnings
    assert [c.id for c in resolve(session, "cqc", scope, date(2027, 2, 1))] == [cqc.id]
    out = contacts.confirm_change(session, _id(proposed.pending), principal=ann, clock=clock)
    session.commit()
    assert out.warnings and "Care Quality Commission" in out.warnings[0]
    assert [c.id for c in resolve(session, "cqc", scope, date(2027, 1, 31))] == [cqc.id]
    assert resolve(session, "cqc", scope, date(2027, 2, 1)) == []
    # a successor from 8 February, proposed by Jo, confirmed by Ann
    change = contacts.add_contact(
        session,
        role="cqc",
        name="Ms New Inspector",
        email="new.inspector@cqc.org.uk",
        network_id=svc.network_id,
        valid_from=date(2027, 2, 8),
        principal=jo,
        clock=clock,
    )
    session.commit()
    assert change.id is not None
    new = contacts.confirm_change(session, change.id, principal=ann, clock=clock).row
    session.commit()
    assert resolve(session, "cqc", scope, date(2027, 2, 5)) == []
    assert [c.id for c in resolve(session, "cqc", scope, date(2027, 2, 8))] == [new.id]
    # retiring it again is refused, nothing changed
    events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    with pytest.raises(InvalidInput, match="already retired"):
        contacts.retire_contact(session, _id(cqc), effective=date(2027, 3, 1), principal=jo, clock=clock)
    session.rollback()
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == events


def test_changes_need_network_staff_in_scope_and_the_current_holder(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    clock = FixedClock(date(2027, 1, 11))
    c = session.exec(select(Contact).where(Contact.role == "lead-nurse")).first()
    assert c is not None and c.id is not None and c.service_id is not None
    svc = session.get(Service, c.service_id)
    assert svc is not None and svc.id is not None
    elsewhere = 3 if svc.network_id != 3 else 1
    refused = (
        (person("Ann Audit", "auditor"), "may not change contact"),
        (person("Ada Admin", "administrator"), "may not change contact"),
        (Principal(2001, "Nat Elsewhere", (Grant("network-manager", "network", elsewhere),)), "not in the scope"),
        (Principal(2002, "Ola Other", (Grant("network-office", "service", svc.id + 1),)), "not in the scope"),
    )
    for principal, message in refused:
        with pytest.raises(PermissionDenied, match=message):
            contacts.edit_contact(
                session, c.id, email="a@b.nhs.uk", effective=date(2027, 1, 11), principal=principal, clock=clock
            )
        session.rollback()
        session.refresh(c)
        assert c.valid_until is None
    ann = person("Ann", "network-office")
    with pytest.raises(InvalidInput, match="nothing to change"):
        contacts.edit_contact(session, c.id, email=c.email, effective=date(2027, 1, 11), principal=ann, clock=clock)
    session.rollback()
    # a network grant for the service's network, or a grant for the service itself, reaches it
    for principal in (
        Principal(2003, "Nia Network", (Grant("network-office", "network", svc.network_id),)),
        Principal(2004, "Sam Service", (Grant("network-manager", "service", svc.id),)),
    ):
        before, email = c.email, f"x{principal.user_id}@b.nhs.uk"
        out = contacts.edit_contact(
            session, _id(c), email=email, effective=date(2027, 1, 11), principal=principal, clock=clock
        )
        session.commit()
        assert out.pending is None and out.replaced is not None and out.replaced.email == before
        c = out.row
    ids = [_id(r) for r in contacts.lineage(session, _id(c))]
    with pytest.raises(InvalidInput, match="already replaced by contact"):
        contacts.edit_contact(
            session, ids[0], email="other@b.nhs.uk", effective=date(2027, 1, 12), principal=ann, clock=clock
        )
    session.rollback()
    events = engine.changes(session, "contact", ids)
    assert [(e.actor, e.role, e.user_id) for e in events if e.trigger == "replace_contact"] == [
        ("Nia Network", "network-office", 2003),
        ("Sam Service", "network-manager", 2004),
    ]


def test_a_trust_contact_is_in_the_scope_of_each_network_the_trust_has_services_in(
    session: Session, services: dict[str, int]
) -> None:
    """Severnside runs services in WMTN and WMACC: a grant for either reaches its Chief Executive;
    one for CMMTN does not; a national contact needs an installation-wide grant."""
    clock = FixedClock(date(2027, 1, 11))
    svc = session.exec(select(Service).where(Service.name == "Severnside Adult Critical Care")).one()
    ceo = session.exec(
        select(Contact).where(Contact.role == "chief-executive", Contact.organisation_id == svc.organisation_id)
    ).one()
    ok = Principal(2005, "Wen Wmacc", (Grant("network-office", "network", svc.network_id),))
    no = Principal(2006, "Cal Cmmtn", (Grant("network-office", "network", 3),))
    assert contacts.may_change(session, ok, ceo, "change it") == "network-office"
    with pytest.raises(PermissionDenied, match="not in the scope"):
        contacts.may_change(session, no, ceo, "change it")
    with pytest.raises(PermissionDenied, match="not in the scope"):
        contacts.add_contact(
            session, role="lead-nurse", name="N", email="n@x.nhs.uk", principal=ok, clock=clock
        )  # national: no network holds it
    assert (
        contacts.may_change(
            session, person("Ira Install", "operator"), Contact(role="cqc", name="N", email="n@x.nhs.uk"), "add it"
        )
        == "operator"
    )


def test_two_editors_at_once_one_wins_the_other_is_told(db: Engine, services: dict[str, int]) -> None:
    """Both read the contact in force; the second one's close finds it already closed."""
    from states.errors import StaleVersion

    clock = FixedClock(date(2027, 1, 11))
    first, second = account(db, "A One", ("network-office",)), account(db, "B Two", ("network-manager",))
    with Session(db) as a, Session(db) as b:
        c_a = a.exec(select(Contact).where(Contact.role == "ra")).first()
        assert c_a is not None
        c_b = b.get(Contact, c_a.id)
        assert c_b is not None and c_b.valid_until is None
        out = contacts.edit_contact(
            a, _id(c_a), email="ra.one@hee.nhs.uk", effective=date(2027, 1, 11), principal=first, clock=clock
        )
        assert out.pending is not None
        contacts.confirm_change(a, _id(out.pending), principal=second, clock=clock)
        a.commit()
        # b still holds its stale copy (valid_until None): the guarded UPDATE matches nothing
        b.expire_on_commit = False
        with pytest.raises((StaleVersion, InvalidInput)):
            contacts.close_contact(b, c_b, date(2027, 1, 12), date(2027, 1, 11))
        b.rollback()
    with Session(db) as s:
        assert (
            s.exec(select(func.count()).select_from(Contact).where(col(Contact.email).like("ra.%@hee.nhs.uk"))).one()
            == 1
        )


def test_reviewers_are_edited_and_retired_with_history(session: Session, services: dict[str, int]) -> None:
    clock = FixedClock(date(2027, 1, 11))
    office = person("Office", "network-office")
    r = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    with pytest.raises(PermissionDenied, match="auditor"):
        contacts.retire_reviewer(
            session, _id(r), effective=date(2027, 4, 1), principal=person("Aud", "auditor"), clock=clock
        )
    with pytest.raises(InvalidInput, match="after today"):
        contacts.edit_reviewer(
            session,
            _id(r),
            changes={"email": "carys@new.nhs.uk"},
            effective=date(2027, 2, 1),
            principal=office,
            clock=clock,
        )
    with pytest.raises(InvalidInput, match="reviewer email"):
        contacts.edit_reviewer(
            session,
            _id(r),
            changes={"email": "carys@new.nhs.uk\r\nBcc: x@y.org"},
            effective=date(2027, 1, 11),
            principal=office,
            clock=clock,
        )
    session.rollback()
    old = r.email
    contacts.edit_reviewer(
        session,
        _id(r),
        changes={"email": "carys@new.nhs.uk", "trained": True},
        effective=date(2027, 1, 11),
        principal=office,
        clock=clock,
    )
    contacts.retire_reviewer(session, _id(r), effective=date(2027, 4, 1), principal=office, clock=clock)
    session.commit()
    row, events = contacts.reviewer_history(session, _id(r))
    assert row.email == "carys@new.nhs.uk" and row.retired_on == date(2027, 4, 1)
    assert [(e.trigger, e.actor) for e in events] == [("edit_reviewer", "Office"), ("retire_reviewer", "Office")]
    assert events[0].data["changes"] == {"email": {"was": old, "now": "carys@new.nhs.uk"}}
    assert "email: " + old in contacts.describe(events[0].data)


@pytest.mark.usefixtures("training", "prefect_harness")  # training: the views flow runs on a simulated date
def test_a_changed_escalation_address_is_shown_in_the_next_views_artifact(
    db: Engine,
    session: Session,
    services: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.views import views

    monkeypatch.setenv("PEERWATCH_SITE_DIR", str(tmp_path / "site"))
    lead = session.exec(select(Contact).where(Contact.role == "commissioning-lead", Contact.network_id == 1)).one()
    jo, ann = account(db, "Jo Smith", ("network-manager",)), account(db, "Ann Other", ("network-office",))
    clock = FixedClock(date(2027, 1, 11))
    out = contacts.edit_contact(
        session,
        _id(lead),
        name="Ms Cara Newlead",
        email="cara.newlead@england.nhs.example",
        effective=date(2027, 1, 18),
        principal=jo,
        clock=clock,
    )
    assert out.pending is not None
    contacts.confirm_change(session, _id(out.pending), principal=ann, clock=clock)
    nurse = session.exec(select(Contact).where(Contact.role == "lead-nurse")).first()
    assert nurse is not None  # not an escalation address: not shown
    contacts.retire_contact(session, _id(nurse), effective=date(2027, 1, 18), principal=jo, clock=clock)
    # a proposal still waiting for a second person is shown as such
    contacts.add_contact(
        session, role="cqc", name="Mr Waiting", email="waiting@cqc.org.uk", network_id=1, principal=jo, clock=clock
    )
    session.commit()
    state = views(as_of="2027-01-12", return_state=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))  # type: ignore[list-item]
        )
    arts = {a.key: a for a in found}
    shown = str(arts["escalation-contacts"].data)
    assert "Ms Cara Newlead <cara.newlead@england.nhs.example>" in shown and lead.name in shown
    assert "Commissioning Lead" in shown and "2027-01-18" in shown and "not yet" in shown
    assert "Ann Other (network-office), proposed by Jo Smith" in shown
    assert "Mr Waiting <waiting@cqc.org.uk>" in shown and "awaits a second person" in shown
    assert nurse.name not in shown
    assert (arts["escalation-contacts"].description or "").strip()
