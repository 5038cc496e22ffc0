"""Anchors: the audit chain's head written outside the database, so a rewritten chain is caught.

The keyed chain (``states/engine/audit.py``) stops anyone without the key from re-hashing a
rewritten chain; an anchor stops the one who has it, and catches a chain cut short. ``anchor``
writes the head (the last event's id, how many events the chain holds up to it, its hash and
key id, the time, the installation's id) to a NEW file in the anchor directory (opened with
``O_EXCL``: an anchor is never overwritten; one JSON file each) and queues an email of it to
the auditors (the active accounts holding the ``auditor`` role) and to
``PEERWATCH_ANCHOR_EMAIL``. The directory (``PEERWATCH_ANCHOR_DIR``, default ``var/anchors``)
belongs outside the database's reach: append-only (``chattr +a``), a WORM mount, or another
host's share. Before it writes, the chain since the last anchor (the whole chain, the first
time) is verified: a broken chain is never anchored.

``verify_anchors`` proves every anchor in a directory is still in the chain: its event still
has the anchored hash, and the chain up to it still holds as many events. A truncated chain
(the event is gone), a rewritten one (another hash, even one re-signed with the key) and
events removed or added before the anchor are each named. The daily views flow calls
``anchor_once_a_day``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as select_core
from sqlmodel import Session, col, select

from models.accounts import RoleGrant, User
from models.installation import installation_id
from models.tables import AuditEvent, OutboxStatus
from states.clock import Clock, local_date
from states.engine import audit, letters
from states.errors import InvalidInput, NotFound, PeerwatchError
from states.roles import AUDITOR
from states.text import check_email

DEFAULT_DIR = Path("var") / "anchors"
TEMPLATE = "audit_anchor"
KIND = "audit_anchor"  # the outbox rows' kind (item id: the anchored event's id)
FORMAT = 1
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]


class AnchorRefused(PeerwatchError):
    """The chain does not verify: it is not anchored (nothing was written)."""


@dataclass(frozen=True)
class Anchor:
    """One anchor as read back from its file."""

    path: Path
    data: dict[str, Any]

    @property
    def event_id(self) -> int:
        return int(self.data["event_id"])


def anchor_dir(directory: Path | str | None = None) -> Path:
    return Path(directory or os.environ.get("PEERWATCH_ANCHOR_DIR") or DEFAULT_DIR)


def _position(session: Session, event_id: int) -> tuple[int, str | None]:
    """(events up to and including ``event_id``, its key id)."""
    if not event_id:
        return 0, None
    count = session.execute(select_core(func.count()).select_from(_AUDIT).where(_AUDIT.c.id <= event_id)).scalar_one()
    key_id = session.execute(select_core(_AUDIT.c.key_id).where(_AUDIT.c.id == event_id)).scalar_one()
    return count, key_id


def read_anchors(directory: Path | str | None = None) -> tuple[list[Anchor], list[str]]:
    """The anchors in a directory, by event id, and a problem line for each file that is not one."""
    folder = anchor_dir(directory)
    if not folder.is_dir():
        raise NotFound(f"anchor directory {str(folder)!r} not found")
    found: list[Anchor] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a peerwatch audit anchor")
            for name in ("installation_id", "event_id", "events", "hash", "at"):
                if name not in data:
                    raise ValueError(f"it has no {name}")
            int(data["event_id"]), int(data["events"])
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"anchor {path.name} cannot be read: {exc}")
            continue
        found.append(Anchor(path, data))
    found.sort(key=lambda a: (a.event_id, a.path.name))
    return found, problems


def _latest(session: Session, folder: Path) -> Anchor | None:
    """This installation's latest anchor in ``folder``; refused if the chain no longer holds it
    (a broken chain is never anchored: after a restore that lost events, anchor elsewhere)."""
    if not folder.is_dir():
        return None
    mine = installation_id(session)
    anchors = [a for a in read_anchors(folder)[0] if a.data["installation_id"] == mine]
    if not anchors:
        return None
    problem = check_anchor(session, anchors[-1], mine)
    if problem:
        raise AnchorRefused(f"the audit chain is not anchored: {problem}")
    return anchors[-1]


def anchor(session: Session, clock: Clock, directory: Path | str | None = None) -> Path:
    """Verify the chain since the last anchor, write its head to a new file in the anchor
    directory, and queue the email to the auditors (in the caller's transaction: the caller
    commits). Returns the file written. Raises ``AnchorRefused`` for a chain that does not verify."""
    folder = anchor_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    previous = _latest(session, folder)
    report = audit.check_chain(session, after=previous.event_id if previous else 0)
    if report.problem:
        raise AnchorRefused(f"the audit chain is not anchored, it does not verify: {report.problem}")
    event_id, digest = report.last_id, report.last_hash  # what was verified, whatever was appended since
    events, key_id = _position(session, event_id)
    now = clock.now()
    written = datetime.now(UTC)
    mine = installation_id(session)
    data = {
        "format": FORMAT,
        "installation_id": mine,
        "event_id": event_id,
        "events": events,
        "hash": digest,
        "key_id": key_id,
        "at": now.isoformat(),
        "day": local_date(now).isoformat(),
        "written_at": written.isoformat(),
    }
    path = folder / f"anchor-{written:%Y%m%dT%H%M%S%fZ}-{mine[:8]}-e{event_id}.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise InvalidInput(f"{path} exists: an anchor is never overwritten; run it again") from None
    except OSError as exc:
        raise InvalidInput(f"cannot write the anchor in {folder}: {exc.strerror}; nothing was anchored") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _queue_email(session, data, path, now)
    return path


def anchor_once_a_day(session: Session, clock: Clock, directory: Path | str | None = None) -> Path | None:
    """``anchor``, unless this installation already has an anchor of the clock's day in the
    directory; returns the file written, or None."""
    folder = anchor_dir(directory)
    if folder.is_dir():
        mine = installation_id(session)
        today = local_date(clock.now()).isoformat()
        anchors, _ = read_anchors(folder)
        if any(a.data["installation_id"] == mine and a.data.get("day") == today for a in anchors):
            return None
    return anchor(session, clock, folder)


def auditors(session: Session) -> list[dict[str, str]]:
    """Who receives the anchors: active accounts holding ``auditor`` (any scope), then the
    addresses in ``PEERWATCH_ANCHOR_EMAIL`` (comma-separated)."""
    rows = session.exec(
        select(User)
        .join(RoleGrant, col(RoleGrant.user_id) == col(User.id))
        .where(RoleGrant.role == AUDITOR, col(RoleGrant.revoked_at).is_(None), User.status == "active")
        .order_by(col(User.id))
    ).all()
    people: dict[str, dict[str, str]] = {}
    for u in rows:
        if u.email:
            people.setdefault(
                u.email.lower(), {"name": u.name, "email": u.email, "role": AUDITOR, "role_name": "Auditor"}
            )
    for address in (os.environ.get("PEERWATCH_ANCHOR_EMAIL") or "").split(","):
        address = address.strip()
        if address:
            check_email(address, "PEERWATCH_ANCHOR_EMAIL address")
            people.setdefault(address.lower(), {"name": address, "email": address, "role": "", "role_name": ""})
    return list(people.values())


def _queue_email(session: Session, data: dict[str, Any], path: Path, now: datetime) -> None:
    to = auditors(session)
    context = {**data, "file": str(path.resolve()), "to": to, "cc": []}
    status, error, category = OutboxStatus.QUEUED.value, None, "letter"
    if not to:
        status, category = OutboxStatus.UNDELIVERABLE.value, "incident"
        error = (
            f"no active account holds the auditor role and PEERWATCH_ANCHOR_EMAIL is not set: the anchor is only in "
            f"{path.parent}; grant someone auditor, then resend"
        )
    row = {
        "idempotency_key": f"{KIND}:{data['installation_id']}:{path.name}",
        "kind": KIND,
        "item_id": data["event_id"],
        "template": TEMPLATE,
        "category": category,
        "context": letters.freeze(context),
        "subject": None,
        "body_text": None,
        "body_html": None,
        "to": to,
        "cc": [],
        "status": status,
        "attempts": 0,
        "last_error": error,
        "created_at": now,
        "next_attempt_at": now,
        "sent_at": None,
        "message_id": None,
    }
    letters.write(session, [letters.Message(row=row)])


def check_anchor(session: Session, a: Anchor, installation: str) -> str | None:
    """What is wrong with one anchor against the chain now, or None."""
    name, event_id, events, digest = a.path.name, a.event_id, int(a.data["events"]), a.data["hash"]
    if a.data["installation_id"] != installation:
        return f"anchor {name} is of installation {a.data['installation_id']}, not this one ({installation})"
    if event_id == 0:
        return None  # anchored an empty chain: anything since is longer
    stored = session.execute(select_core(_AUDIT.c.hash).where(_AUDIT.c.id == event_id)).first()
    if stored is None:
        return f"anchor {name}: audit event {event_id} is no longer in the chain: the chain was cut short"
    if stored.hash != digest:
        return (
            f"anchor {name}: audit event {event_id}'s hash is now {stored.hash[:16]}..., "
            f"it was {digest[:16]}...: the chain was rewritten after the anchor"
        )
    held = session.execute(select_core(func.count()).select_from(_AUDIT).where(_AUDIT.c.id <= event_id)).scalar_one()
    if held != events:
        return (
            f"anchor {name}: the chain up to audit event {event_id} holds {held} events, "
            f"the anchor says {events}: events were removed or added before it"
        )
    return None


def verify_anchors(session: Session, directory: Path | str | None = None) -> tuple[int, list[str]]:
    """(anchors checked, a problem line for each anchor the chain no longer holds)."""
    anchors, problems = read_anchors(directory)
    mine = installation_id(session)
    for a in anchors:
        problem = check_anchor(session, a, mine)
        if problem:
            problems.append(problem)
    return len(anchors), problems
