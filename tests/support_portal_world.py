"""A Trust's portal things, made through the use cases, for the authorisation matrices
(tests/test_web_matrix.py, tests/test_portal_isolation.py): for one service, a risk answered
with a file and one awaiting its response (with the formal notification's letter), a visit
driven to its report with an accuracy point and its evidence, an action plan agreed with an
action completed with a file, a circulated self-assessment, and (a maternity or neonatal
service) a monthly board review whose measure proposed an alert; for one Trust, its annual
report with a version received. Every text and file name carries the kit's ``mark``, so a
page that shows another Trust's things is found by searching for it.

A module-scoped database (``module_database``) lets a test module build its world once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import Contact, OutboxMessage, Service, init_db
from models.accounts import AccessToken, RoleGrant, User
from models.cycle import Submission, SubmissionFile
from models.portal import ActionMilestone, MeasureAlert, Upload
from states import engine
from states.clock import SystemClock, local_date
from states.principal import Principal
from states.services import (
    accounts,
    acting,
    board_reviews,
    intake,
    responses,
    selfassessment,
    signin,
    signin_checks,
    trust_accounts,
)
from states.services import action_plans as plans
from states.services import portal_submissions as portal
from states.services.standards import load_standard_sets, read_library
from tests import support_accounts
from tests.databases import database_for_test, release
from tests.factories import MRH, SERVICE_ROLES, reference_data
from tests.support_reports import fire, report_of_visit

PDF = b"%PDF-1.4\n% evidence for the matrix\n"
LIBRARY = Path(__file__).resolve().parents[1] / "docs" / "standards-example.yaml"
PASSWORD = "tangerine ledger quietly 49 matrix"


@contextmanager
def module_database(tmp: Path) -> Iterator[tuple[str, Engine]]:
    """A database of the module's own (tests/conftest.py ``db_url`` for one module), the
    environment it needs, and the tests' cheap password hashing while the world is built."""
    from argon2 import PasswordHasher  # lazy: as tests/conftest.py patches it, for the module's world

    url = database_for_test(tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEERWATCH_DATABASE_URL", url)
        mp.setenv("PEERWATCH_OUTBOX_DIR", f"{tmp}/outbox")
        mp.setenv("PEERWATCH_ANCHOR_DIR", f"{tmp}/anchors")
        mp.setattr(signin_checks, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        mp.setattr(signin_checks, "_DUMMY", [])
        try:
            yield url, init_db(url)
        finally:
            release(url)


def reference(db: Engine) -> dict[str, int]:
    with Session(db) as s:
        out = reference_data(s)
        s.commit()
    return out


def sign_in(db: Engine, principal: Principal) -> tuple[str, str]:
    """(session cookie, CSRF token) of a real sign-in as ``principal``."""
    with Session(db) as s:
        user = s.get(User, principal.user_id)
        assert user is not None and user.email
        user.password_hash = signin.hash_password(PASSWORD)
        email = user.email
        s.add(user)
        s.commit()
    done = signin.sign_in(db, email, PASSWORD, None, SystemClock())
    return done.token, done.csrf


def api_token(db: Engine, principal: Principal, purpose: str = "api") -> tuple[int, str]:
    with Session(db) as s:
        row, token = accounts.create_token(s, principal, SystemClock(), f"matrix {purpose}", purpose=purpose)
        s.commit()
        assert row.id is not None
        return row.id, token


def from_contact(db: Engine, contact_id: int, scope: str, scope_id: int) -> Principal:
    """An account made from a contact (a grant of its role, source "contact"), as an invitation makes one."""
    with Session(db, expire_on_commit=False) as s:
        c = s.get(Contact, contact_id)
        assert c is not None
        user = User(name=c.name, email=c.email.lower(), status="active")
        s.add(user)
        s.flush()
        assert user.id is not None
        s.add(RoleGrant(user_id=user.id, role=c.role, scope=scope, scope_id=scope_id, source="contact",
                        contact_id=c.id))  # fmt: skip
        s.commit()
        return accounts.principal_for(s, user, "test")


def contact_of(db: Engine, role: str, *, service_id: int | None = None, organisation_id: int | None = None) -> int:
    with Session(db) as s:
        q = select(Contact.id).where(Contact.role == role)
        if service_id is not None:
            q = q.where(Contact.service_id == service_id)
        else:
            q = q.where(Contact.organisation_id == organisation_id, col(Contact.service_id).is_(None))
        found = s.exec(q.order_by(col(Contact.id))).first()
        assert found is not None, (role, service_id, organisation_id)
        return found


def new_service(db: Engine, name: str, kind: str, like: int, mark: str) -> int:
    """A service of ``like``'s Trust and network, with its service contacts (each named with ``mark``)."""
    with Session(db) as s:
        twin = s.get(Service, like)
        assert twin is not None
        svc = Service(name=name, kind=kind, organisation_id=twin.organisation_id, network_id=twin.network_id)
        s.add(svc)
        s.flush()
        assert svc.id is not None
        for n, role in enumerate(("service-lead", *SERVICE_ROLES)):
            s.add(Contact(role=role, name=f"Ms Ana {mark} {n}", email=f"ana.{mark.lower()}.{n}@trust.nhs.example",
                          service_id=svc.id, organisation_id=twin.organisation_id))  # fmt: skip
        s.commit()
        return svc.id


def load_standards(db: Engine, staff: Principal, *kinds: str) -> None:
    """The example library (Adult Critical Care, Major Trauma Centre) and ten standards for each of ``kinds``."""
    sets = read_library(LIBRARY) + [
        {"service_kind": k, "name": f"{k} standards", "version": "1", "effective_from": "2025-04-01",
         "standards": [{"ref": f"{n}.1", "descriptor": f"standard {n}", "criteria_met": "yes",
                        "criteria_partly": "partly", "criteria_unmet": "no"} for n in range(1, 6)]}
        for k in kinds
    ]  # fmt: skip
    with Session(db) as s:
        load_standard_sets(s, sets, principal=staff, clock=SystemClock())
        s.commit()


@dataclass
class Kit:
    """One service's things (ids by name) and the strings that are its own."""

    mark: str
    service: int
    organisation: int
    network: int
    ids: dict[str, int] = field(default_factory=dict)

    def strings(self) -> list[str]:
        return [self.mark]


def staff_accounts(db: Engine) -> tuple[Principal, Principal]:
    """A Network Manager and a network office account for the whole installation (they drive the items)."""
    nm = support_accounts.account(db, "Kit Manager", ("network-manager",))
    office = support_accounts.account(db, "Kit Office", ("network-office", "regional-lead"))
    return nm, office


def build_kit(
    db: Engine, service_id: int, mark: str, lead: Principal, nm: Principal, office: Principal, *, perinatal: bool
) -> Kit:
    """Everything of one service, made by its service lead (``lead``) and the network's staff."""
    clock = SystemClock()
    today = local_date(clock.now())
    with Session(db) as s:
        svc = s.get(Service, service_id)
        assert svc is not None
        kit = Kit(mark, service_id, svc.organisation_id, svc.network_id)
    ids = kit.ids
    # a risk answered with a file; another awaiting the Trust's response
    for name in ("risk", "risk_waiting"):
        with Session(db, expire_on_commit=False) as s:
            out = intake.raise_risk(
                s, service=service_id, level="SC", title=f"Risk {mark} birthing pool drain blocked ({name})",
                standard=None, visit_date=today, identified=None, impact=None, likelihood=None,
                doctors_in_training=False, principal=nm, clock=clock, note=None,
            )  # fmt: skip
            s.commit()
            assert out.row.id is not None
            ids[name] = out.row.id
        acting.fire(db, nm, clock, "risk", ids[name], "send_formal_notification")
    done = responses.submit(
        db, lead, ids["risk"], f"Response {mark}: a second consultant on call", [(f"plan-{mark}.pdf", PDF)], clock
    )
    assert done.id is not None
    ids["response"] = done.id
    with Session(db) as s:
        ids["upload_response"] = _one(s, select(Upload.id).where(Upload.owner_kind == "risk_response",
                                                                  Upload.owner_id == done.id))  # fmt: skip
        ids["letter"] = _one(s, select(OutboxMessage.id).where(OutboxMessage.kind == "risk",
                                                               OutboxMessage.item_id == ids["risk_waiting"]))  # fmt: skip
        ids["contact"] = _one(s, select(Contact.id).where(Contact.service_id == service_id,
                                                          Contact.role == "lead-nurse"))  # fmt: skip
    # a visit driven to its report, sent for the accuracy check; the service's point with evidence
    with Session(db, expire_on_commit=False) as s:
        visit, report = report_of_visit(s, {MRH: service_id}, today - timedelta(days=28))
        assert visit.id is not None and report.id is not None
        ids["visit"], ids["report"] = visit.id, report.id
        fire(s, report.id, "send_for_accuracy_check", today)
    item = portal.record_inaccuracy(
        db, report_id=ids["report"], files=[(f"rota-{mark}.pdf", PDF)], principal=lead, clock=clock,
        text=f"The report says no consultant was present at 09:00; the rota {mark} shows one on site that morning",
    )  # fmt: skip
    assert item.id is not None
    ids["accuracy_item"] = item.id
    with Session(db) as s:
        ids["upload_accuracy"] = _one(s, select(Upload.id).where(Upload.owner_kind == "accuracy_item",
                                                                  Upload.owner_id == item.id))  # fmt: skip
    # an action plan agreed, its action completed with a file
    with Session(db, expire_on_commit=False) as s:
        plan = plans.create_plan(s, lead, service_id, 2026, report_id=ids["report"], title=f"Plan {mark}", clock=clock)
        assert plan.id is not None
        action = plans.add_action(s, lead, plan.id, f"Action {mark}: recruit a coordinator", f"Dr Owner {mark}",
                                  milestones=[(f"Milestone {mark}: post advertised", today + timedelta(days=30))],
                                  clock=clock)  # fmt: skip
        assert action.id is not None
        plans.act(s, lead, plan.id, "submit", clock=clock)
        plans.act(s, nm, plan.id, "agree", clock=clock)
        plans.complete_action(s, lead, plan.id, action.id, f"Evidence {mark}: appointed", [(f"evidence-{mark}.pdf", PDF)],
                              clock=clock)  # fmt: skip
        s.commit()
        ids["plan"], ids["action"] = plan.id, action.id
        ids["milestone"] = _one(s, select(ActionMilestone.id).where(ActionMilestone.action_id == action.id))
        ids["upload_plan"] = _one(s, select(Upload.id).where(Upload.owner_kind == "plan_action",
                                                              Upload.owner_id == action.id))  # fmt: skip
    # a self-assessment circulated to the service
    with Session(db, expire_on_commit=False) as s:
        out = selfassessment.start(s, service_id, 2026, principal=office, clock=clock)
        s.commit()
        ids["selfassessment"] = out.row.id
    if perinatal:
        month = today.replace(day=1)
        with Session(db, expire_on_commit=False) as s:
            review = board_reviews.record_board_review(
                s, lead, service_id, month, today,
                {"training_compliance_pct": "80", "midwife_staffing_fill_pct": "95", "incidents_moderate_or_above": "1",
                 "in_mssp": "no", "cqc_overall": "good", "incidents_actions": f"Reviews {mark} under way"},
                clock,
            )  # fmt: skip
            s.commit()
            assert review.id is not None
            ids["board_review"] = review.id
            ids["alert"] = _one(s, select(MeasureAlert.id).where(MeasureAlert.service_id == service_id))
    return kit


def trust_submission(db: Engine, kit: Kit, ceo: Principal, office: Principal) -> None:
    """The Trust's annual report, requested by the office, a version received from its Chief Executive."""
    clock = SystemClock()
    today = local_date(clock.now())
    with Session(db, expire_on_commit=False) as s:
        row = Submission(network_id=kit.network, organisation_id=kit.organisation, programme_year=2026,
                         doc_type="annual_report", due_on=today + timedelta(days=30), state="new")  # fmt: skip
        out = engine.create(s, "submission", row, "request", principal=office, clock=clock)
        s.commit()
        assert out.row.id is not None
        kit.ids["submission"] = out.row.id
    portal.upload_document(db, submission_id=kit.ids["submission"], filename=f"annual-report-{kit.mark}.pdf",
                           data=PDF, principal=ceo, clock=clock)  # fmt: skip
    with Session(db) as s:
        kit.ids["submission_version"] = _one(
            s, select(SubmissionFile.version).where(SubmissionFile.submission_id == kit.ids["submission"])
        )


def _one(s: Session, q: Any) -> int:
    found = s.exec(q).first()
    assert found is not None, str(q)
    return int(found)


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def live_invitation(db: Engine, staff: Principal, contact_id: int, token: str) -> None:
    """An invitation of the contact whose link is ``token`` (as the dispatcher seals one when it sends the letter)."""
    clock = SystemClock()
    with Session(db) as s:
        done = trust_accounts.invite_contact(s, staff, contact_id, clock)
        row = s.get(AccessToken, done.invitation_id)
        assert row is not None
        row.token_hash = hashlib.sha256(token.encode()).hexdigest()
        s.add(row)
        s.commit()


MATRIX_MARK = "mkMRHzz"
MATERNITY_MARK = "mkMATzz"


def network_a_portal(db: Engine, services: dict[str, int]) -> tuple[dict[str, int], dict[str, Principal], str]:
    """Network A's portal things for tests/test_web_matrix.py: a kit on MRH (its Service Lead's),
    a maternity service of MRH's Trust with a board review and its alert, the Trust's annual report,
    and a live invitation; (ids, Trust A's people by matrix name, the invitation's token)."""
    nm, office = staff_accounts(db)
    load_standards(db, office)
    mrh = services[MRH]
    with Session(db) as s:
        svc = s.get(Service, mrh)
        assert svc is not None
        org = svc.organisation_id
    people = {
        "trust": from_contact(db, contact_of(db, "service-lead", service_id=mrh), "service", mrh),
        "ceo": from_contact(db, contact_of(db, "chief-executive", organisation_id=org), "organisation", org),
        "commissioner": support_accounts.account(
            db, "Matrix Commissioner", ("responsible-commissioner",), scope="service", scope_id=mrh
        ),
    }
    kit = build_kit(db, mrh, MATRIX_MARK, people["trust"], nm, office, perinatal=False)
    trust_submission(db, kit, people["ceo"], office)
    maternity = new_service(db, f"Midland Royal Maternity {MATERNITY_MARK}", "Maternity", mrh, MATERNITY_MARK)
    midwife = from_contact(db, contact_of(db, "service-lead", service_id=maternity), "service", maternity)
    with Session(db, expire_on_commit=False) as s:
        clock = SystemClock()
        today = local_date(clock.now())
        measures = {"training_compliance_pct": "80", "incidents_actions": f"Reviews {MATERNITY_MARK}"}
        board_reviews.record_board_review(s, midwife, maternity, first_of_month(today), today, measures, clock)
        s.commit()
        alert = _one(s, select(MeasureAlert.id).where(MeasureAlert.service_id == maternity))
    token = f"pwi_matrix_{MATRIX_MARK}_invitation_token_0123456789"
    live_invitation(db, office, contact_of(db, "lead-doctor", service_id=mrh), token)
    ids = {f"kit_{k}": v for k, v in kit.ids.items()}
    ids.update(maternity=maternity, alert=alert, invite_contact=contact_of(db, "lead-nurse", service_id=mrh))
    return ids, people, token
