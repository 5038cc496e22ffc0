"""Appeals (seed 000 s8.1): submitting one. Only the Trust's Chief Executive may appeal, within
4 weeks of the report's publication, on valid grounds (``states/machines/appeal.py``); a refused
submission stores nothing but a record of the refused attempt and the refusal letter to the
appellant, in a transaction of its own, and the refusal is raised again. The appeal's evidence
files (the portal, issue 16) are checked by their content before anything is stored and kept
with the appeal (``Upload`` rows owned by it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.tables import Appeal, Contact, RefusedAttempt, Report
from models.types import is_row_id
from states import engine
from states.clock import Clock, local_date
from states.engine.letters import enqueue_letters
from states.errors import GuardRefused, NotFound, PeerwatchError
from states.machines.appeal import NETWORK, submission_problem
from states.machines.spec import Letter, get_spec
from states.principal import Principal
from states.uploads import check_file, store_upload


def submit(
    db: Engine,
    *,
    report_id: int,
    appellant_contact_id: int,
    statement: str,
    grounds: list[dict[str, Any]],
    principal: Principal,
    clock: Clock,
    files: Sequence[tuple[str, bytes]] = (),
) -> Appeal:
    """Submit an appeal, with its evidence ``files`` (name, bytes: each checked by its content and
    stored with the appeal, in its transaction); a refusal stores only the refused attempt and the
    refusal letter, then re-raises."""
    try:
        for name, data in files:  # a file not accepted refuses the appeal before anything is stored
            check_file(name, data)
        with Session(db, expire_on_commit=False) as session:
            report = session.get(Report, report_id) if is_row_id(report_id) else None
            if report is None:
                raise NotFound(f"report {report_id} not found")
            row = Appeal(
                report_id=report_id,
                service_id=report.service_id,
                appellant_contact_id=appellant_contact_id,
                submitted_on=local_date(clock.now()),
                statement=statement,
                grounds=grounds,
                state="new",
            )
            problem = submission_problem(session, row)
            if problem:
                raise GuardRefused(f"appeal refused: {problem}")
            out = engine.create(session, "appeal", row, "submit", principal=principal, clock=clock, note=statement)
            for name, data in files:
                store_upload(
                    session,
                    item_kind="appeal",
                    item_id=row.id,  # type: ignore[arg-type]
                    owner_kind="appeal",
                    owner_id=row.id,  # type: ignore[arg-type]
                    filename=name,
                    data=data,
                    user_id=principal.user_id,
                    at=clock.now(),
                )
            session.commit()
            return out.row  # type: ignore[return-value]
    except PeerwatchError as exc:
        refused(db, report_id, appellant_contact_id, grounds, principal, clock, str(exc))
        raise


def refused(
    db: Engine,
    report_id: int,
    contact_id: int | None,
    grounds: list[dict[str, Any]],
    principal: Principal,
    clock: Clock,
    reason: str,
) -> None:
    """Record a refused appeal (in its own transaction): the attempt, and the refusal letter to the
    appellant's contact when there is one (``contact_id`` None: the account has no contact)."""
    who = principal if isinstance(principal, Principal) else None  # the refusal may be that nobody was identified
    with Session(db) as session:
        attempt = RefusedAttempt(
            kind="appeal",
            item_id=None,
            trigger="submit",
            actor=who.name if who is not None else "(nobody identified)",
            role=(who.prefer if who is not None else None) or "(none)",
            user_id=who.user_id if who is not None else None,
            at=clock.now(),
            reason=reason,
            data={"report_id": report_id, "appellant_contact_id": contact_id, "grounds": grounds},
        )
        session.add(attempt)
        session.flush()
        person = session.get(Contact, contact_id) if contact_id is not None and is_row_id(contact_id) else None
        report = session.get(Report, report_id) if is_row_id(report_id) else None
        if person is not None and report is not None:
            enqueue_letters(
                session,
                get_spec("report"),
                report,
                [
                    Letter(
                        "appeal_refusal",
                        to=(),
                        cc=NETWORK,
                        people=((person.name, person.email),),
                        context=(("reason", reason),),
                    )
                ],
                key=f"refused{attempt.id}",
                clock=clock,
                today=local_date(clock.now()),
            )
        session.commit()
