"""Helpers for the portal's forms tests (test_portal_accuracy, test_portal_appeal,
test_portal_documents): Trust accounts made from their contacts, a training day for the web's
clock, files good and bad."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models.accounts import RoleGrant, User
from models.installation import ROW_ID, Installation
from models.tables import Contact, Organisation, Service
from states.principal import Principal
from states.services import accounts
from tests import support_accounts

MRH = "Midland Royal Major Trauma Centre"
MRH_TRUST = "Midland Royal Hospitals NHS Trust"
OTHER_TRUST = "Severnside NHS Foundation Trust"
OTHER_SERVICE = "Severnside Trauma Unit"

PDF = b"%PDF-1.4\n% the rota for the day of the visit\n"
# A Windows program named as a PDF: refused by its content, whatever its name says.
PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256))


def org_id(session: Session, name: str) -> int:
    row = session.exec(select(Organisation).where(Organisation.name == name)).one()
    assert row.id is not None
    return row.id


def service_id(session: Session, name: str) -> int:
    row = session.exec(select(Service).where(Service.name == name)).one()
    assert row.id is not None
    return row.id


def trust_contact(session: Session, role: str, trust: str = MRH_TRUST, service: str | None = None) -> Contact:
    """The reference data's contact holding ``role`` at the Trust (or at one of its services)."""
    q = select(Contact).where(Contact.role == role, Contact.organisation_id == org_id(session, trust))
    if service is not None:
        q = q.where(Contact.service_id == service_id(session, service))
    row = session.exec(q.order_by(Contact.id)).first()  # type: ignore[arg-type]
    assert row is not None, (role, trust, service)
    return row


def contact_account(db: Engine, person: Contact, scope: str, scope_id: int) -> Principal:
    """An account made from ``person``'s contact record (a grant of its role, source "contact"),
    as the invitation makes one."""
    with Session(db, expire_on_commit=False) as s:
        user = User(name=person.name, email=person.email.lower(), status="active")
        s.add(user)
        s.flush()
        assert user.id is not None
        s.add(
            RoleGrant(
                user_id=user.id,
                role=person.role,
                scope=scope,
                scope_id=scope_id,
                source="contact",
                contact_id=person.id,
            )
        )
        s.commit()
        return accounts.principal_for(s, user, "test")


def chief_executive(db: Engine, session: Session, trust: str = MRH_TRUST) -> Principal:
    person = trust_contact(session, "chief-executive", trust)
    return contact_account(db, person, "organisation", org_id(session, trust))


def service_lead(db: Engine, session: Session, service: str = MRH, trust: str = MRH_TRUST) -> Principal:
    person = trust_contact(session, "service-lead", trust, service)
    return contact_account(db, person, "service", service_id(session, service))


def granted(db: Engine, name: str, role: str, scope: str, scope_id: int) -> Principal:
    """An account holding ``role`` by an administrator's grant (not made from a contact)."""
    return support_accounts.account(db, name, (role,), scope=scope, scope_id=scope_id)


def stand_at(db: Engine, day: date) -> None:
    """The training database stands at ``day``: the web application acts on it."""
    with Session(db) as s:
        row = s.get(Installation, ROW_ID)
        assert row is not None and row.training
        row.training_today = day
        s.add(row)
        s.commit()


def count(session: Session, model: type) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model)).one())
