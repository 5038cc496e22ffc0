"""Self-assessment use cases (seed 000 s5.1): start and circulate a declaration, import a
returned spreadsheet (or refuse it, writing to the service with the problems listed), and the
return's due date. Each opens its own transaction or runs in the caller's, through the engine.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.selfassessment import SelfAssessment, StandardSet
from models.tables import RefusedAttempt, Service
from models.types import is_row_id
from states import engine, permissions
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.errors import InvalidInput, MissingActor, NotFound, PermissionDenied
from states.machines.selfassessment import NEXT_STEP, item_view, ref_of, spreadsheet, year_label
from states.machines.spec import get_spec
from states.machines.standards import (
    SelfAssessmentPolicy,
    SpreadsheetRejected,
    cell_text,
    check_rows,
    current_set,
    standards_of,
)
from states.principal import Principal
from states.scope import service_of
from states.services.selfassessment_import import read_workbook, too_big
from states.uploads import NAME_BAD_CATEGORIES
from states.views import work


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


# ---------------------------------------------------------------- the Trust portal (issue 16 item 6)
#
# The service's Leads/Managers answer a circulated declaration themselves: download the
# Appendix 2 spreadsheet, upload the completed one, or fill it in online standard by standard.
# Both answers go through ``receive`` as the signed-in person (the same use case and trigger as
# the network office's import): the same rows, the same checks, the same record. A refused
# answer stores nothing of it: no rows, no version, no letter (the person sees every problem on
# the page; the network office's import still writes the refusal letter). The refused attempt
# itself is recorded (``RefusedAttempt``: who, when, the problems), as every refusal is.

ONLINE_FIELDS = ("status", "figure", "comments", "evidence")  # the service's four columns
ONLINE_COLUMNS = {"status": "Self-Assessment", "figure": "Figure Achieved", "comments": "Supporting Comments",
                  "evidence": "Evidence location"}  # fmt: skip
FIRST_ROW = 2  # the spreadsheet's first standard row (row 1 is the header): the online rows are numbered alike
_PROBLEM = re.compile(r"^row (\d+), ([^:]+): (.*)$", re.DOTALL)
_NO_ROW = re.compile(r"^(Ref No\.): (.*)$", re.DOTALL)
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029/\\]")


def _visible(session: Session, principal: Principal, assessment_id: int) -> SelfAssessment:
    row = work.get_visible(session, principal, "selfassessment", assessment_id)  # NotFound if not theirs
    assert isinstance(row, SelfAssessment)
    return row


def may_submit(session: Session, principal: Principal, row: SelfAssessment) -> str | None:
    """Why ``principal`` may not send this declaration's return now (None: they may)."""
    spec = get_spec("selfassessment")
    rows = spec.rows_for("receive", row.state)
    if not rows:
        return f"this self-assessment is {row.state}: a return is taken only while it is circulated"
    allowed = permissions.roles_for(spec, "receive", rows, permissions.rules(session))
    try:
        principal.choose(allowed, spec.recipient_scope(session, row), f"return self-assessment {row.id}")
    except PermissionDenied:
        return "only the service's Leads and Managers return the self-assessment"
    return None


def portal_view(session: Session, principal: Principal, assessment_id: int, clock: Clock) -> dict[str, Any]:
    """A declaration as its service sees it: the standards, what is asked and by when, whether
    this person may answer it now (and why not), and each standard's online form field names."""
    row = _visible(session, principal, assessment_id)
    svc, org, _ = service_of(session, row.service_id)
    sset = session.get(StandardSet, row.standard_set_id)
    assert sset is not None
    due = return_due(session, row)
    today = local_date(clock.now())
    cal = calendar_for(get_spec("selfassessment").nation_of(session, row))
    standards = item_view(session, row)
    for n, std in enumerate(standards):
        std["row"] = FIRST_ROW + n
        std["fields"] = {f: f"{f}-{n}" for f in ONLINE_FIELDS}
    return {
        "id": row.id,
        "ref": ref_of(row),
        "state": row.state,
        "version": row.version,
        "programme_year": year_label(row.programme_year),
        "service": {"id": svc.id, "name": svc.name, "kind": svc.kind},
        "organisation": {"name": org.name},
        "standard_set": {"name": sset.name, "version": sset.version},
        "circulated_on": row.circulated_on,
        "received_on": row.received_on,
        "return_due": due,
        "working_days_left": cal.working_days_between(today, due) if due else None,
        "asked": next((v for k, v in NEXT_STEP.items() if k.value == row.state), None),
        "why_not": may_submit(session, principal, row),
        "standards": standards,
        "max_bytes": SelfAssessmentPolicy.from_env().selfassessment_max_file_bytes,
    }


def portal_spreadsheet(
    session: Session, principal: Principal, assessment_id: int, clock: Clock
) -> tuple[str, str, str, dict[str, Any]]:
    """(filename, content type, renderer name, its data) of the declaration's Appendix 2 workbook,
    the one circulated with the request letter (notifications renders it: ``RENDERERS``)."""
    row = _visible(session, principal, assessment_id)
    filename, content_type, (renderer, data) = spreadsheet(session, row, return_due(session, row), clock.now())
    return filename, content_type, renderer, data


def upload_limit() -> int:
    """The most bytes a returned spreadsheet may have (local policy)."""
    return SelfAssessmentPolicy.from_env().selfassessment_max_file_bytes


def safe_filename(name: str | None) -> str:
    """A browser's file name as recorded: its last part, one line, at most 120 characters."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(" " if unicodedata.category(ch) in NAME_BAD_CATEGORIES else ch for ch in base)  # bidi, zero width
    clean = " ".join(_UNSAFE_NAME.sub(" ", base).split())[:120]
    return clean or "return.xlsx"


def submit_upload(
    db: Engine,
    principal: Principal,
    assessment_id: int,
    data: bytes,
    *,
    filename: str | None,
    size: int | None = None,
    clock: Clock,
) -> SelfAssessment:
    """The service uploads its completed spreadsheet: imported as the network office's import
    is (``import_spreadsheet``), as ``principal``, without the refusal letter. ``size`` is the
    upload's full size when only the first bytes were read (over the limit: refused unread)."""
    name = safe_filename(filename)
    with Session(db) as session:
        _visible(session, principal, assessment_id)
    total = max(len(data), size or 0)
    limit = upload_limit()
    if total <= limit:
        return import_spreadsheet(
            db, assessment_id, data, filename=name, principal=principal, clock=clock, letter=False
        )
    with Session(db) as session:
        _, role = _receiving(db, session, assessment_id, name, principal=principal, clock=clock)
    exc = SpreadsheetRejected([too_big(total, limit)])
    _record_refusal(db, assessment_id, exc, filename=name, principal=principal, role=role, clock=clock, letter=False)
    raise exc


def online_rows(session: Session, row: SelfAssessment, posted: Mapping[str, str]) -> list[dict[str, Any]]:
    """The online form's answers as the rows a spreadsheet gives (numbered as its rows are)."""
    rows = []
    for n, std in enumerate(standards_of(session, row.standard_set_id)):
        got = {f: str(posted.get(f"{f}-{n}") or "") for f in ONLINE_FIELDS}
        rows.append({"row": FIRST_ROW + n, "ref": std.ref, **{k: v.strip() or None for k, v in got.items()}})
        rows[-1]["comments"] = cell_text(got["comments"])
        rows[-1]["evidence"] = cell_text(got["evidence"])
    return rows


def submit_online(
    db: Engine, principal: Principal, assessment_id: int, posted: Mapping[str, str], *, clock: Clock
) -> SelfAssessment:
    """The service fills in the declaration online: the same ``receive`` with the same rows, so
    the same record as an uploaded spreadsheet with the same answers. Refused, nothing stored
    and no letter: ``SpreadsheetRejected`` with every problem, by row and column."""
    with Session(db, expire_on_commit=False) as session:
        _visible(session, principal, assessment_id)
        row, role = _receiving(db, session, assessment_id, "the online form", principal=principal, clock=clock)
        rows = online_rows(session, row, posted)
        try:
            check_rows(rows, standards_of(session, row.standard_set_id))
        except SpreadsheetRejected as exc:
            session.rollback()
            _record_refusal(db, assessment_id, exc, filename="the online form", principal=principal, role=role,
                            clock=clock, letter=False)  # fmt: skip
            raise
        out = engine.fire(session, "selfassessment", assessment_id, "receive", principal=principal, clock=clock,
                          note="returned online", params={"filename": "the online form", "rows": rows})  # fmt: skip
        session.commit()
        return out.row  # type: ignore[return-value]


def problem_parts(problem: str) -> dict[str, Any]:
    """A refusal's problem as {row, column, text}: "row 7, Self-Assessment: missing" gives row 7,
    column 'Self-Assessment'; a problem with the whole file has neither."""
    found = _PROBLEM.match(problem)
    if found:
        return {"row": int(found.group(1)), "column": found.group(2).strip(), "text": found.group(3).strip()}
    found = _NO_ROW.match(problem)
    if found:
        return {"row": None, "column": found.group(1), "text": found.group(2).strip()}
    return {"row": None, "column": None, "text": problem.removeprefix("file: ").strip()}
