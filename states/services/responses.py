"""The organisation's formal response to an immediate risk or serious concern (000 s6; issue 16
item 3), submitted in the portal by its Chief Executive, Medical Director or Service Lead.

``submit_response`` is one transaction (the caller's; it commits, or rolls back on an error):
every file is checked first (``states.uploads.check_file``: type by content, size, name), then
the engine fires ``submit_response`` on the risk as the person (their role in the risk's scope:
a member of network staff cannot answer for the Trust; a Trust that cannot see the risk gets
``NotFound``), then the ``RiskResponse`` row (numbered 1, 2, ... per risk) and its files are
added. A refusal anywhere leaves nothing: no response, no file, no transition.

``responses_of`` is what anyone who may see the risk may read: each response, who sent it and
in what role, when, its files, and the Network Manager's judgement once made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.accounts import User
from models.db import begin_write
from models.portal import RiskResponse, Upload
from models.tables import Risk
from states import engine, permissions
from states.clock import Clock
from states.errors import GuardRefused, InvalidInput, PeerwatchError, PermissionDenied
from states.machines import risk as risk_machine
from states.machines.risk import LEVELS
from states.machines.spec import get_spec
from states.principal import Principal
from states.services import accounts
from states.text import clean_paragraphs
from states.uploads import check_file, check_name, store_upload, uploads_of
from states.views.work import get_visible

KIND = "risk"
OWNER = "risk_response"
TRIGGER = "submit_response"
MAX_TEXT = 20_000
MAX_FILES = 10


def clean_text(value: Any, what: str = "the response") -> str:
    """The response's text (``states.text.clean_paragraphs``: 1 to 20,000 characters, no control
    character but a line break or a tab)."""
    if isinstance(value, str) and not value.strip():
        raise InvalidInput(f"{what} is empty: write the Trust's response")
    return clean_paragraphs(value, what, MAX_TEXT)


def check_files(files: Sequence[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Every file checked before anything is stored: (filename, content type, size, sha256) each."""
    if len(files) > MAX_FILES:
        raise InvalidInput(f"{len(files)} files: at most {MAX_FILES} may come with one response")
    seen: set[str] = set()
    out = []
    for filename, data in files:
        check_name(filename)
        if filename in seen:
            raise InvalidInput(f"{filename} is attached twice: attach each file once")
        seen.add(filename)
        kind = check_file(filename, data)
        out.append(
            {"filename": filename, "content_type": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    return out


def submit_response(
    session: Session,
    principal: Principal,
    risk_id: int,
    text: str,
    files: Sequence[tuple[str, bytes]],
    clock: Clock,
    version: int | None = None,
) -> RiskResponse:
    """Record the Trust's formal response to risk ``risk_id`` with its files; the caller commits."""
    get_visible(session, principal, KIND, risk_id)  # another Trust's risk is the same NotFound as a missing one
    body = clean_text(text)
    checked = check_files(files)
    number = risk_machine.next_response_number(session, risk_id)
    out = engine.fire(
        session,
        KIND,
        risk_id,
        TRIGGER,
        principal=principal,
        clock=clock,
        expected_version=version,
        params={"file": checked, "response_number": number, "characters": len(body)},
    )
    if out.proposed or out.event is None:
        raise GuardRefused("a formal response cannot wait for a second person: ask an administrator to lift four eyes")
    user = session.get(User, principal.user_id)
    response = RiskResponse(
        risk_id=risk_id,
        number=number,
        text=body,
        submitted_by=principal.user_id,
        submitted_name=user.name if user is not None else principal.name,
        submitted_role=out.event.role,
        submitted_at=out.event.at,
    )
    session.add(response)
    session.flush()
    assert response.id is not None
    for filename, data in files:
        store_upload(
            session,
            item_kind=KIND,
            item_id=risk_id,
            owner_kind=OWNER,
            owner_id=response.id,
            filename=filename,
            data=data,
            user_id=principal.user_id,
            at=out.event.at,
        )
    return response


def submit(
    db: Engine,
    principal: Principal,
    risk_id: int,
    text: str,
    files: Sequence[tuple[str, bytes]],
    clock: Clock,
    version: int | None = None,
) -> RiskResponse:
    """``submit_response`` in a transaction of its own (committed); a refusal stores nothing
    but the refused attempt (audited with the account that tried), then is raised again."""
    try:
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            response = submit_response(s, principal, risk_id, text, files, clock, version)
            accounts.seen(s, principal)
            s.commit()
            return response
    except PeerwatchError as exc:
        names = [f for f, _ in files if isinstance(f, str)]
        engine.record_refusal(
            db, KIND, risk_id, TRIGGER, principal, principal.prefer, clock, str(exc), {"files": names[:MAX_FILES]}
        )
        raise


def respond_form(session: Session, principal: Principal, risk_id: int) -> dict[str, Any]:
    """What the response form shows: the risk (ref, title, level name, state, version, next
    step, open deadlines), ``role`` (the one the person would answer in), ``number`` (of the
    response to come). NotFound if the risk is hidden; PermissionDenied, saying why, if the
    person may not answer it now (not a Trust role there, or not waiting for a response)."""
    row = get_visible(session, principal, KIND, risk_id)
    assert isinstance(row, Risk)
    spec = get_spec(KIND)
    rows = spec.rows_for(TRIGGER, row.state)
    if not rows:
        raise PermissionDenied(
            f"risk {risk_id} is {row.state.replace('_', ' ')}: the network is not waiting for a response from the Trust"
        )
    role = principal.choose(
        permissions.roles_for(spec, TRIGGER, rows, permissions.rules(session)),
        spec.recipient_scope(session, row),
        f"submit the formal response to risk {risk_id}",
    )
    return {
        "id": row.id,
        "ref": f"{row.level}-{row.id}",
        "title": row.title,
        "level": row.level,
        "level_name": LEVELS.get(row.level, row.level),
        "state": row.state,
        "version": row.version,
        "next_step": spec.next_step.get(row.state),
        "deadlines": [
            {"name": d.name, "due_on": d.due_on, "status": d.status}
            for d in engine.pending_deadlines(session, KIND, risk_id)
        ],
        "role": role,
        "number": risk_machine.next_response_number(session, risk_id),
        "max_files": MAX_FILES,
        "max_text": MAX_TEXT,
    }


def _file(u: Upload) -> dict[str, Any]:
    return {
        "id": u.id,
        "filename": u.filename,
        "content_type": u.content_type,
        "size": u.size,
        "sha256": u.sha256,
        "version": u.version,
        "uploaded_at": u.uploaded_at,
    }


def responses_of(session: Session, principal: Principal, risk_id: int) -> list[dict[str, Any]]:
    """The risk's formal responses, first to last, if ``principal`` may see the risk (else NotFound):
    number, text, submitted_name, submitted_role, submitted_at, files (id, filename, content_type,
    size, sha256, version, uploaded_at), judgement, judged_name, judged_at."""
    get_visible(session, principal, KIND, risk_id)
    out = []
    for r in risk_machine.responses(session, risk_id):
        judge = session.get(User, r.judged_by) if r.judged_by is not None else None
        out.append(
            {
                "id": r.id,
                "number": r.number,
                "text": r.text,
                "submitted_name": r.submitted_name,
                "submitted_role": r.submitted_role,
                "submitted_at": r.submitted_at,
                "files": [_file(u) for u in uploads_of(session, OWNER, r.id or 0)],
                "judgement": r.judgement,
                "judged_name": judge.name if judge is not None else None,
                "judged_at": r.judged_at,
            }
        )
    return out


def responses_page(session: Session, principal: Principal, risk_id: int) -> dict[str, Any]:
    """The risk (ref, title, level name, state, next step), its responses (``responses_of``) and
    whether this person may submit one now (``may_respond``)."""
    row = get_visible(session, principal, KIND, risk_id)
    assert isinstance(row, Risk)
    try:
        respond_form(session, principal, risk_id)
        may_respond = True
    except PermissionDenied:
        may_respond = False
    return {
        "risk": {
            "id": row.id,
            "ref": f"{row.level}-{row.id}",
            "title": row.title,
            "level_name": LEVELS.get(row.level, row.level),
            "state": row.state,
            "next_step": get_spec(KIND).next_step.get(row.state),
        },
        "responses": responses_of(session, principal, risk_id),
        "may_respond": may_respond,
    }
