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
from states import engine
from states.clock import FixedClock
from states.engine.letters import resolve
from states.engine.sweep import run_sweep
from states.errors import InvalidInput, MissingActor, PermissionDenied
from states.services import contacts
from tests.factories import person

MRH = "Midland Royal Major Trauma Centre"


def _ceo(session: Session, service_id: int) -> Contact:
    svc = session.get(Service, service_id)
    assert svc is not None
    return session.exec(
        select(Contact).where(Contact.role == "chief-executive", Contact.organisation_id == svc.organisation_id)
    ).one()


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
        old.id,
        name="Dr Nia Successor",
        email="nia.successor@midland-royal.nhs.example",  # type: ignore[arg-type]
        effective=date(2027, 1, 4),
        actor="Jo Smith",
        actor_role="network-office",
        clock=FixedClock(date(2026, 12, 14)),
        note="new Chief Executive from January",
    )
    session.commit()
    new_id = out.row.id
    # before the date: the formal notification goes to the Chief Executive in post
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", "network-manager"),  # type: ignore[arg-type]
        clock=FixedClock(date(2026, 12, 18)),
    )
    session.commit()
    sent = _emails(session, risk.id, "formal_notification")  # type: ignore[arg-type]
    assert old_email in sent and "nia.successor@midland-royal.nhs.example" not in sent
    # the response is never received: the sweep's chase, after the date, goes to the successor
    summary = run_sweep(db, FixedClock(date(2027, 1, 21)))
    assert any(a["action"] == "no_response" for a in summary.actions)
    chased = _emails(session, risk.id, "chase")  # type: ignore[arg-type]
    assert "nia.successor@midland-royal.nhs.example" in chased and old_email not in chased
    # history kept: both rows, each with its span, and the audited changes with who made them
    rows, events = contacts.contact_history(session, old.id)  # type: ignore[arg-type]
    assert [(r.id, r.valid_from, r.valid_until) for r in rows] == [
        (old.id, None, date(2027, 1, 4)),
        (new_id, date(2027, 1, 4), None),
    ]
    assert [(e.item_id, e.trigger, e.actor, e.role) for e in events] == [
        (old.id, "replace_contact", "Jo Smith", "network-office"),
        (new_id, "succeed_contact", "Jo Smith", "network-office"),
    ]
    assert events[0].data["changes"]["email"] == {"was": old_email, "now": "nia.successor@midland-royal.nhs.example"}
    assert contacts.contact_history(session, new_id)[0] == rows  # type: ignore[arg-type]
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
    out = contacts.retire_contact(
        session,
        cqc.id,
        effective=date(2027, 2, 1),
        actor="Jo Smith",
        actor_role="network-manager",  # type: ignore[arg-type]
        clock=FixedClock(date(2027, 1, 11)),
    )
    session.commit()
    assert out.warnings and "Care Quality Commission" in out.warnings[0]
    assert [c.id for c in resolve(session, "cqc", scope, date(2027, 1, 31))] == [cqc.id]
    assert resolve(session, "cqc", scope, date(2027, 2, 1)) == []
    # a successor from 8 February
    new = contacts.add_contact(
        session,
        role="cqc",
        name="Ms New Inspector",
        email="new.inspector@cqc.org.uk",
        network_id=svc.network_id,
        valid_from=date(2027, 2, 8),
        actor="Jo Smith",
        actor_role="network-office",
        clock=FixedClock(date(2027, 1, 11)),
    )
    session.commit()
    assert resolve(session, "cqc", scope, date(2027, 2, 5)) == []
    assert [c.id for c in resolve(session, "cqc", scope, date(2027, 2, 8))] == [new.id]
    # retiring it again is refused, nothing changed
    events = session.exec(select(func.count()).select_from(AuditEvent)).one()
    with pytest.raises(InvalidInput, match="already retired"):
        contacts.retire_contact(
            session,
            cqc.id,
            effective=date(2027, 3, 1),
            actor="Jo",
            actor_role="network-manager",  # type: ignore[arg-type]
            clock=FixedClock(date(2027, 1, 11)),
        )
    session.rollback()
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == events


def test_changes_need_an_actor_a_writing_role_and_the_current_holder(
    session: Session, services: dict[str, int]
) -> None:
    clock = FixedClock(date(2027, 1, 11))
    c = session.exec(select(Contact).where(Contact.role == "tpd")).first()
    assert c is not None
    for kwargs, error in (
        ({"actor": " "}, MissingActor),
        ({"actor": "Ann", "actor_role": "auditor"}, PermissionDenied),
    ):
        with pytest.raises(error):
            contacts.edit_contact(
                session,
                c.id,
                email="a@b.nhs.uk",
                effective=date(2027, 1, 11),  # type: ignore[arg-type]
                **{"actor_role": "network-office", "clock": clock, **kwargs},
            )  # type: ignore[arg-type]
        session.rollback()
        session.refresh(c)
        assert c.valid_until is None
    with pytest.raises(InvalidInput, match="nothing to change"):
        contacts.edit_contact(
            session,
            c.id,
            email=c.email,
            effective=date(2027, 1, 11),
            actor="Ann",  # type: ignore[arg-type]
            actor_role="network-office",
            clock=clock,
        )
    session.rollback()
    contacts.edit_contact(
        session,
        c.id,
        email="tpd.new@hee.nhs.uk",
        effective=date(2027, 1, 11),
        actor="Ann",  # type: ignore[arg-type]
        actor_role="network-office",
        clock=clock,
    )
    session.commit()
    with pytest.raises(InvalidInput, match="already replaced by contact"):
        contacts.edit_contact(
            session,
            c.id,
            email="other@hee.nhs.uk",
            effective=date(2027, 1, 12),
            actor="Ann",  # type: ignore[arg-type]
            actor_role="network-office",
            clock=clock,
        )
    session.rollback()
    assert (
        session.exec(
            select(func.count()).select_from(Contact).where(Contact.role == "tpd", Contact.network_id == c.network_id)
        ).one()
        == 2
    )


def test_two_editors_at_once_one_wins_the_other_is_told(db: Engine, services: dict[str, int]) -> None:
    """Both read the contact in force; the second one's close finds it already closed."""
    from states.errors import StaleVersion

    clock = FixedClock(date(2027, 1, 11))
    with Session(db) as a, Session(db) as b:
        c_a = a.exec(select(Contact).where(Contact.role == "ra")).first()
        assert c_a is not None
        c_b = b.get(Contact, c_a.id)
        assert c_b is not None and c_b.valid_until is None
        contacts.edit_contact(
            a,
            c_a.id,
            email="ra.one@hee.nhs.uk",
            effective=date(2027, 1, 11),
            actor="A",  # type: ignore[arg-type]
            actor_role="network-office",
            clock=clock,
        )
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
    r = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    with pytest.raises(InvalidInput, match="after today"):
        contacts.edit_reviewer(
            session,
            r.id,
            changes={"email": "carys@new.nhs.uk"},
            effective=date(2027, 2, 1),  # type: ignore[arg-type]
            actor="Office",
            actor_role="network-office",
            clock=clock,
        )
    with pytest.raises(InvalidInput, match="reviewer email"):
        contacts.edit_reviewer(
            session,
            r.id,
            changes={"email": "carys@new.nhs.uk\r\nBcc: x@y.org"},
            effective=date(2027, 1, 11),  # type: ignore[arg-type]
            actor="Office",
            actor_role="network-office",
            clock=clock,
        )
    session.rollback()
    old = r.email
    contacts.edit_reviewer(
        session,
        r.id,
        changes={"email": "carys@new.nhs.uk", "trained": True},
        effective=date(2027, 1, 11),  # type: ignore[arg-type]
        actor="Office",
        actor_role="network-office",
        clock=clock,
    )
    contacts.retire_reviewer(
        session, r.id, effective=date(2027, 4, 1), actor="Office", actor_role="network-office", clock=clock
    )  # type: ignore[arg-type]
    session.commit()
    row, events = contacts.reviewer_history(session, r.id)  # type: ignore[arg-type]
    assert row.email == "carys@new.nhs.uk" and row.retired_on == date(2027, 4, 1)
    assert [(e.trigger, e.actor) for e in events] == [("edit_reviewer", "Office"), ("retire_reviewer", "Office")]
    assert events[0].data["changes"] == {"email": {"was": old, "now": "carys@new.nhs.uk"}}
    assert "email: " + old in contacts.describe(events[0].data)


@pytest.mark.usefixtures("prefect_harness")
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
    contacts.edit_contact(
        session,
        lead.id,
        name="Ms Cara Newlead",
        email="cara.newlead@england.nhs.example",  # type: ignore[arg-type]
        effective=date(2027, 1, 18),
        actor="Jo Smith",
        actor_role="network-manager",
        clock=FixedClock(date(2027, 1, 11)),
    )
    nurse = session.exec(select(Contact).where(Contact.role == "lead-nurse")).first()
    assert nurse is not None  # not an escalation address: not shown
    contacts.retire_contact(
        session,
        nurse.id,
        effective=date(2027, 1, 18),
        actor="Jo Smith",
        actor_role="network-manager",  # type: ignore[arg-type]
        clock=FixedClock(date(2027, 1, 11)),
    )
    session.commit()
    state = views(as_of="2027-01-12", return_state=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    arts = {a.key: a for a in found}
    shown = str(arts["escalation-contacts"].data)
    assert "Ms Cara Newlead <cara.newlead@england.nhs.example>" in shown and lead.name in shown
    assert "Commissioning Lead" in shown and "2027-01-18" in shown and "not yet" in shown and "Jo Smith" in shown
    assert nurse.name not in shown
    assert (arts["escalation-contacts"].description or "").strip()
