"""One item's page as data (``states.views.work.item_page``): its summary and place, its state among
the machine's states, pending deadlines with their owner and step, every audit event (effective
and recorded times), its letters (each viewable as sent), related items, attachments and the
forms of the triggers the viewer may fire now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col
from sqlmodel import select as sm_select

from models.tables import (
    Attachment,
    AuditEvent,
    DeadlineStatus,
    Network,
    Organisation,
    OutboxMessage,
    Service,
    StatefulItem,
)
from models.types import is_row_id
from states.clock import Clock, local_date
from states.errors import NotFound
from states.machines.spec import CLOCK_TRIGGERS, get_spec, kinds, outstanding_deadlines
from states.principal import Principal
from states.roles import ADMINISTRATOR, COMMISSIONER_ROLES, NETWORK_ROLES, PORTAL_ROLES, TRUST_ROLES
from states.views import forms
from states.views.work import LINKS, _days_left, _title, can_see, get_visible, ref, to_portal

# ------------------------------------------------------------------ one item's page


def param_text(value: Any) -> str:
    """A step's parameter as people read it in the history: a file as its name, type and size
    (its SHA-256 is on the file's own page), a list item by item, a mapping as its pairs."""
    if isinstance(value, dict):
        if "filename" in value:
            size = value.get("size")
            kind = value.get("content_type")
            more = ", ".join(str(x) for x in (kind, f"{size:,} bytes" if isinstance(size, int) else None) if x)
            return f"{value['filename']} ({more})" if more else str(value["filename"])
        return ", ".join(f"{k}: {param_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(param_text(v) for v in value)
    return "" if value is None else str(value)


def states_of(kind: str, current: str) -> list[dict[str, Any]]:
    """The machine's states in order, the current one marked, each with where it may go and by what."""
    spec = get_spec(kind)
    labels = dict(spec.state_labels()) if spec.state_labels else {}
    out = []
    for s in spec.states:
        moves = []
        for t in spec.transitions:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            if (s.value in sources or "*" in sources) and t["trigger"] not in CLOCK_TRIGGERS:
                moves.append({"trigger": t["trigger"], "to": t["dest"] or s.value})
        out.append(
            {
                "name": s.value,
                "label": labels.get(s.value, s.value.replace("_", " ")),
                "current": s.value == current,
                "initial": s == spec.initial,
                "terminal": s.value in spec.terminal,
                "moves": moves,
            }
        )
    return out


def page(session: Session, principal: Principal, kind: str, item_id: int, clock: Clock) -> dict[str, Any]:
    """summary, state, states (diagram), deadlines, history, letters, related, attachments, triggers."""
    row = get_visible(session, principal, kind, item_id)
    spec = get_spec(kind)
    today = local_date(clock.now())
    where = spec.recipient_scope(session, row)
    summary = {
        k: v
        for k, v in row.model_dump().items()
        if v not in (None, [], {})
        and k not in ("state", "version", "id", "service_id", "organisation_id", "network_id")
        and not isinstance(v, list | dict)
    }
    names = _names(session, where)
    staff = staff_at(principal, where)
    # A draft is the network's until it goes to the service: who holds no network role there sees
    # that it is being written, not what it says.
    private = row.state in DRAFTS.get(kind, ()) and not staff
    if private:
        summary = {k: v for k, v in summary.items() if k not in DRAFT_FIELDS.get(kind, ())}
    deadlines = []
    for d in outstanding_deadlines(session, kind, item_id):
        rule = spec.deadline_rules.get(d.name)
        deadlines.append(
            {
                "name": d.name,
                "due_on": d.due_on,
                "status": d.status,
                "owner": rule.owner if rule else None,
                "step": rule.step if rule else None,
                "then": rule.on_due if rule else None,
                "working_days_left": _days_left(today, d),
                "overdue": d.status != DeadlineStatus.PAUSED and d.due_on < today,
            }
        )
    events = session.exec(
        sm_select(AuditEvent).where(AuditEvent.kind == kind, AuditEvent.item_id == item_id).order_by(col(AuditEvent.id))
    )
    history = []
    for e in events:
        # A Trust's or a commissioner's people see every step (who, when, from and to), and the
        # notes and details of their own side's; the network's notes are its own: what it tells
        # the Trust is in the letters to it.
        hidden = not staff and (private or e.role not in PORTAL_ROLES)
        params = e.data.get("params") or {}
        history.append(
            {
                "withheld": hidden,
                "actor": e.actor,
                "role": e.role,
                "trigger": e.trigger,
                "from": e.from_state,
                "to": e.to_state,
                "at": e.at,
                "recorded_at": e.recorded_at,
                "note": None if hidden else e.note,
                "via": e.data.get("via"),
                "params": {} if hidden else params,
                "shown_params": {} if hidden else {k: param_text(v) for k, v in params.items()},
                "version": e.version,
                "user_id": e.user_id,
            }
        )
    letters = list(
        session.exec(
            sm_select(OutboxMessage)
            .where(
                # every letter about an item is keyed "<kind>:<id>:..." (states/engine/letters.py): a range
                # of the unique key's index, where the outbox has no index by item
                col(OutboxMessage.idempotency_key) >= f"{kind}:{item_id}:",
                col(OutboxMessage.idempotency_key) < f"{kind}:{item_id};",
                OutboxMessage.kind == kind,
                OutboxMessage.item_id == item_id,
            )
            .order_by(col(OutboxMessage.id))
        )
    )
    if not staff:  # a Trust's or commissioner's people see the letters to them
        letters = [m for m in letters if to_portal([*m.to, *m.cc])]
    files = _files(session, [m.idempotency_key for m in letters])
    return {
        "kind": kind,
        "id": item_id,
        "ref": ref(kind, item_id, getattr(row, "level", None)),
        "title": _title(kind, getattr(row, "title", None) or getattr(row, "category", None), names.get("service")),
        "describe": spec.describe,
        "state": row.state,
        "version": row.version,
        "next_step": spec.next_step.get(row.state),
        "closed": row.state in spec.terminal,
        "place": names,
        "summary": summary,
        "states": states_of(kind, row.state),
        "deadlines": deadlines,
        "history": history,
        "letters": [_letter_row(m) for m in letters],
        "attachments": [
            {**_file_row(a, i), "message_id": m.id}
            for m in letters
            for i, a in enumerate(files.get(m.idempotency_key, []))
        ],
        "related": related(session, principal, kind, row),
        "triggers": forms.trigger_forms(session, principal, kind, row, clock),
        "workspaces": workspaces(session, principal, kind, row, where),
        "today": today,
    }


# States in which an item's content is the network's own (the draft of a report), and the fields
# that hold it: withheld from whoever holds no network role where the item sits.
DRAFTS: dict[str, frozenset[str]] = {"report": frozenset({"new", "drafting"})}
DRAFT_FIELDS: dict[str, tuple[str, ...]] = {"report": ("summary",)}


def staff_at(principal: Principal, where: Mapping[str, int | None] | None) -> bool:
    """Does ``principal`` hold a network role, or administer the installation, where an item sits?"""
    return bool(set(principal.roles_at(where)) & {*NETWORK_ROLES, ADMINISTRATOR})


# The pages beside an item's own where its work is done: (path after the item's id, label, who).
# Who: "all" who may see the item; "staff" holders of a network role there; "trust" holders of a
# Trust or commissioner role there; a trigger's name: those who may fire it now.
WORKSPACES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "visit": (("/visits/{id}/panel", "The panel: invitations, declarations and the day's feedback", "staff"),),
    "report": (
        ("/reports/{id}/draft", "Drafting: standards and positive developments", "staff"),
        ("/reports/{id}/accuracy", "The factual accuracy check: inaccuracies and decisions", "staff"),
        ("/portal/reports/{id}/accuracy", "The factual accuracy check: the service's inaccuracies", "trust"),
        ("/portal/reports/{id}/appeal", "Appeal against the report (the Chief Executive)", "trust"),
    ),
    "risk": (
        ("/risks/{id}/respond", "Send the Trust's formal response", "submit_response"),
        ("/risks/{id}/responses", "The Trust's formal responses and their files", "all"),
    ),
    "action_plan": (("/plans/{id}", "The action plan: actions, owners and milestones", "all"),),
    "submission": (("/portal/submissions/{id}", "The documents sent and the versions received", "all"),),
    "selfassessment": (
        ("/portal/selfassessments/{id}", "The self-assessment: download, upload or answer online", "all"),
    ),
}


def workspaces(
    session: Session, principal: Principal, kind: str, row: StatefulItem, where: Mapping[str, int | None] | None
) -> list[dict[str, str]]:
    """The links to an item's workspaces this principal may use (``WORKSPACES``)."""
    held = set(principal.roles_at(where))
    staff = staff_at(principal, where)
    trust = bool(held & {*TRUST_ROLES, *COMMISSIONER_ROLES})
    out = []
    for path, label, who in WORKSPACES.get(kind, ()):
        if (who == "staff" and not staff) or (who == "trust" and not trust):
            continue
        if who not in ("all", "staff", "trust") and not forms.may_fire(session, principal, kind, row, who):
            continue
        out.append({"href": path.format(id=row.id), "label": label})
    return out


def _names(session: Session, where: dict[str, int | None]) -> dict[str, Any]:
    svc = session.get(Service, where["service_id"]) if where.get("service_id") else None
    org = session.get(Organisation, where["organisation_id"]) if where.get("organisation_id") else None
    net = session.get(Network, where["network_id"]) if where.get("network_id") else None
    return {
        "service": svc.name if svc else None,
        "organisation": org.name if org else None,
        "network": net.code if net else None,
        "network_name": net.name if net else None,
    }


def _letter_row(m: OutboxMessage) -> dict[str, Any]:
    return {
        "message_id": m.id,
        "template": m.template,
        "subject": m.subject,
        "to": ", ".join(f"{p.get('name')} ({p.get('role_name') or p.get('role')})" for p in m.to) or "-",
        "status": m.status,
        "created_at": m.created_at,
        "sent_at": m.sent_at,
    }


def related(session: Session, principal: Principal, kind: str, row: StatefulItem) -> list[dict[str, Any]]:
    """The items this one points at (visit_id, report_id, phase_id) and those pointing at it, visible ones only."""
    found: list[tuple[str, StatefulItem, str]] = []
    for column, other in LINKS.items():
        target = getattr(row, column, None)
        if target is not None:
            hit = session.get(get_spec(other).model, target)
            if hit is not None:
                found.append((other, hit, "from"))
    mine = next((c for c, k in LINKS.items() if k == kind), None)
    if mine is not None:
        for other in kinds():
            model = get_spec(other).model
            if mine in model.model_fields:
                q = sm_select(model).where(getattr(model, mine) == row.id).order_by(col(model.id)).limit(50)
                found += [(other, hit, "to") for hit in session.exec(q)]
    return [
        {
            "kind": k,
            "id": r.id,
            "ref": ref(k, r.id or 0, getattr(r, "level", None)),
            "title": _title(k, getattr(r, "title", None), None),
            "state": r.state,
        }
        for k, r, _ in found
        if can_see(session, principal, k, r)
    ]


def letter(session: Session, principal: Principal, kind: str, item_id: int, message_id: int) -> dict[str, Any]:
    """One letter about a visible item, as it was sent (headers and the text body), or NotFound."""
    row, m = _visible_letter(session, principal, kind, item_id, message_id)
    files = _files(session, [m.idempotency_key]).get(m.idempotency_key, [])
    return {
        **_letter_row(m),
        "kind": kind,
        "id": item_id,
        "ref": ref(kind, item_id, getattr(row, "level", None)),
        "cc": ", ".join(f"{p.get('name')} ({p.get('role_name') or p.get('role')})" for p in m.cc),
        "to_addresses": [p.get("email") for p in m.to],
        "message_header": m.message_id,
        "body_text": m.body_text,
        "sent": m.body_text is not None,
        "last_error": m.last_error,
        "attachments": [_file_row(a, i) for i, a in enumerate(files)],
    }


def _visible_letter(
    session: Session, principal: Principal, kind: str, item_id: int, message_id: int
) -> tuple[StatefulItem, OutboxMessage]:
    """A letter about an item the principal may see, which they may read: one to the Trust's or a
    commissioner's people, or any to who holds a network role where the item sits; else NotFound
    (the same words for a missing letter, another item's, or the network's own mail)."""
    row = get_visible(session, principal, kind, item_id)
    m = session.get(OutboxMessage, message_id) if is_row_id(message_id) else None
    if m is None or m.kind != kind or m.item_id != item_id:
        raise NotFound(f"letter {message_id} of {kind} {item_id} not found")
    if not to_portal([*m.to, *m.cc]) and not staff_at(principal, get_spec(kind).recipient_scope(session, row)):
        raise NotFound(f"letter {message_id} of {kind} {item_id} not found")  # the network's own mail
    return row, m


def _file_row(a: Attachment, index: int) -> dict[str, Any]:
    """A letter's file as listed: its name, type, place among the letter's files, and whether it
    has been written (it is made when the letter is sent; only then may it be opened)."""
    return {"filename": a.filename, "content_type": a.content_type, "rendered": a.data is not None, "index": index}


def _files(session: Session, keys: list[str]) -> dict[str, list[Attachment]]:
    """The files each letter (by idempotency key) carries, in the order they were stored."""
    out: dict[str, list[Attachment]] = {}
    for start in range(0, len(keys), 500):
        q = sm_select(Attachment).where(col(Attachment.idempotency_key).in_(keys[start : start + 500]))
        for a in session.exec(q.order_by(col(Attachment.id))):
            out.setdefault(a.idempotency_key, []).append(a)
    return out


def letter_attachment(
    session: Session, principal: Principal, kind: str, item_id: int, message_id: int, index: int
) -> dict[str, Any]:
    """The ``index``-th file (from 0) of a letter about an item, as it was sent: its name, type
    and bytes, to whoever may read the letter (``letter``'s checks); NotFound otherwise, and for a
    file not yet written (it is made when the letter is sent)."""
    _, m = _visible_letter(session, principal, kind, item_id, message_id)
    files = _files(session, [m.idempotency_key]).get(m.idempotency_key, [])
    if not 0 <= index < len(files):
        raise NotFound(f"attachment {index} of letter {message_id} not found")
    a = files[index]
    if a.data is None:
        raise NotFound(f"{a.filename} is not written yet: it is made when the letter is sent")
    return {"filename": a.filename, "content_type": a.content_type, "data": a.data, "message_id": m.id}
