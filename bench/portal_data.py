"""A database for the portal's bench (issue 16, "Performance"): one Trust with ``services``
services (200) and ``open_items`` open items about them (2,000), another Trust with as many
items (what the page must leave out), and ``accounts`` Trust users of the first Trust (a Chief
Executive's grant for the whole Trust each), with a password set through the sign-in service.

Rows are as ``bench/web_data.py`` writes them (its mix of kinds and states, each item at the
version its history gives it, that history in the keyed audit chain, the deadline its state
owns, some network-owned ones passed with their overdue letter sent, the formal notification
letter of a notified risk in the outbox, sent), over this Trust's services instead of the seed's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from bench.fixtures import MODELS, Days, _rows
from bench.web_data import (
    CHUNK,
    FORMAL_SENT,
    MIX,
    PASSWORD,
    PATHS,
    Account,
    _analyze,
    _chase_ahead,
    _closed_formal,
    _first_day,
    _letter,
    _overdue,
    _set_password,
    _stamp,
    today_working,
)
from cli.seed import seed_reference
from models import Contact, Deadline, Network, Organisation, Service, init_db
from models.accounts import SYSTEM_USER_ID, RoleGrant, User
from models.bulk import execute_many
from models.tables import OutboxMessage
from states.engine.audit import Event, append_audit
from states.roles import NETWORK_MANAGER, NETWORK_OFFICE, SYSTEM, SYSTEM_ACTOR

KINDS = ("Trauma Unit", "Adult Critical Care", "Burns", "Major Trauma Centre")


@dataclass
class PortalData:
    url: str
    as_of: date
    organisation_id: int
    services: int
    open_items: int
    other_items: int
    by_kind: dict[str, int]
    accounts: list[Account]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _trust(s: Session, name: str, n: int, networks: list[int]) -> tuple[int, list[int]]:
    """A Trust with ``n`` services over the networks, and the contacts letters go to."""
    org = Organisation(name=name, nation="ENG")
    s.add(org)
    s.flush()
    assert org.id is not None
    dom = name.split(" NHS")[0].lower().replace(" ", "-") + ".nhs.example"
    s.add(Contact(role="chief-executive", name=f"Chief Executive of {name}", email=f"ce@{dom}", organisation_id=org.id))
    s.add(
        Contact(role="medical-director", name=f"Medical Director of {name}", email=f"md@{dom}", organisation_id=org.id)
    )
    ids = []
    for k in range(n):
        svc = Service(
            name=f"{name.split(' NHS')[0]} service {k + 1:03d}",
            kind=KINDS[k % len(KINDS)],
            organisation_id=org.id,
            network_id=networks[k % len(networks)],
        )
        s.add(svc)
        s.flush()
        assert svc.id is not None
        ids.append(svc.id)
        s.add(Contact(role="service-lead", name=f"Service Lead {k + 1}", email=f"lead{k + 1}@{dom}",
                      service_id=svc.id, organisation_id=org.id))  # fmt: skip
    return org.id, ids


def build(
    url: str,
    open_items: int = 2_000,
    *,
    services: int = 200,
    accounts: int = 20,
    other_items: int | None = None,
    as_of: date | None = None,
    say: Callable[[str], None] = print,
) -> PortalData:
    """Write the database at ``url`` (empty, or absent for SQLite) and return what it holds."""
    started = time.perf_counter()
    as_of = today_working(as_of)
    other_items = open_items if other_items is None else other_items
    db = init_db(url)
    with Session(db) as s:
        seed_reference(s)
        networks = [n.id for n in s.exec(select(Network).order_by(col(Network.id))) if n.id is not None]
        org_id, mine = _trust(s, "Bench Portal NHS Foundation Trust", services, networks)
        other_org, theirs = _trust(s, "Bench Other NHS Trust", max(1, services // 10), networks)
        s.commit()
        net_of = {sv.id: sv.network_id for sv in s.exec(select(Service))}
        chief = {c.organisation_id: c for c in s.exec(select(Contact).where(Contact.role == "chief-executive"))}
    office = _office(db, networks)
    days = Days(as_of, ahead=260, behind=200)
    by_kind: dict[str, int] = {}
    rows = {"items": 0, "deadline": 0, "auditevent": 0, "outboxmessage": 0}
    next_id = dict.fromkeys(MODELS, 1)
    for org, svcs, total in ((org_id, mine, open_items), (other_org, theirs, other_items)):
        counts = [int(total * share) for *_, share, _o in MIX]
        counts[1] += total - sum(counts)
        for (kind, state, deadline, _share, overdue_share), n in zip(MIX, counts, strict=True):
            path, every = PATHS[(kind, state)], int(1 / overdue_share) if overdue_share else 0
            for start in range(0, n, CHUNK):
                items, dls, events, letters = [], [], [], []
                for j in range(start, min(n, start + CHUNK)):
                    item_id = next_id[kind]
                    next_id[kind] += 1
                    ref = {"services": [svcs[(j * 7 + j // len(svcs)) % len(svcs)]], "networks": networks}
                    item, dl = _rows(kind, state, deadline, j, False, item_id, ref, days, _stamp(days.at(-1)))
                    if every and j % every == 0:
                        _overdue(kind, item, dl, j, days)
                    if state == "chased":
                        _chase_ahead(item, dl, j, days)
                    net = net_of[item["service_id"]]
                    if kind == "complaint":
                        item["network_id"] = net
                    first = _first_day(kind, item, days)
                    item["version"] = 1 + len(path)
                    events += _history(kind, item_id, path, first, deadline, dl, office[net])
                    item["created_at"] = _stamp(first)
                    item["updated_at"] = events[-1].at
                    if kind == "risk" and state in FORMAL_SENT:
                        sent_on = item["formal_notification_on"] or first
                        dls.append(_closed_formal(item_id, item["visit_date"] or first, sent_on, days))
                        letters.append(_letter(item, chief.get(org), sent_on))
                    items.append(item)
                    dls.append(dl)
                with db.begin() as conn:
                    conn.execute(insert(MODELS[kind].__table__), items)  # type: ignore[attr-defined]
                    execute_many(conn, insert(Deadline.__table__), dls)  # type: ignore[attr-defined]
                    if letters:
                        execute_many(conn, insert(OutboxMessage.__table__), letters)  # type: ignore[attr-defined]
                with Session(db) as s:
                    append_audit(s, events)
                    s.commit()
                for k, v in (("items", items), ("deadline", dls), ("auditevent", events), ("outboxmessage", letters)):
                    rows[k] += len(v)
            if org == org_id:
                by_kind[kind] = by_kind.get(kind, 0) + n
    say(f"{open_items:,} open items over {services} services of one Trust; {other_items:,} of another Trust")
    people = _trust_users(db, org_id, accounts)
    _analyze(db)
    return PortalData(url, as_of, org_id, services, open_items, other_items, by_kind, people, rows,
                      time.perf_counter() - started)  # fmt: skip


def _history(
    kind: str, item_id: int, path: Any, first: date, deadline: str, dl: dict[str, Any], user: int
) -> list[Event]:
    out = []
    for step, (trigger, src, dst, role) in enumerate(path):
        system = role == SYSTEM
        data = {"deadlines": {deadline: dl["due_on"].isoformat()}} if step == len(path) - 1 else {}
        out.append(
            Event(
                kind=kind,
                item_id=item_id,
                at=_stamp(first, 10 + step),
                actor=SYSTEM_ACTOR if system else "Bench Office",
                role=role,
                trigger=trigger,
                from_state=src,
                to_state=dst,
                note=None,
                version=step + 2,
                data=data,
                user_id=SYSTEM_USER_ID if system else user,
            )
        )
    return out


def _office(db: Any, networks: list[int]) -> dict[int, int]:
    """One network office account per network, who did the office's steps of every history."""
    out = {}
    with Session(db) as s:
        for i, net in enumerate(networks):
            user = User(name=f"Bench Office {i + 1}", email=f"bench.office{i + 1}@network.nhs.example")
            s.add(user)
            s.flush()
            assert user.id is not None
            for role in (NETWORK_OFFICE, NETWORK_MANAGER):
                s.add(RoleGrant(user_id=user.id, role=role, scope="network", scope_id=net, source="admin"))
            out[net] = user.id
        s.commit()
    return out


def _trust_users(db: Any, org_id: int, n: int) -> list[Account]:
    """``n`` accounts of the Trust, each a Chief Executive's grant for the whole Trust, with a password."""
    out = []
    with Session(db) as s:
        for i in range(n):
            email = f"bench.trust{i + 1}@bench-portal.nhs.example"
            user = User(name=f"Bench Trust User {i + 1}", email=email, status="active")
            s.add(user)
            s.flush()
            assert user.id is not None
            s.add(RoleGrant(user_id=user.id, role="chief-executive", scope="organisation", scope_id=org_id,
                            source="admin"))  # fmt: skip
            out.append(Account(user.id, user.name, email, PASSWORD, 0))
        s.commit()
    if out:
        from states.services import signin  # lazy: the sign-in service (Argon2id) only when accounts are made

        for a in out:
            _set_password(signin, db, a)
    return out
