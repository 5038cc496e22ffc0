"""A database for the web bench (and anyone who wants a big or small one to click through):
``open_items`` open items over the seed's three networks and many services, with their
history, deadlines, letters and signed-in-able accounts, written fast with bulk core INSERTs.

Rows are valid as the engine would have left them (``bench/fixtures.py`` writes the item and
its open deadline; this module adds the rest):

- each item is at the version its history gives it (created in the kind's initial state at
  version 1, one version per transition) and every transition of that history is in the keyed
  audit chain (``states.engine.audit.append_audit``: real HMACs under the bench's key), with the
  roles the machine's table allows for it and the ``no_response`` of a chased risk by the system;
- the deadline of a state left is kept ``closed`` (a risk past ``identified`` keeps its formal
  notification deadline) and the formal notification letter such a risk got is in the outbox,
  sent;
- some deadlines owned by network roles have passed and had their overdue letter
  (``fired``: formal notifications, monitoring reviews, visit days, complaint acknowledgements),
  so "My work" has an overdue head; the Trust-owned ones with an ``on_due`` trigger never pass
  unswept (the sweep would already have fired them);
- the as-of day is today (the last working day on or before it), because the web server acts
  on the real clock.

Accounts: ``accounts`` Network Managers, spread over the networks (a ``network`` grant each),
with a password set through ``states.services.signin.set_password`` (Argon2id).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from bench.fixtures import MODELS, Days, _rows
from cli.seed import seed_reference
from models import Contact, Deadline, Network, Organisation, Service, init_db
from models.accounts import SYSTEM_USER_ID, RoleGrant, User
from models.bulk import execute_many
from models.tables import OutboxMessage
from states.calendar import calendar_for
from states.engine.audit import Event, append_audit
from states.machines.risk import RESPONSE_WORKING_DAYS
from states.roles import NETWORK_MANAGER, NETWORK_OFFICE, SYSTEM, SYSTEM_ACTOR

CHUNK = 5_000
PASSWORD = "tangerine lighthouse quietly orbits"  # a passphrase: NCSC length over complexity

# (kind, state, the deadline that state owns, share of the items, share of those overdue)
MIX = (
    ("risk", "identified", "formal_notification", 0.08, 0.25),
    ("risk", "awaiting_response", "response", 0.30, 0.0),
    ("risk", "chased", "chase_response", 0.04, 0.0),
    ("risk", "monitoring", "monitoring_review", 0.18, 0.20),
    ("risk", "work_programme", "monitoring_review", 0.06, 0.20),
    ("visit", "prepared", "visit_day", 0.12, 0.10),
    ("report", "drafting", "report_due", 0.08, 0.0),
    ("complaint", "received", "acknowledgement", 0.14, 0.10),
)
LEADS = "network-manager"
OFFICE = "network-office"
# The history that leaves an item in a state: (trigger, from, to, role) from the kind's initial state.
PATHS: dict[tuple[str, str], tuple[tuple[str, str, str, str], ...]] = {
    ("risk", "identified"): (("raise", "new", "identified", OFFICE),),
    ("risk", "awaiting_response"): (
        ("raise", "new", "identified", OFFICE),
        ("send_formal_notification", "identified", "awaiting_response", LEADS),
    ),
    ("risk", "chased"): (
        ("raise", "new", "identified", OFFICE),
        ("send_formal_notification", "identified", "awaiting_response", LEADS),
        ("no_response", "awaiting_response", "chased", SYSTEM),
    ),
    ("risk", "monitoring"): (
        ("raise", "new", "identified", OFFICE),
        ("send_formal_notification", "identified", "awaiting_response", LEADS),
        ("response_adequate", "awaiting_response", "monitoring", LEADS),
    ),
    ("risk", "work_programme"): (("raise", "new", "work_programme", OFFICE),),
    ("visit", "prepared"): (
        ("propose", "new", "proposed", OFFICE),
        ("schedule", "proposed", "scheduled", OFFICE),
        ("notify_service", "scheduled", "service_notified", OFFICE),
        ("confirm_prepared", "service_notified", "prepared", OFFICE),
    ),
    ("report", "drafting"): (("start_drafting", "new", "drafting", OFFICE),),
    ("complaint", "received"): (("receive", "new", "received", OFFICE),),
}
FORMAL_SENT = {"awaiting_response", "chased", "monitoring"}  # risks that got the formal letter


@dataclass(frozen=True)
class Account:
    user_id: int
    name: str
    email: str
    password: str
    network_id: int


@dataclass
class WebData:
    url: str
    open_items: int
    as_of: date
    by_kind: dict[str, int]
    services: int
    networks: list[int]
    accounts: list[Account]
    risks_by_network: dict[int, list[int]] = field(default_factory=dict)  # open risks, for item pages
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table
    seconds: float = 0.0


def today_working(today: date | None = None) -> date:
    """The last working day (England) on or before ``today`` (default: today in London)."""
    from states.clock import SystemClock, local_date  # lazy: only when no day is given

    day = today or local_date(SystemClock().now())
    cal = calendar_for("ENG")
    while not cal.is_working_day(day):
        day -= timedelta(days=1)
    return day


def _stamp(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _more_services(s: Session, trusts: int) -> None:
    """``trusts`` more Trusts with three services each, over the seed's networks, with the
    contacts letters go to (chief executive, medical director, each service's lead)."""
    nets = [n.id for n in s.exec(select(Network).order_by(Network.id))]
    for t in range(trusts):
        org = Organisation(name=f"Bench Trust {t + 1} NHS Foundation Trust", nation="ENG")
        s.add(org)
        s.flush()
        dom = f"bench-trust-{t + 1}.nhs.example"
        s.add(
            Contact(role="chief-executive", name=f"Chief Executive {t + 1}", email=f"ce@{dom}", organisation_id=org.id)
        )
        s.add(
            Contact(
                role="medical-director", name=f"Medical Director {t + 1}", email=f"md@{dom}", organisation_id=org.id
            )
        )
        for k, kind in enumerate(("Trauma Unit", "Adult Critical Care", "Burns")):
            svc = Service(
                name=f"Bench Trust {t + 1} {kind}",
                kind=kind,
                organisation_id=org.id,  # type: ignore[arg-type]
                network_id=nets[(t + k) % len(nets)],  # type: ignore[arg-type]
            )
            s.add(svc)
            s.flush()
            s.add(
                Contact(
                    role="service-lead",
                    name=f"Service Lead {t + 1}.{k + 1}",
                    email=f"lead{k + 1}@{dom}",
                    service_id=svc.id,
                    organisation_id=org.id,
                )
            )


def _overdue(kind: str, item: dict[str, Any], dl: dict[str, Any], j: int, days: Days) -> None:
    """Move an item's network-owned deadline into the past, its overdue letter sent (``fired``)."""
    k = -1 - j % 15
    dl["due_on"] = days.at(k)
    dl["status"] = "fired"
    if dl["remind_on"] is not None:
        dl["remind_on"] = days.at(k - 2)
        dl["reminded"] = True
    if kind == "risk" and item["state"] == "identified":
        item["identified_on"] = item["visit_date"] = days.at(k - 5)
    elif kind == "visit":
        item["visit_date"] = dl["due_on"]
    elif kind == "complaint":
        item["received_on"] = days.at(k - 5)


def build(
    url: str,
    open_items: int,
    *,
    accounts: int = 20,
    as_of: date | None = None,
    trusts: int | None = None,
    say: Callable[[str], None] = print,
) -> WebData:
    """Write the database at ``url`` (empty, or absent for SQLite) and return what it holds."""
    import time

    started = time.perf_counter()
    as_of = today_working(as_of)
    db = init_db(url)
    trusts = trusts if trusts is not None else max(4, open_items // 2_500)
    with Session(db) as s:
        seed_reference(s)
        _more_services(s, trusts)
        s.commit()
        services = [(sv.id, sv.network_id) for sv in s.exec(select(Service).order_by(Service.id)) if sv.id is not None]
        networks = [n.id for n in s.exec(select(Network).order_by(Network.id)) if n.id is not None]
        chief = {c.organisation_id: c for c in s.exec(select(Contact).where(Contact.role == "chief-executive"))}
        org_of = {sv.id: sv.organisation_id for sv in s.exec(select(Service))}
    net_of = dict(services)
    days = Days(as_of, ahead=260, behind=200)
    ref = {"services": [sid for sid, _ in services], "networks": networks}
    staff_id = _office(db, networks)
    staff = {n: f"Bench Office {i + 1}" for i, n in enumerate(networks)}
    by_kind: dict[str, int] = {}
    risks_by_network: dict[int, list[int]] = {n: [] for n in networks}
    rows = {"items": 0, "deadline": 0, "auditevent": 0, "outboxmessage": 0}
    counts = [int(open_items * share) for *_, share, _o in MIX]
    counts[1] += open_items - sum(counts)
    next_id = dict.fromkeys(MODELS, 1)
    for (kind, state, deadline, _share, overdue_share), n in zip(MIX, counts, strict=True):
        model = MODELS[kind]
        path = PATHS[(kind, state)]
        every = int(1 / overdue_share) if overdue_share else 0
        for start in range(0, n, CHUNK):
            items, dls, events, letters = [], [], [], []
            for j in range(start, min(n, start + CHUNK)):
                item_id = next_id[kind]
                next_id[kind] += 1
                # fixtures' item and deadline; ``j`` spreads services and dates (a prime stride for services)
                item, dl = _rows(kind, state, deadline, j, False, item_id, _spread(ref, j), days, _stamp(days.at(-1)))
                if every and j % every == 0:
                    _overdue(kind, item, dl, j, days)
                if state == "chased":
                    _chase_ahead(item, dl, j, days)
                svc = item["service_id"]
                net = net_of[svc]
                if kind == "complaint":
                    item["network_id"] = net
                first = _first_day(kind, item, days)
                last = min(days.at(-1), max(first, days.at(-1 - j % 5)))
                item["version"] = 1 + len(path)
                when = _stamp(first)
                for step, (trigger, src, dst, role) in enumerate(path):
                    if step == len(path) - 1 and step:
                        when = max(when, _stamp(last, 11))
                    if kind == "risk" and trigger == "send_formal_notification" and item["formal_notification_on"]:
                        when = max(when, _stamp(item["formal_notification_on"], 11))
                    elif trigger == "no_response":
                        when = max(when, _stamp(dl["due_on"] - timedelta(days=7), 7))
                    system = role == SYSTEM
                    data: dict[str, Any] = {}
                    if step == len(path) - 1:
                        data["deadlines"] = {deadline: dl["due_on"].isoformat()}
                    events.append(
                        Event(
                            kind=kind,
                            item_id=item_id,
                            at=when,
                            actor=SYSTEM_ACTOR if system else staff[net],
                            role=role,
                            trigger=trigger,
                            from_state=src,
                            to_state=dst,
                            note=None,
                            version=step + 2,
                            data=data,
                            user_id=SYSTEM_USER_ID if system else staff_id[net],
                        )
                    )
                item["created_at"], item["updated_at"] = _stamp(first), when
                if kind == "risk" and state in FORMAL_SENT:
                    sent_on = item["formal_notification_on"] or first
                    dls.append(_closed_formal(item_id, item["visit_date"] or first, sent_on, days))
                    letters.append(_letter(item, chief.get(org_of[svc]), sent_on))
                if kind == "risk":
                    risks_by_network[net].append(item_id)
                items.append(item)
                dls.append(dl)
            with db.begin() as conn:
                conn.execute(insert(model.__table__), items)  # type: ignore[attr-defined]
                execute_many(conn, insert(Deadline.__table__), dls)  # type: ignore[attr-defined]
                if letters:
                    execute_many(conn, insert(OutboxMessage.__table__), letters)  # type: ignore[attr-defined]
            with Session(db) as s:
                append_audit(s, events)
                s.commit()
            rows["items"] += len(items)
            rows["deadline"] += len(dls)
            rows["auditevent"] += len(events)
            rows["outboxmessage"] += len(letters)
        by_kind[kind] = by_kind.get(kind, 0) + n
        say(f"    {n:,} {kind} {state} ({time.perf_counter() - started:.0f} s)")
    people = _accounts(db, networks, accounts)
    _analyze(db)
    return WebData(
        url=url,
        open_items=open_items,
        as_of=as_of,
        by_kind=by_kind,
        services=len(services),
        networks=networks,
        accounts=people,
        risks_by_network=risks_by_network,
        rows=rows,
        seconds=time.perf_counter() - started,
    )


_STRIDE = 7_919  # a prime: consecutive items land on unrelated services


def _spread(ref: dict[str, list[int]], j: int) -> dict[str, list[int]]:
    svcs = ref["services"]
    pick = svcs[(j * _STRIDE) % len(svcs)]
    # fixtures' ``_rows`` takes ``services[j % len]``: hand it a list whose that slot is ours
    return {"services": _One(pick, len(svcs)), "networks": ref["networks"]}  # type: ignore[dict-item]


class _One:
    """A stand-in list of ``n`` services, every slot the same one."""

    def __init__(self, value: int, n: int) -> None:
        self.value, self.n = value, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, _i: int) -> int:
        return self.value


def _first_day(kind: str, item: dict[str, Any], days: Days) -> date:
    """The day the item was created: its visit, receipt or basis date, never after yesterday."""
    day = {
        "risk": item.get("identified_on"),
        "complaint": item.get("received_on"),
        "report": item.get("basis_date"),
    }.get(kind) or days.at(-40)
    return min(day, days.at(-1))


def _closed_formal(item_id: int, visit: date, sent_on: date, days: Days) -> dict[str, Any]:
    due = calendar_for("ENG").add_working_days(visit, 5)
    return {
        "kind": "risk",
        "item_id": item_id,
        "name": "formal_notification",
        "due_on": due,
        "remind_on": calendar_for("ENG").subtract_working_days(due, 2),
        "reminded": False,
        "due_day_notified": False,
        "status": "closed",
        "paused_remaining": None,
        "nation": "ENG",
        "created_at": _stamp(visit),
    }


def _letter(item: dict[str, Any], ce: Contact | None, sent_on: date) -> dict[str, Any]:
    ref = f"{item['level']}-{item['id']}"
    to = [{"name": ce.name, "email": ce.email, "role": "chief-executive"}] if ce else []
    context = {
        "item": {"ref": ref, "id": item["id"], "level": item["level"], "title": item["title"]},
        "today": {"$peerwatch:date": sent_on.isoformat()},
        "to": to,
    }
    at = _stamp(sent_on, 11)
    return {
        "idempotency_key": f"risk:{item['id']}:v3:formal_notification",
        "kind": "risk",
        "item_id": item["id"],
        "template": "formal_notification",
        "category": "letter",
        "context": json.dumps(context, separators=(",", ":")),
        "subject": f"Formal notification: {ref} {item['title']}",
        "body_text": f"Dear {ce.name if ce else 'colleague'},\n\nThe review found {item['title'].lower()}.\n",
        "body_html": None,
        "to": to,
        "cc": [],
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": at,
        "last_error": None,
        "created_at": at,
        "sent_at": at + timedelta(minutes=1),
        "message_id": f"<bench-{item['id']}@peerwatch.example>",
        "resend_at": None,
        "resent_at": None,
    }


def _chase_ahead(item: dict[str, Any], dl: dict[str, Any], j: int, days: Days) -> None:
    """A chased risk whose chase is still running: the escalation date ahead (the sweep fires
    ``still_no_response`` once it passes, so a passed one would not be left unswept)."""
    k = 1 + j % 5
    dl["due_on"] = days.at(k)
    sent = k - 5 - RESPONSE_WORKING_DAYS[item["level"]]
    item["formal_notification_on"] = days.at(sent)
    item["identified_on"] = item["visit_date"] = days.at(sent - 5)


def _office(db: Any, networks: list[int]) -> dict[int, int]:
    """One network office account per network, who did the office's steps of every history."""
    out = {}
    with Session(db) as s:
        for i, net in enumerate(networks):
            user = User(name=f"Bench Office {i + 1}", email=f"bench.office{i + 1}@network.nhs.example")
            s.add(user)
            s.flush()
            assert user.id is not None
            s.add(RoleGrant(user_id=user.id, role=NETWORK_OFFICE, scope="network", scope_id=net, source="admin"))
            s.add(RoleGrant(user_id=user.id, role=NETWORK_MANAGER, scope="network", scope_id=net, source="admin"))
            out[net] = user.id
        s.commit()
    return out


def _accounts(db: Any, networks: list[int], n: int) -> list[Account]:
    """``n`` Network Managers, one network each (round robin), with a password."""
    out = []
    with Session(db) as s:
        for i in range(n):
            net = networks[i % len(networks)]
            email = f"bench.manager{i + 1}@network.nhs.example"
            user = User(name=f"Bench Manager {i + 1}", email=email, status="active")
            s.add(user)
            s.flush()
            assert user.id is not None
            s.add(RoleGrant(user_id=user.id, role=NETWORK_MANAGER, scope="network", scope_id=net, source="admin"))
            out.append(Account(user.id, user.name, email, PASSWORD, net))
        s.commit()
    if out:
        from states.services import signin  # lazy: the sign-in service (Argon2id) only when accounts are made

        for a in out:
            _set_password(signin, db, a)
    return out


def _set_password(signin: Any, db: Any, a: Account) -> None:
    """Through the sign-in service: each account sets its own password."""
    from states.clock import SystemClock  # lazy: with the sign-in service
    from states.services.accounts import principal_for  # lazy: with the sign-in service

    with Session(db) as s:
        user = s.get(User, a.user_id)
        assert user is not None
        signin.set_password(s, principal_for(s, user, "bench"), SystemClock(), None, a.password)
        s.commit()


def _analyze(db: Any) -> None:
    with db.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        if db.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:  # ids were given explicitly: move each sequence past them
            for model in MODELS.values():
                t = model.__tablename__
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 1))"
                )
        conn.commit()


def describe(url: str) -> WebData:
    """What a database ``build`` wrote holds (its accounts, its open risks by network), to run
    the load again on it without building it again."""
    from sqlalchemy import text

    db = init_db(url)
    with db.connect() as conn:
        people = [
            Account(uid, name, email, PASSWORD, net)
            for uid, name, email, net in conn.execute(
                text(
                    "SELECT a.id, a.name, a.email, g.scope_id FROM account a JOIN role_grant g ON g.user_id = a.id "
                    "WHERE a.email LIKE 'bench.manager%' AND g.role = :role ORDER BY a.id"
                ),
                {"role": NETWORK_MANAGER},
            )
        ]
        risks: dict[int, list[int]] = {}
        for rid, net in conn.execute(
            text(
                "SELECT r.id, s.network_id FROM risk r JOIN service s ON s.id = r.service_id "
                "WHERE r.state NOT IN ('closed', 'withdrawn') ORDER BY r.id"
            )
        ):
            risks.setdefault(net, []).append(rid)
        by_kind = {
            kind: int(conn.execute(text(f"SELECT COUNT(*) FROM {model.__tablename__}")).scalar() or 0)
            for kind, model in MODELS.items()
        }
        services = int(conn.execute(text("SELECT COUNT(*) FROM service")).scalar() or 0)
    return WebData(
        url=url,
        open_items=sum(by_kind.values()),
        as_of=today_working(),
        by_kind=by_kind,
        services=services,
        networks=sorted(risks),
        accounts=people,
        risks_by_network=risks,
    )
