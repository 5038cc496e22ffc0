"""What a Trust sends the network through the portal (issue 16 items 5, 7, 8): the factual
accuracy points on a draft report, an appeal against a published one, and its documents (annual
report, work plan, operational policy) with the further information the network asks for.

Each is the same trigger the network office fires today, through the engine as the signed-in
account (its Trust role in the item's scope), so the audit says the service did it and the
machine's rules apply unchanged: an inaccuracy stated as a later improvement is refused
(``states/machines/report.py``), an appeal is the Chief Executive's, within 4 weeks of
publication, on an IR, SC or the compliance judgement (``states/machines/appeal.py``), a document
is a new version with its SHA-256 and how late it came (``states/machines/submission.py``).

Every file is judged by its content (``states/uploads.check_file``) before anything is stored; a
refused attempt is recorded with the account that tried (a hidden item is only ``NotFound``).
The ``*_page`` functions are the pages' read models: what is asked, by when, what was sent, and,
where the form is not offered, why not, worded here and not in a template.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from models.accounts import RoleGrant
from models.cycle import Lateness, Submission, SubmissionFile
from models.db import begin_write
from models.tables import AccuracyItem, Appeal, AuditEvent, Contact, Report
from models.types import is_row_id
from states import engine
from states.clock import Clock, local_date
from states.errors import GuardRefused, InvalidInput, NotFound, PeerwatchError, PermissionDenied
from states.machines.appeal import appealable, window_closes
from states.machines.report import (
    CHECK_OPEN,
    SERVICE_ACCURACY_ROLES,
    accuracy_reply_due,
    accuracy_window_problem,
    document,
)
from states.machines.spec import get_spec, outstanding_deadlines
from states.machines.submission import DOC_NAMES, OPEN_FOR_UPLOAD, TRUST_DOCUMENT_ROLES
from states.principal import Grant, Principal
from states.roles import CONTACT_ROLES
from states.services import accounts
from states.services import appeal as appeals
from states.text import clean_paragraphs
from states.uploads import check_file, store_upload, uploads_of
from states.views.forms import permission_table
from states.views.work import get_visible

CHIEF_EXECUTIVE = "chief-executive"
MAX_FILES = 10  # files sent with one inaccuracy or one appeal
Files = Sequence[tuple[str, bytes]]


def _names(roles: Sequence[str]) -> str:
    names = [CONTACT_ROLES.get(r, r) for r in roles]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def _day(d: date | None) -> str:
    return f"{d:%a %d %b %Y}" if d is not None else ""


def _checked(files: Files) -> list[str]:
    """Every file's name, once each is accepted by its content (InvalidInput for the first that is not)."""
    if len(files) > MAX_FILES:
        raise InvalidInput(f"{len(files)} files: send at most {MAX_FILES} at once")
    for name, data in files:
        check_file(name, data)
    return [name for name, _ in files]


def _role_for(session: Session, principal: Principal, kind: str, row: Any, trigger: str) -> str | None:
    """The role ``principal`` would fire ``trigger`` in on ``row`` now (None: none fits)."""
    spec = get_spec(kind)
    roles = permission_table(session).roles(spec, trigger, spec.rows_for(trigger, row.state))
    try:
        return principal.choose(roles, spec.recipient_scope(session, row), f"{trigger} on {kind} {row.id}")
    except PermissionDenied:
        return None


def _files_view(session: Session, owner_kind: str, owner_id: int | None) -> list[dict[str, Any]]:
    if owner_id is None:
        return []
    return [
        {"id": u.id, "filename": u.filename, "version": u.version, "size": u.size, "sha256": u.sha256}
        for u in uploads_of(session, owner_kind, owner_id)
    ]


def _visible(db: Engine, principal: Principal, kind: str, item_id: int) -> None:
    """NotFound unless ``principal`` may see the item (checked before anything else is judged)."""
    with Session(db) as s:
        get_visible(s, principal, kind, item_id)


def _refuse(
    db: Engine,
    kind: str,
    item_id: int,
    trigger: str,
    principal: Principal,
    clock: Clock,
    exc: Exception,
    params: dict[str, Any],
) -> None:
    """Record a refused attempt (not for an item gone missing meanwhile: that is only 'not found')."""
    if isinstance(exc, PeerwatchError) and not isinstance(exc, NotFound):
        engine.record_refusal(db, kind, item_id, trigger, principal, principal.prefer, clock, str(exc), params)


# --------------------------------------------------------------------------- factual accuracy (000 s5.4)


def accuracy_refusal(session: Session, principal: Principal, row: Report, today: date) -> str | None:
    """Why ``principal`` may not state an inaccuracy on ``row`` now (None: they may)."""
    if row.state not in CHECK_OPEN:
        return accuracy_window_problem(session, row, today)
    role = _role_for(session, principal, "report", row, "record_inaccuracy")
    if role is None:
        return (
            f"only the service states its inaccuracies: its {_names(SERVICE_ACCURACY_ROLES)}; "
            "your account holds none of these roles for this service"
        )
    return accuracy_window_problem(session, row, today) if role in SERVICE_ACCURACY_ROLES else None


def accuracy_page(session: Session, principal: Principal, report_id: int, today: date) -> dict[str, Any]:
    """The draft's findings as the service sees them (once the draft is sent to it), the check's
    due date, the inaccuracies stated with their outcomes and files, and whether another may be added."""
    row = get_visible(session, principal, "report", report_id)
    assert isinstance(row, Report)
    doc = document(session, row)
    sent = row.state not in ("new", "drafting")
    items = session.exec(select(AccuracyItem).where(AccuracyItem.report_id == row.id).order_by(col(AccuracyItem.id)))
    why_not = accuracy_refusal(session, principal, row, today)
    return {
        "report": {"id": row.id, "state": row.state, "version": row.version, "issue": row.issue},
        "place": {k: doc[k] for k in ("service", "organisation", "network")},
        "findings": {k: doc[k] for k in ("visit", "compliance", "positives", "risks")} if sent else None,
        "due_on": accuracy_reply_due(session, row),
        "items": [
            {
                "id": i.id,
                "text": i.text,
                "outcome": i.outcome or "not decided yet",
                "files": _files_view(session, "accuracy_item", i.id),
            }
            for i in items
        ],
        "may": why_not is None,
        "why_not": why_not,
    }


def record_inaccuracy(
    db: Engine, *, report_id: int, text: str, files: Files = (), principal: Principal, clock: Clock
) -> AccuracyItem:
    """One inaccuracy as the service states it, with its evidence files, through the engine's
    ``record_inaccuracy`` as the signed-in account: refused (recorded, nothing stored) for a change
    made after the visit, outside the service's window, or a file not accepted."""
    _visible(db, principal, "report", report_id)  # another Trust's report: not found, nothing recorded
    if not text.strip():
        raise InvalidInput("enter the inaccuracy: what the draft says, and what was so on the day")
    text = clean_paragraphs(text, "the inaccuracy")
    params: dict[str, Any] = {"text": text, **({"files": [name for name, _ in files]} if files else {})}
    try:
        _checked(files)
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            engine.fire(s, "report", report_id, "record_inaccuracy", principal=principal, clock=clock, params=params)
            item = s.exec(
                select(AccuracyItem).where(AccuracyItem.report_id == report_id).order_by(col(AccuracyItem.id).desc())
            ).first()
            assert item is not None and item.id is not None
            for name, data in files:
                store_upload(
                    s,
                    item_kind="report",
                    item_id=report_id,
                    owner_kind="accuracy_item",
                    owner_id=item.id,
                    filename=name,
                    data=data,
                    user_id=principal.user_id,
                    at=clock.now(),
                )
            accounts.seen(s, principal)
            s.commit()
            return item
    except PeerwatchError as exc:
        _refuse(db, "report", report_id, "record_inaccuracy", principal, clock, exc, params)
        raise


# --------------------------------------------------------------------------- appeals (000 s8.1)


def _scope(session: Session, report: Report) -> dict[str, int | None]:
    return get_spec("report").recipient_scope(session, report)


def appellant_contact(session: Session, principal: Principal, report: Report, today: date) -> Contact | None:
    """The contact the signed-in account is, for ``report``'s Trust: its Chief Executive contact
    if its account was made from it (a grant from the contact, in force, reaching the report),
    else any other contact of that Trust it was made from (so the refusal can name its role)."""
    where = _scope(session, report)
    grants = session.exec(
        select(RoleGrant).where(
            RoleGrant.user_id == principal.user_id,
            RoleGrant.source == "contact",
            col(RoleGrant.contact_id).is_not(None),
            col(RoleGrant.revoked_at).is_(None),
        )
    ).all()
    found: list[Contact] = []
    for g in grants:
        if g.valid_until is not None and g.valid_until <= today:
            continue  # access ended that day
        if not Grant(g.role, g.scope, g.scope_id).covers(where) or not principal.holds(g.role, where):
            continue
        person = session.get(Contact, g.contact_id)
        if person is not None and person.role == g.role:
            found.append(person)
    found.sort(key=lambda c: (c.role != CHIEF_EXECUTIVE, c.id))
    return found[0] if found else None


def _not_chief_executive(session: Session, principal: Principal, report: Report, today: date) -> str | None:
    org = get_spec("report").letter_context(session, report)["organisation"]["name"]
    person = appellant_contact(session, principal, report, today)
    if person is not None and person.role == CHIEF_EXECUTIVE:
        return None
    if principal.holds(CHIEF_EXECUTIVE, _scope(session, report)):
        return (
            f"your account is not the one made for {org}'s Chief Executive from the contacts: "
            "ask the network office to invite the Chief Executive's contact, and appeal from that account"
        )
    held = ", ".join(CONTACT_ROLES.get(r, r) for r in principal.roles_at(_scope(session, report))) or "no role"
    return (
        f"only the Chief Executive of {org} may appeal against this report, from their own account "
        f"(SOP 8.1): you are signed in as {principal.name} ({held})"
    )


def appeal_refusal(session: Session, principal: Principal, report: Report, today: date) -> str | None:
    """Why ``principal`` may not appeal against ``report`` today (None: they may): not the Chief
    Executive, not published, the 4-week window closed, or nothing an appeal may name."""
    problem = _not_chief_executive(session, principal, report, today)
    if problem:
        return problem
    closes = window_closes(report)
    if closes is None:
        return "the report is not published yet: an appeal may be made within 4 weeks of its publication"
    if today > closes:
        return f"the appeal window closed on {_day(closes)}, 4 weeks after the report's publication on {_day(report.published_on)}"
    if not appealable(session, report):
        return (
            "the report concluded no immediate risk or serious concern and found no standard unmet or "
            "partially met: there is no conclusion an appeal may name"
        )
    return None


def appeal_page(session: Session, principal: Principal, report_id: int, today: date) -> dict[str, Any]:
    """The report's appeal window, the conclusions an appeal may name, the appeals made, and
    whether this account may appeal (else why not)."""
    row = get_visible(session, principal, "report", report_id)
    assert isinstance(row, Report)
    made = session.exec(select(Appeal).where(Appeal.report_id == row.id).order_by(col(Appeal.id))).all()
    why_not = appeal_refusal(session, principal, row, today)
    return {
        "report": {"id": row.id, "state": row.state, "published_on": row.published_on, "issue": row.issue},
        "place": get_spec("report").letter_context(session, row),
        "closes_on": window_closes(row),
        "grounds": [{"key": g["key"], "label": g["label"]} for g in appealable(session, row)],
        "appeals": [
            {
                "id": a.id,
                "submitted_on": a.submitted_on,
                "state": a.state,
                "outcome": a.outcome,
                "files": _files_view(session, "appeal", a.id),
            }
            for a in made
        ],
        "may": why_not is None,
        "why_not": why_not,
    }


def _grounds(keys: Sequence[str]) -> list[dict[str, Any]]:
    """The grounds as a form names them (``risk-12``, ``compliance``), for the machine to judge."""
    out: list[dict[str, Any]] = []
    for key in dict.fromkeys(k.strip() for k in keys if k.strip()):
        number = key.removeprefix("risk-")
        if key == "compliance":
            out.append({"compliance": True})
        elif number != key and number.isascii() and number.isdigit() and len(number) <= 18:
            out.append({"risk_id": int(number)})
        else:
            raise InvalidInput(f"ground {key[:40]!r}: choose the report's IR, SC or the compliance judgement")
    return out


def submit_appeal(
    db: Engine,
    *,
    report_id: int,
    statement: str,
    grounds: Sequence[str],
    files: Files = (),
    principal: Principal,
    clock: Clock,
) -> Appeal:
    """The signed-in account's appeal against ``report_id``: as its Chief Executive contact (the
    machine's guards decide, and a refusal is recorded as ``states.services.appeal`` records one)."""
    today = local_date(clock.now())
    with Session(db) as s:
        report = get_visible(s, principal, "report", report_id)  # another Trust's report: not found
        assert isinstance(report, Report)
        person = appellant_contact(s, principal, report, today)
        problem = _not_chief_executive(s, principal, report, today) if person is None else None
        contact_id = person.id if person is not None else None
    chosen: list[dict[str, Any]] = []
    try:
        chosen = _grounds(grounds)
        _checked(files)
        if not statement.strip():
            raise InvalidInput("enter the appeal statement: why the conclusions should change, and the evidence")
        statement = clean_paragraphs(statement, "the appeal statement")
        if problem:
            raise GuardRefused(f"appeal refused: {problem}")
    except PeerwatchError as exc:
        appeals.refused(db, report_id, contact_id, chosen, principal, clock, str(exc))
        raise
    assert contact_id is not None
    return appeals.submit(
        db,
        report_id=report_id,
        appellant_contact_id=contact_id,
        statement=statement.strip(),
        grounds=chosen,
        principal=principal,
        clock=clock,
        files=files,
    )


# --------------------------------------------------------------------------- documents (seed 001)


def _title(row: Submission) -> str:
    return f"{DOC_NAMES.get(row.doc_type, row.doc_type)} {row.programme_year}-{str(row.programme_year + 1)[2:]}"


def upload_refusal(session: Session, principal: Principal, row: Submission) -> str | None:
    """Why ``principal`` may not upload a version of ``row`` now (None: they may)."""
    if row.state not in OPEN_FOR_UPLOAD:
        last = session.exec(
            select(AuditEvent.at)
            .where(AuditEvent.kind == "submission", AuditEvent.item_id == row.id, AuditEvent.to_state == row.state)
            .order_by(col(AuditEvent.id).desc())
        ).first()
        on = f" on {_day(local_date(last))}" if last is not None else ""
        return {
            "new": "the network has not asked for this document yet",
            "received": f"received{on}: the network is reviewing it; you may send a new version if it asks for more information",
            "accepted": f"accepted by the network{on}: nothing more is asked",
        }.get(row.state, f"the submission is {row.state.replace('_', ' ')}")
    if _role_for(session, principal, "submission", row, "receive") is None:
        return f"only the Trust's {_names(TRUST_DOCUMENT_ROLES)} send its documents: your account holds none of these roles for this Trust"
    return None


def submission_page(session: Session, principal: Principal, submission_id: int, today: date) -> dict[str, Any]:
    """What is due and by when, the versions received (SHA-256, and how late each came, as
    recorded at receipt), the network's requests for more information, and whether this
    account may send a version now (else why not)."""
    row = get_visible(session, principal, "submission", submission_id)
    assert isinstance(row, Submission)
    ctx = get_spec("submission").letter_context(session, row)
    late = {
        r.received_at: r
        for r in session.exec(select(Lateness).where(Lateness.kind == "submission", Lateness.item_id == row.id))
    }
    versions = []
    for f in session.exec(
        select(SubmissionFile)
        .options(defer(SubmissionFile.data))  # type: ignore[arg-type]  # the bytes stay in the database
        .where(SubmissionFile.submission_id == row.id)
        .order_by(col(SubmissionFile.version))
    ):
        r = late.get(f.received_at)
        versions.append(
            {
                "version": f.version,
                "filename": f.filename,
                "sha256": f.sha256,
                "size": f.size,
                "received_at": f.received_at,
                "received_on": local_date(f.received_at),
                "due_on": r.due_on if r else None,
                "days_late": r.days_late if r else None,
                "working_days_late": r.working_days_late if r else None,
            }
        )
    requests = session.exec(
        select(AuditEvent.at, AuditEvent.note, AuditEvent.actor)
        .where(
            AuditEvent.kind == "submission",
            AuditEvent.item_id == row.id,
            AuditEvent.trigger == "request_more_information",
        )
        .order_by(col(AuditEvent.id))
    ).all()
    due = [
        {"name": d.name, "due_on": d.due_on, "days_left": (d.due_on - today).days}
        for d in outstanding_deadlines(session, "submission", row.id)  # type: ignore[arg-type]
    ]
    why_not = upload_refusal(session, principal, row)
    return {
        "submission": {
            "id": row.id,
            "title": _title(row),
            "state": row.state,
            "due_on": row.due_on,
            "version": row.version,
        },
        "organisation": ctx["organisation"]["name"],
        "network": ctx["network"],
        "due": due,
        "versions": versions,
        "requests": [{"on": local_date(at), "reason": note or "", "by": actor} for at, note, actor in requests],
        "may": why_not is None,
        "why_not": why_not,
    }


def upload_document(
    db: Engine, *, submission_id: int, filename: str, data: bytes, principal: Principal, clock: Clock
) -> SubmissionFile:
    """A version of the Trust's document (or its further information), through the engine's
    ``receive`` as the signed-in account: stored with its SHA-256 as the next version, how late
    it came recorded. A file not accepted by its content is refused and nothing stored."""
    params: dict[str, Any] = {"filename": filename}
    _visible(db, principal, "submission", submission_id)  # another Trust's submission: not found, nothing recorded
    try:
        params["content_type"] = check_file(filename, data)
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            engine.fire(
                s,
                "submission",
                submission_id,
                "receive",
                principal=principal,
                clock=clock,
                params={**params, "data": data},
            )
            stored = s.exec(
                select(SubmissionFile)
                .where(SubmissionFile.submission_id == submission_id)
                .order_by(col(SubmissionFile.version).desc())
            ).first()
            assert stored is not None
            accounts.seen(s, principal)
            s.commit()
            return stored
    except PeerwatchError as exc:
        _refuse(db, "submission", submission_id, "receive", principal, clock, exc, params)
        raise


def document_file(session: Session, principal: Principal, submission_id: int, version: int) -> SubmissionFile:
    """One stored version of a submission's file, if ``principal`` may see the submission."""
    get_visible(session, principal, "submission", submission_id)
    if not is_row_id(version):
        raise NotFound(f"version {version} of submission {submission_id} not found")
    found = session.exec(
        select(SubmissionFile).where(SubmissionFile.submission_id == submission_id, SubmissionFile.version == version)
    ).first()
    if found is None:
        raise NotFound(f"version {version} of submission {submission_id} not found")
    return found


__all__ = [
    "accuracy_page",
    "accuracy_refusal",
    "appeal_page",
    "appeal_refusal",
    "appellant_contact",
    "document_file",
    "record_inaccuracy",
    "submission_page",
    "submit_appeal",
    "upload_document",
    "upload_refusal",
]
