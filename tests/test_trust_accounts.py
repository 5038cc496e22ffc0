"""Trust and commissioner accounts (issue 16 item 1), through the use cases on a real SQLite
database: inviting a contact (account, grant, invitation, letter), accepting the invitation,
hostile input, single use and expiry, the token never stored, and a contact's retirement or
replacement ending the access made from it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.accounts import AccessToken, RoleGrant, User
from models.tables import AuditEvent, Contact, Network, OutboxMessage, Risk, Service
from states.clock import FixedClock
from states.errors import InvalidInput, NotFound, PermissionDenied
from states.principal import Principal
from states.services import accounts, contacts, signin, trust_accounts
from states.services.trust_accounts import TOKEN_MARK, TOKEN_PREFIX, accept_invitation, invite_contact
from states.views.work import get_visible
from tests import support_accounts
from tests.databases import dump_all
from tests.factories import MRH

DAY = date(2026, 12, 11)
PASSWORD = "copper lantern orchard falcon 27"


def _contact(session: Session, role: str, services: dict[str, int], where: str = MRH) -> Contact:
    svc = session.get(Service, services[where])
    assert svc is not None
    if role in ("chief-executive", "medical-director"):
        q = select(Contact).where(Contact.role == role, Contact.organisation_id == svc.organisation_id)
    else:
        q = select(Contact).where(Contact.role == role, Contact.service_id == svc.id)
    c = session.exec(q.order_by(col(Contact.id))).first()
    assert c is not None
    return c


def _network(session: Session, code: str) -> Network:
    net = session.exec(select(Network).where(Network.code == code)).one()
    return net


@pytest.fixture
def office(db: Engine, services: dict[str, int], session: Session) -> Principal:
    """The network office of WMTN (MRH's network), a real account."""
    return support_accounts.account(db, "WMTN Office", ("network-office",), scope="network",
                                    scope_id=_network(session, "WMTN").id)  # fmt: skip


def _token_for(session: Session, invitation_id: int) -> str:
    """What the dispatcher does when it sends the letter (notifications/sealed.py): a token made
    now, only its hash kept. The tests of the use cases stand in for it here."""
    token = TOKEN_PREFIX + "t" * 10 + str(invitation_id)
    tok = session.get(AccessToken, invitation_id)
    assert tok is not None
    tok.token_hash = hashlib.sha256(token.encode()).hexdigest()
    session.add(tok)
    session.commit()
    return token


def test_a_service_lead_is_invited_account_grant_invitation_letter_and_audit(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    c = _contact(session, "service-lead", services)
    out = invite_contact(session, office, c.id or 0, clock)
    session.commit()
    user = session.get(User, out.user_id)
    assert user is not None and user.email == c.email.lower() and user.name == c.name and user.status == "active"
    assert out.account_created and out.grant_created and not out.reused
    g = session.get(RoleGrant, out.grant_id)
    assert g is not None
    assert (g.role, g.scope, g.scope_id, g.source, g.contact_id, g.valid_until) == (
        "service-lead", "service", services[MRH], "contact", c.id, None,
    )  # fmt: skip
    tok = session.get(AccessToken, out.invitation_id)
    assert tok is not None and tok.purpose == "invite" and tok.revoked_at is None
    assert tok.expires_at == clock.now() + timedelta(days=7)
    letter = session.get(OutboxMessage, out.outbox_id)
    assert letter is not None and letter.template == "account_invitation" and letter.category == "letter"
    assert letter.kind == "invitation" and letter.item_id == tok.id
    assert letter.to[0]["email"] == user.email
    assert f"http://127.0.0.1:8000/invitation/{TOKEN_MARK}" in (letter.context or "")
    actions = [e.trigger for e in session.exec(select(AuditEvent).where(AuditEvent.kind == "account",
                                                                        AuditEvent.item_id == user.id))]  # fmt: skip
    assert actions == ["add", "grant", "invite"]
    # The account acts in its role at its service, and nowhere else.
    me = accounts.principal_for(session, user, "web", clock=clock)
    assert me.roles_at({"service_id": services[MRH]}) == ["service-lead"]
    assert me.roles_at({"service_id": services["Severnside Trauma Unit"]}) == []


def test_the_letter_renders_with_the_mark_not_a_token(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from notifications.render import rendered  # lazy: notifications is the sending side

    monkeypatch.setenv("PEERWATCH_PUBLIC_URL", "https://peerwatch.example.nhs.uk/")
    monkeypatch.setenv("PEERWATCH_INVITATION_DAYS", "3")
    out = invite_contact(session, office, _contact(session, "lead-nurse", services).id or 0, clock)
    session.commit()
    assert out.expires_at == clock.now() + timedelta(days=3)
    letter = session.get(OutboxMessage, out.outbox_id)
    assert letter is not None
    subject, text, html = rendered(letter)
    assert "Lead Nurse" in subject and MRH in subject
    assert f"https://peerwatch.example.nhs.uk/invitation/{TOKEN_MARK}" in text
    assert f'href="https://peerwatch.example.nhs.uk/invitation/{TOKEN_MARK}"' in html
    assert "Mon 14 Dec 2026" in text  # three days on


def test_settings_out_of_range_are_refused(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cid = _contact(session, "lead-nurse", services).id or 0
    monkeypatch.setenv("PEERWATCH_INVITATION_DAYS", "0")
    with pytest.raises(InvalidInput, match="PEERWATCH_INVITATION_DAYS"):
        invite_contact(session, office, cid, clock)
    monkeypatch.setenv("PEERWATCH_INVITATION_DAYS", "7")
    monkeypatch.setenv("PEERWATCH_PUBLIC_URL", "javascript:alert(1)")
    with pytest.raises(InvalidInput, match="PEERWATCH_PUBLIC_URL"):
        invite_contact(session, office, cid, clock)
    session.rollback()
    assert session.exec(select(AccessToken)).first() is None


def test_accepting_sets_the_password_signs_in_and_uses_the_invitation_up(
    db: Engine, session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    out = invite_contact(session, office, _contact(session, "service-lead", services).id or 0, clock)
    session.commit()
    token = _token_for(session, out.invitation_id)
    view = trust_accounts.invitation_for(session, token, clock)
    assert (view.name, view.email) == (out.name, out.email)
    done = accept_invitation(db, token, PASSWORD, "127.0.0.1", clock)
    with Session(db) as s:
        found = signin.session_principal(s, done.token, clock)
        assert found is not None and found[0].user_id == out.user_id and found[1].via == "invitation"
        assert found[0].roles() == ["service-lead"]
        tok = s.get(AccessToken, out.invitation_id)
        assert tok is not None and tok.revoked_at is not None
    # The password works for signing in later; the link does not work twice.
    assert signin.sign_in(db, out.email, PASSWORD, None, clock).user_id == out.user_id
    with pytest.raises(NotFound) as second:
        accept_invitation(db, token, "another long passphrase 99", None, clock)
    assert str(second.value) == trust_accounts.INVALID
    assert signin.sign_in(db, out.email, PASSWORD, None, clock).user_id == out.user_id  # unchanged


def test_a_password_the_policy_refuses_changes_nothing(
    db: Engine, session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    out = invite_contact(session, office, _contact(session, "service-lead", services).id or 0, clock)
    session.commit()
    token = _token_for(session, out.invitation_id)
    with pytest.raises(InvalidInput):
        accept_invitation(db, token, "short", None, clock)
    with Session(db) as s:
        tok, user = s.get(AccessToken, out.invitation_id), s.get(User, out.user_id)
        assert tok is not None and tok.revoked_at is None and user is not None and user.password_hash is None
    accept_invitation(db, token, PASSWORD, None, clock)  # still usable


@pytest.mark.parametrize("how", ["expired", "unknown", "replaced", "malformed", "disabled"])
def test_a_link_not_live_gets_one_message_and_changes_nothing(
    db: Engine, session: Session, services: dict[str, int], office: Principal, clock: FixedClock, how: str
) -> None:
    c = _contact(session, "service-lead", services)
    out = invite_contact(session, office, c.id or 0, clock)
    session.commit()
    token = _token_for(session, out.invitation_id)
    at = clock
    if how == "expired":
        at = FixedClock(clock.now() + timedelta(days=7))  # the moment it expires
    elif how == "unknown":
        token = TOKEN_PREFIX + "x" * 43
    elif how == "replaced":  # the first letter went: a second invitation replaces it
        session.exec(select(OutboxMessage)).one().status = "sent"
        session.commit()
        again = invite_contact(session, office, c.id or 0, clock)
        session.commit()
        assert not again.reused and again.invitation_id != out.invitation_id
    elif how == "malformed":
        token = "../../etc/passwd\r\n" + "a" * 300
    elif how == "disabled":
        admin = support_accounts.account(db, "Admin", ("administrator",))
        accounts.disable_user(session, admin, clock, str(out.user_id))
        session.commit()
    with pytest.raises(NotFound) as refused:
        trust_accounts.invitation_for(session, token, at)
    assert str(refused.value) == trust_accounts.INVALID
    with pytest.raises(NotFound) as refused:
        accept_invitation(db, token, PASSWORD, None, at)
    assert str(refused.value) == trust_accounts.INVALID
    with Session(db) as s:
        user = s.get(User, out.user_id)
        assert user is not None and user.password_hash is None
        assert not s.exec(select(AuditEvent).where(AuditEvent.trigger == "invitation_accepted")).all()


def test_inviting_again_before_the_letter_went_keeps_it(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    cid = _contact(session, "service-lead", services).id or 0
    first = invite_contact(session, office, cid, clock)
    session.commit()
    later = FixedClock(clock.now() + timedelta(days=2))
    second = invite_contact(session, office, cid, later)
    session.commit()
    assert second.reused and not second.grant_created and not second.account_created
    assert (second.invitation_id, second.outbox_id) == (first.invitation_id, first.outbox_id)
    assert second.expires_at == later.now() + timedelta(days=7)
    assert len(session.exec(select(OutboxMessage)).all()) == 1
    assert len(session.exec(select(RoleGrant).where(RoleGrant.source == "contact")).all()) == 1


def test_an_existing_account_gets_the_grant_and_no_second_account(
    db: Engine, session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    c = _contact(session, "chief-executive", services)
    support_accounts.account(db, "Existing", (), email=c.email.upper())
    out = invite_contact(session, office, c.id or 0, clock)
    session.commit()
    assert not out.account_created and out.scope == "organisation"
    svc = session.get(Service, services[MRH])
    assert svc is not None and out.scope_id == svc.organisation_id
    assert len(session.exec(select(User).where(User.name == "Existing")).all()) == 1


@pytest.mark.parametrize("role", ["network-manager", "cqc", "tpd", "national-medical-lead", "regional-quality-lead"])
def test_a_contact_in_another_role_is_refused_with_a_reason(
    session: Session, services: dict[str, int], clock: FixedClock, db: Engine, role: str
) -> None:
    c = session.exec(select(Contact).where(Contact.role == role).order_by(col(Contact.id))).first()
    assert c is not None
    staff = support_accounts.account(db, "Everywhere Office", ("network-office",))
    with pytest.raises(InvalidInput, match=r"only Trust roles .* and commissioner roles"):
        invite_contact(session, staff, c.id or 0, clock)
    session.rollback()
    assert session.exec(select(AccessToken)).first() is None
    assert session.exec(select(User).where(User.email == c.email.lower())).first() is None


@pytest.mark.parametrize("ident", [2**63, 2**64 + 1, -1, 0])
def test_an_id_past_what_the_database_holds_is_not_found(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock, ident: int
) -> None:
    with pytest.raises(NotFound):
        invite_contact(session, office, ident, clock)


@pytest.mark.parametrize("bad", ["Ann\r\nBcc: everyone@example.org", "Ann\u2028Lee"])
def test_a_stored_name_with_a_line_break_is_refused(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock, bad: str
) -> None:
    svc = session.get(Service, services[MRH])
    assert svc is not None
    # As if written past the entry rule (an old row, or another tool): the use case checks again.
    session.execute(Contact.__table__.insert().values(  # type: ignore[attr-defined]
        role="lead-doctor", name=bad, email="ann.lee@mrh.nhs.example", service_id=svc.id,
        organisation_id=svc.organisation_id))  # fmt: skip
    session.commit()
    c = session.exec(select(Contact).where(Contact.email == "ann.lee@mrh.nhs.example")).one()
    with pytest.raises(InvalidInput, match="name"):
        invite_contact(session, office, c.id or 0, clock)
    session.rollback()
    assert session.exec(select(User).where(User.email == "ann.lee@mrh.nhs.example")).first() is None


def test_retired_and_not_yet_started_contacts_are_refused(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    c = _contact(session, "lead-doctor", services)
    contacts.retire_contact(session, c.id or 0, effective=DAY, principal=office, clock=clock)
    session.commit()
    with pytest.raises(InvalidInput, match="retired or replaced"):
        invite_contact(session, office, c.id or 0, clock)
    later = contacts.add_contact(session, role="lead-doctor", name="Dr New Start", email="new.start@mrh.nhs.example",
                                 service_id=services[MRH], valid_from=DAY + timedelta(days=5), principal=office,
                                 clock=clock)  # fmt: skip
    session.commit()
    assert isinstance(later, Contact)
    with pytest.raises(InvalidInput, match="holds the role from 2026-12-16"):
        invite_contact(session, office, later.id or 0, clock)


def test_who_may_invite(session: Session, services: dict[str, int], clock: FixedClock, db: Engine) -> None:
    cid = _contact(session, "service-lead", services).id or 0
    other = support_accounts.account(db, "CMMTN Office", ("network-office",), scope="network",
                                     scope_id=_network(session, "CMMTN").id)  # fmt: skip
    admin = support_accounts.account(db, "An Administrator", ("administrator",))
    auditor = support_accounts.account(db, "An Auditor", ("auditor",))
    operator = support_accounts.account(db, "An Operator", ("operator",))
    trust_user = support_accounts.account(db, "A Service Lead", ("service-lead",), scope="service",
                                          scope_id=services[MRH])  # fmt: skip
    for p in (other, admin, auditor, operator, trust_user):
        with pytest.raises(PermissionDenied):
            invite_contact(session, p, cid, clock)
    session.rollback()
    assert session.exec(select(AccessToken)).first() is None


def test_a_commissioners_grant_reaches_only_the_services_they_commission(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock,
    raise_risk: Callable[..., Risk], db: Engine,
) -> None:  # fmt: skip
    here, there = raise_risk(service=MRH), raise_risk(service="Mersey Harbour Major Trauma Centre")
    wmtn = _network(session, "WMTN")
    # The network's responsible commissioner: every service of the network, none of another's.
    rc = session.exec(select(Contact).where(Contact.role == "responsible-commissioner",
                                            Contact.network_id == wmtn.id)).one()  # fmt: skip
    rc_out = invite_contact(session, office, rc.id or 0, clock)
    # A commissioning lead for one service only.
    svc = session.get(Service, services["Severnside Trauma Unit"])
    assert svc is not None
    one = Contact(role="commissioning-lead", name="Ms Una Service", email="una@icb.nhs.example", service_id=svc.id,
                  organisation_id=svc.organisation_id)  # fmt: skip
    session.add(one)
    session.flush()
    one_out = invite_contact(session, office, one.id or 0, clock)
    session.commit()
    assert (rc_out.scope, rc_out.scope_id) == ("network", wmtn.id)
    assert (one_out.scope, one_out.scope_id) == ("service", svc.id)
    rc_user, one_user = session.get(User, rc_out.user_id), session.get(User, one_out.user_id)
    assert rc_user is not None and one_user is not None
    rc_p = accounts.principal_for(session, rc_user, "web", clock=clock)
    one_p = accounts.principal_for(session, one_user, "web", clock=clock)
    assert get_visible(session, rc_p, "risk", here.id or 0).id == here.id
    with pytest.raises(NotFound):
        get_visible(session, rc_p, "risk", there.id or 0)
    for risk in (here, there):
        with pytest.raises(NotFound):
            get_visible(session, one_p, "risk", risk.id or 0)
    own = raise_risk(service="Severnside Trauma Unit")
    assert get_visible(session, one_p, "risk", own.id or 0).id == own.id


def test_retiring_a_contact_ends_its_access_on_that_day(
    db: Engine, session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    c = _contact(session, "service-lead", services)
    out = invite_contact(session, office, c.id or 0, clock)
    session.commit()
    token = _token_for(session, out.invitation_id)
    done = accept_invitation(db, token, PASSWORD, None, clock)
    tomorrow = DAY + timedelta(days=1)
    change = contacts.retire_contact(session, c.id or 0, effective=tomorrow, principal=office, clock=clock)
    session.commit()
    g = session.get(RoleGrant, out.grant_id)
    assert g is not None and g.valid_until == tomorrow and g.revoked_at is None
    assert change.row.valid_until == tomorrow
    retired = session.exec(select(AuditEvent).where(AuditEvent.trigger == "retire_contact")).one()
    assert retired.data["grants_ended"] == [out.grant_id]
    with Session(db) as s:  # today: still in the role
        found = signin.session_principal(s, done.token, clock)
        assert found is not None and found[0].roles() == ["service-lead"]
    # Tomorrow: signed in still, but holding nothing; one minute before midnight, still in.
    late = FixedClock(DAY, hour=23)
    with Session(db) as s:
        found = signin.session_principal(s, signin.sign_in(db, out.email, PASSWORD, None, late).token, late)
        assert found is not None and found[0].roles() == ["service-lead"]
    next_day = FixedClock(tomorrow, hour=0)
    with Session(db) as s:
        found = signin.session_principal(s, signin.sign_in(db, out.email, PASSWORD, None, next_day).token, next_day)
        assert found is not None and found[0].roles() == []
        user = s.get(User, out.user_id)
        assert user is not None
        assert accounts.principal_for(s, user, "cli", clock=next_day).grants == ()
    ended = session.exec(select(AuditEvent).where(AuditEvent.trigger == "grant_ends")).one()
    assert ended.item_id == out.user_id and ended.data["grant_id"] == out.grant_id


def test_an_edit_to_another_person_ends_access_and_one_keeping_the_email_carries_it(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    a = _contact(session, "service-lead", services)
    b = _contact(session, "lead-nurse", services)
    out_a = invite_contact(session, office, a.id or 0, clock)
    out_b = invite_contact(session, office, b.id or 0, clock)
    session.commit()
    when = DAY + timedelta(days=3)
    new_a = contacts.edit_contact(session, a.id or 0, name="Dr Someone Else", email="someone.else@mrh.nhs.example",
                                  effective=when, principal=office, clock=clock).row  # fmt: skip
    new_b = contacts.edit_contact(session, b.id or 0, name=b.name + " Jones", effective=when, principal=office,
                                  clock=clock).row  # fmt: skip
    session.commit()
    ga, gb = session.get(RoleGrant, out_a.grant_id), session.get(RoleGrant, out_b.grant_id)
    assert ga is not None and ga.valid_until == when and ga.contact_id == a.id
    assert gb is not None and gb.valid_until is None and gb.contact_id == new_b.id
    assert new_a.id != a.id
    # The carried grant ends when its new contact row is retired.
    contacts.retire_contact(session, new_b.id or 0, effective=when + timedelta(days=1), principal=office, clock=clock)
    session.commit()
    session.refresh(gb)
    assert gb.valid_until == when + timedelta(days=1)


def test_an_escalation_role_retirement_ends_access_only_when_confirmed(
    session: Session, services: dict[str, int], office: Principal, clock: FixedClock, db: Engine
) -> None:
    wmtn = _network(session, "WMTN")
    rc = session.exec(select(Contact).where(Contact.role == "responsible-commissioner",
                                            Contact.network_id == wmtn.id)).one()  # fmt: skip
    out = invite_contact(session, office, rc.id or 0, clock)
    session.commit()
    change = contacts.retire_contact(session, rc.id or 0, effective=DAY, principal=office, clock=clock)
    session.commit()
    assert change.pending is not None
    g = session.get(RoleGrant, out.grant_id)
    assert g is not None and g.valid_until is None  # only proposed
    second = support_accounts.account(db, "WMTN Manager", ("network-manager",), scope="network", scope_id=wmtn.id)
    contacts.confirm_change(session, change.pending.id or 0, principal=second, clock=clock)
    session.commit()
    session.refresh(g)
    assert g.valid_until == DAY
    user = session.get(User, out.user_id)
    assert user is not None and accounts.principal_for(session, user, "web", clock=clock).grants == ()


def test_the_token_is_nowhere_in_the_database(
    db: Engine, session: Session, services: dict[str, int], office: Principal, clock: FixedClock
) -> None:
    out = invite_contact(session, office, _contact(session, "service-lead", services).id or 0, clock)
    session.commit()
    token = _token_for(session, out.invitation_id)
    accept_invitation(db, token, PASSWORD, "127.0.0.1", clock)
    dump = dump_all(db)
    assert token not in dump and token[len(TOKEN_PREFIX) :] not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump  # only its hash


def test_a_national_contact_is_refused(
    session: Session, services: dict[str, int], clock: FixedClock, db: Engine
) -> None:
    staff = support_accounts.account(db, "Everywhere Office", ("network-office",))
    national = Contact(role="service-lead", name="Dr Nowhere", email="nowhere@example.nhs.uk")
    session.add(national)
    session.commit()
    with pytest.raises(InvalidInput, match="national contact"):
        invite_contact(session, staff, national.id or 0, clock)
