"""Self-assessment use cases (seed 000 s5.1): start and circulate a declaration, import a
returned spreadsheet (or refuse it, writing to the service with the problems listed), and the
return's due date. Each opens its own transaction or runs in the caller's, through the engine.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.selfassessment import SelfAssessment
from models.tables import RefusedAttempt, Service
from models.types import is_row_id
from states import engine, permissions
from states.clock import Clock, local_date
from states.errors import InvalidInput, MissingActor, NotFound, PermissionDenied
from states.machines.selfassessment import ref_of
from states.machines.standards import SelfAssessmentPolicy, SpreadsheetRejected, check_rows, current_set, standards_of
from states.principal import Principal
from states.services.selfassessment_import import read_workbook, too_big


def return_due(session: Session, row: SelfAssessment) -> date | None:
    assert row.id is not None
    return next(
        (d.due_on for d in engine.pending_deadlines(session, "selfassessment", row.id) if d.name == "return"), None
    )


def start(
    session: Session,
    service_id: int,
    programme_year: int,
    *,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> Any:
    """Create a declaration against the set in force for the service's kind today, and circulate it."""
    if not 2000 <= programme_year <= 2100:
        raise InvalidInput(f"programme year {programme_year}: give the year it starts, e.g. 2026 for 2026-27")
    svc = session.get(Service, service_id) if is_row_id(service_id) else None
    if svc is None:
        raise NotFound(f"service {service_id} not found (peerwatch service list)")
    today = local_date(clock.now())
    sset = current_set(session, svc.kind, today)
    if sset is None:
        raise NotFound(
            f"no standard set in force for {svc.kind!r} on {today.isoformat()}: "
            "load one with peerwatch selfassessment standards load FILE"
        )
    row = SelfAssessment(service_id=service_id, standard_set_id=sset.id, programme_year=programme_year, state="new")  # type: ignore[arg-type]
    return engine.create(session, "selfassessment", row, "circulate", principal=principal, clock=clock, note=note)


def import_spreadsheet(
    db: Engine,
    assessment_id: int,
    data: bytes,
    *,
    filename: str,
    principal: Principal,
    clock: Clock,
    letter: bool = True,
) -> SelfAssessment:
    """Import a returned spreadsheet in one transaction.

    A refused file imports nothing: the refused attempt is stored with its problems and, unless
    ``letter`` is False (the operator picked the wrong file), the service is written to through
    the engine (``refuse_return``: an audit event and the ``selfassessment_refused`` letter
    listing the problems, the first 50 and the count) so it can correct and return it.
    """
    with Session(db, expire_on_commit=False) as session:
        row, role = _receiving(db, session, assessment_id, filename, principal=principal, clock=clock)
        try:
            rows = read_workbook(data, expected_ref=ref_of(row))
            check_rows(rows, standards_of(session, row.standard_set_id))  # every problem at once, before the engine
        except SpreadsheetRejected as exc:
            session.rollback()
            _record_refusal(
                db, assessment_id, exc, filename=filename, principal=principal, role=role, clock=clock, letter=letter
            )
            raise
        out = engine.fire(
            session,
            "selfassessment",
            assessment_id,
            "receive",
            principal=principal,
            clock=clock,
            note=f"imported {filename}",
            params={"filename": filename, "rows": rows},
        )
        session.commit()
        return out.row  # type: ignore[return-value]


def _receiving(
    db: Engine, session: Session, assessment_id: int, filename: str, *, principal: Principal, clock: Clock
) -> tuple[SelfAssessment, str]:
    """The declaration, and the role ``principal`` receives its return in. Refused before the
    file is read, nothing changed, when the declaration cannot receive one (the engine names
    what is allowed) or the principal holds no role that may receive it in the service's scope
    (the refused attempt is recorded with the account that tried)."""
    if not isinstance(principal, Principal):
        raise MissingActor(f"nobody is identified as acting to import self-assessment {assessment_id}: sign in")
    spec, row = engine.load(session, "selfassessment", assessment_id)
    assert isinstance(row, SelfAssessment)
    rows = spec.rows_for("receive", row.state)
    if not rows:
        engine.fire(session, "selfassessment", assessment_id, "receive", principal=principal, clock=clock)
    allowed = permissions.roles_for(spec, "receive", rows, permissions.rules(session))
    try:
        role = principal.choose(
            allowed, spec.recipient_scope(session, row), f"import a return to self-assessment {assessment_id}"
        )
    except PermissionDenied as exc:
        session.rollback()
        engine.record_refusal(
            db,
            "selfassessment",
            assessment_id,
            "receive",
            principal,
            principal.prefer,
            clock,
            str(exc),
            {"filename": filename},
        )
        raise
    return row, role


def _record_refusal(
    db: Engine,
    assessment_id: int,
    exc: SpreadsheetRejected,
    *,
    filename: str,
    principal: Principal,
    role: str,
    clock: Clock,
    letter: bool,
) -> None:
    """The refused attempt, and (through the engine) the letter listing the problems to the service."""
    with Session(db) as session:
        session.add(
            RefusedAttempt(
                kind="selfassessment",
                item_id=assessment_id,
                trigger="receive",
                actor=principal.name,
                role=role,
                user_id=principal.user_id,
                at=clock.now(),
                reason=str(exc),
                data={"filename": filename, "problems": exc.problems, "count": exc.count},
            )
        )
        if letter:
            engine.fire(
                session,
                "selfassessment",
                assessment_id,
                "refuse_return",
                principal=principal,
                clock=clock,
                note=f"refused {filename}: {exc.count} problem(s)",
                params={"filename": filename, "problems": exc.problems, "count": exc.count},
            )
        session.commit()


def import_file(
    db: Engine, assessment_id: int, path: Path, *, principal: Principal, clock: Clock, letter: bool = True
) -> SelfAssessment:
    """``import_spreadsheet`` from a file; a file over the size limit is refused without being read."""
    limit = SelfAssessmentPolicy.from_env().selfassessment_max_file_bytes
    size = path.stat().st_size
    if size <= limit:
        return import_spreadsheet(
            db, assessment_id, path.read_bytes(), filename=path.name, principal=principal, clock=clock, letter=letter
        )
    with Session(db) as session:
        _, role = _receiving(db, session, assessment_id, path.name, principal=principal, clock=clock)
    exc = SpreadsheetRejected([too_big(size, limit)])
    _record_refusal(
        db, assessment_id, exc, filename=path.name, principal=principal, role=role, clock=clock, letter=letter
    )
    raise exc
