"""Document submissions from each Trust (seed 001): Annual Report, Work plan, Operational Policy.

``requested`` when the documents phase opens (letter to the Chief Executive), reminded before
and chased after the due date; ``received`` with each evidence file stored with its SHA-256
checksum as a new version (sent by the network office, or by the Trust itself in the portal:
its Chief Executive, Medical Director, Service Lead or Service Manager, issue 16); the network
may ``request_more_information`` where assurance is insufficient (year 2's review), which is
itself tracked and chased, and answered by ``receive`` again; ``accepted`` when assured.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlmodel import Session, func, select

from models.cycle import Submission, SubmissionFile
from models.tables import Network, Organisation
from states.errors import InvalidInput
from states.machines import lateness
from states.machines.spec import Context, DeadlineRule, Effects, KindSpec, Letter, NewDeadline
from states.roles import STAFF, SYSTEM

DOC_NAMES = {"annual_report": "Annual Report", "work_plan": "Work plan", "operational_policy": "Operational Policy"}
MAX_FILE_BYTES = 50 * 1024 * 1024


class SubmissionState(StrEnum):
    NEW = "new"
    REQUESTED = "requested"
    RECEIVED = "received"
    MORE_INFO_REQUESTED = "more_info_requested"
    ACCEPTED = "accepted"


S = SubmissionState
STAFF_ROLES = sorted(STAFF)
# The Trust uploads its own documents, and its further information, in the portal (issue 16).
TRUST_DOCUMENT_ROLES = ("chief-executive", "medical-director", "service-lead", "service-manager")
OPEN_FOR_UPLOAD = (S.REQUESTED.value, S.MORE_INFO_REQUESTED.value)
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "request", "source": S.NEW, "dest": S.REQUESTED, "roles": [SYSTEM, *STAFF_ROLES]},
    {
        "trigger": "receive",
        "source": [S.REQUESTED, S.MORE_INFO_REQUESTED],
        "dest": S.RECEIVED,
        "roles": [*STAFF_ROLES, *TRUST_DOCUMENT_ROLES],
    },
    {
        "trigger": "request_more_information",
        "source": S.RECEIVED,
        "dest": S.MORE_INFO_REQUESTED,
        "roles": STAFF_ROLES,
        "note_required": True,
    },
    {"trigger": "accept", "source": S.RECEIVED, "dest": S.ACCEPTED, "roles": STAFF_ROLES},
]
CEO = ("chief-executive",)
DEADLINE_RULES = {
    "submission_due": DeadlineRule(
        owner="chief-executive",
        step="the Trust submits the document",
        reminder=Letter("submission_reminder", to=CEO, category="reminder"),
        overdue=Letter("submission_chase", to=CEO, cc=("network-manager",), category="chase"),
    ),
    "more_information_due": DeadlineRule(
        owner="chief-executive",
        step="the Trust sends the further information",
        reminder=Letter("submission_reminder", to=CEO, category="reminder"),
        overdue=Letter("submission_chase", to=CEO, cc=("network-manager",), category="chase"),
    ),
}
NEXT_STEP = {
    S.REQUESTED: "Trust: submit the document",
    S.RECEIVED: "Network: review it; accept, or request more information",
    S.MORE_INFO_REQUESTED: "Trust: send the further information",
}
MORE_INFO_WORKING_DAYS = 10  # local policy default: the seed sets no time for further information


# Actions: one per trigger; each may set the submission's own fields and returns the rest as data.
def request(ctx: Context) -> Effects:
    """The Trust is asked for the document by its due date, reminded before."""
    row: Submission = ctx.row
    remind = ctx.calendar.subtract_working_days(row.due_on, ctx.policy.reminder_working_days)
    return Effects(
        deadlines=[NewDeadline("submission_due", row.due_on, remind if remind > ctx.today else None)],
        letters=[Letter("document_request", to=CEO, cc=("network-office",))],
    )


def receive(ctx: Context) -> Effects:
    """The file is stored (a new version); how late it arrived is recorded at receipt."""
    row: Submission = ctx.row
    _store(ctx)
    if ctx.source == S.MORE_INFO_REQUESTED:
        lateness.record(ctx, ("more_information_due",), f"further information for {_title(row)}")
    else:
        lateness.record(ctx, ("submission_due",), _title(row), fallback_due=row.due_on)
    return Effects()


def request_more_information(ctx: Context) -> Effects:
    """The Trust is asked for more, due in the local-policy working days."""
    row: Submission = ctx.row
    row.information_requests += 1
    due = ctx.calendar.add_working_days(ctx.today, MORE_INFO_WORKING_DAYS)
    return Effects(
        deadlines=[
            NewDeadline(
                "more_information_due", due, ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
            )
        ],
        letters=[Letter("more_information_request", to=CEO, cc=("network-manager",), context=(("reason", ctx.note),))],
    )


ACTIONS = {"request": request, "receive": receive, "request_more_information": request_more_information}


def _file(ctx: Context) -> tuple[str, bytes]:
    """The file received: its bytes as sent (``data`` with ``filename``: the portal, whose use case
    checked the content first; the bytes never reach the audit), or read from ``file=PATH`` (the CLI)."""
    data = ctx.params.get("data")
    if isinstance(data, bytes):
        name = Path(str(ctx.params.get("filename") or "")).name
        if not name:
            raise InvalidInput("receive needs the file's name with its data")
        ctx.params = {k: v for k, v in ctx.params.items() if k != "data"}
        return name, data
    raw = ctx.params.get("file")
    if not raw:
        raise InvalidInput("receive needs file=PATH (the evidence file)")
    if ctx.via in ("web", "token"):  # a path names a file on the server: only its own command line reads one
        raise InvalidInput("receive reads file=PATH only on the command line: upload the file itself")
    path = Path(str(raw))
    if not path.is_file():
        raise InvalidInput(f"file {str(path)!r} not found")
    return path.name, path.read_bytes()


def _store(ctx: Context) -> None:
    filename, data = _file(ctx)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"file {filename} is {len(data)} bytes: the limit is {MAX_FILE_BYTES}")
    version = (
        ctx.session.exec(
            select(func.max(SubmissionFile.version)).where(SubmissionFile.submission_id == ctx.row.id)
        ).one()
        or 0
    ) + 1
    digest = hashlib.sha256(data).hexdigest()
    ctx.session.add(
        SubmissionFile(
            submission_id=ctx.row.id,
            version=version,
            filename=filename,
            sha256=digest,
            size=len(data),
            data=data,
            received_at=ctx.now,
        )
    )
    ctx.params = {**ctx.params, "sha256": digest, "version": version}  # recorded in the audit event


def _title(row: Submission) -> str:
    return f"{DOC_NAMES.get(row.doc_type, row.doc_type)} {row.programme_year}-{str(row.programme_year + 1)[2:]}"


def _where(session: Session, row: Submission) -> tuple[Organisation, Network]:
    org, net = session.get(Organisation, row.organisation_id), session.get(Network, row.network_id)
    assert org is not None and net is not None
    return org, net


def letter_context(session: Session, row: Submission) -> dict[str, Any]:
    org, net = _where(session, row)
    return {
        "item": {
            "ref": f"Submission-{row.id}",
            "id": row.id,
            "title": f"{DOC_NAMES.get(row.doc_type, row.doc_type)} "
            f"{row.programme_year}-{str(row.programme_year + 1)[2:]}",
            "doc_type": DOC_NAMES.get(row.doc_type, row.doc_type),
            "due_on": row.due_on,
            "programme_year": f"{row.programme_year}-{str(row.programme_year + 1)[2:]}",
        },
        "service": {"name": org.name, "kind": "Trust"},
        "organisation": {"name": org.name},
        "network": {"name": net.name, "code": net.code},
    }


SPEC = KindSpec(
    name="submission",
    model=Submission,
    states=SubmissionState,
    initial=SubmissionState.NEW,
    transitions=TRANSITIONS,
    guards={},
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({S.ACCEPTED.value}),
    nation_of=lambda session, row: _where(session, row)[0].nation,
    letter_context=letter_context,
    recipient_scope=lambda session, row: {
        "service_id": None,
        "organisation_id": row.organisation_id,
        "network_id": row.network_id,
    },
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Document submissions from each Trust (001)",
)
