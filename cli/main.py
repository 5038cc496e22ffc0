"""``peerwatch``: the operator's command line (Typer + Rich).

Interactive commands never import Prefect: only ``serve`` and ``demo`` do, lazily.
Every error a user can cause prints one line on stderr and exits 2, with nothing changed.
"""

import sys
from typing import Annotated, Any

import typer
from sqlmodel import Session, col, select

from cli.output import console, errors, print_json, table
from models import (
    OUTSTANDING,
    Contact,
    Deadline,
    Milestone,
    Network,
    Organisation,
    OutboxMessage,
    Risk,
    Service,
    get_engine,
    init_db,
    session_scope,
)
from notifications.errors import NotificationError
from states import engine
from states.calendar import NATIONS, calendar_for
from states.clock import Clock, clock_from, local_date, parse_date, show
from states.errors import InvalidInput, NotFound, PeerwatchError
from states.machines.spec import get_spec, kinds
from states.roles import check_actor_role, check_contact_role

app = typer.Typer(
    help="peerwatch: peer review and quality surveillance for NHS clinical networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Opts:
    as_of: str | None = None
    json: bool = False


OPTS = Opts()


@app.callback()
def _global(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", envvar="PEERWATCH_AS_OF", help="Act as of this date (YYYY-MM-DD), Europe/London."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    if as_of:
        parse_date(as_of, "--as-of date")
    OPTS.as_of, OPTS.json = as_of, json_out


def clock() -> Clock:
    return clock_from(OPTS.as_of)


def _db() -> Any:
    return init_db()


def _organisation(s: Session, name: str) -> Organisation:
    org = s.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None:
        raise NotFound(f"organisation {name!r} not found (peerwatch service list)")
    return org


def _who(actor: str | None) -> str:
    """The actor of a change made at the command line: --actor, else $PEERWATCH_ACTOR, else the
    login name of the person running it (recorded in the audit trail)."""
    import getpass
    import os

    if actor is not None:
        return actor
    try:
        return os.environ.get("PEERWATCH_ACTOR") or getpass.getuser()
    except (OSError, KeyError):
        return ""


def _network(s: Session, code: str) -> Network:
    net = s.exec(select(Network).where(Network.code == code)).first()
    if net is None:
        raise NotFound(f"network {code!r} not found (peerwatch network list)")
    return net


# ---------------------------------------------------------------- setup commands


@app.command()
def init(
    demo: Annotated[
        bool, typer.Option("--demo", help="Also load the demo networks, Trusts, services and contacts.")
    ] = False,
) -> None:
    """Create the database tables (and, with --demo, the demo reference data)."""
    eng = _db()
    if demo:
        from cli.seed import seed_reference

        with session_scope() as s:
            seed_reference(s)
    out = {"database": str(eng.url), "demo": demo}
    print_json(out) if OPTS.json else console.print(
        f"database ready: {eng.url}" + (" (demo data loaded)" if demo else "")
    )


network_app = typer.Typer(help="Clinical networks.", no_args_is_help=True)
service_app = typer.Typer(help="Services (and the Trusts that run them).", no_args_is_help=True)
contact_app = typer.Typer(help="The contacts database: who holds which role.", no_args_is_help=True)
app.add_typer(network_app, name="network")
app.add_typer(service_app, name="service")
app.add_typer(contact_app, name="contact")


@network_app.command("add")
def network_add(
    code: Annotated[str, typer.Option(help="Short code, e.g. WMTN.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    cycle: Annotated[str, typer.Option(help="annual | biennial")] = "annual",
    actor: Annotated[
        str | None, typer.Option(help="Who is recording it (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role: Annotated[str, typer.Option(help="Actor role.")] = "operator",
) -> None:
    """Add a network (audited)."""
    if cycle not in ("annual", "biennial"):
        raise InvalidInput(f"cycle {cycle!r}: use annual or biennial")
    _db()
    with session_scope() as s:
        n = Network(code=code, name=name, cycle=cycle)
        s.add(n)
        s.flush()
        engine.record_change(
            s,
            "network",
            n.id,
            "add_network",
            actor=_who(actor),
            role=role,
            clock=clock(),  # type: ignore[arg-type]
            state="current",
            data={"code": code, "name": name, "cycle": cycle},
        )
        _created("network", n.id)


@network_app.command("list")
def network_list() -> None:
    """List networks."""
    _db()
    with Session(get_engine()) as s:
        rows = [(n.id, n.code, n.name, n.cycle) for n in s.exec(select(Network).order_by(Network.id))]  # type: ignore[arg-type]
    _rows("networks", ["id", "code", "name", "cycle"], rows)


@service_app.command("add")
def service_add(
    name: Annotated[str, typer.Option(help="Service name.")],
    kind: Annotated[str, typer.Option(help="Major Trauma Centre, Trauma Unit, Burns, Spine, Adult Critical Care, ...")],
    organisation: Annotated[str, typer.Option(help="Trust name (created if new).")],
    network: Annotated[str, typer.Option(help="Network code.")],
    nation: Annotated[str, typer.Option(help="UK nation of a new Trust: ENG, WLS, SCT or NIR.")] = "ENG",
    pathway: Annotated[str | None, typer.Option(help="The shared pathway the service belongs to.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who is recording it (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role: Annotated[str, typer.Option(help="Actor role.")] = "operator",
) -> None:
    """Add a service run by a Trust in a network (audited)."""
    if nation.upper() not in NATIONS:
        raise InvalidInput(f"unknown nation {nation!r}: use one of {', '.join(NATIONS)}")
    _db()
    with session_scope() as s:
        net = _network(s, network)
        org = s.exec(select(Organisation).where(Organisation.name == organisation)).first()
        if org is None:
            org = Organisation(name=organisation, nation=nation.upper())
            s.add(org)
            s.flush()
            engine.record_change(
                s,
                "organisation",
                org.id,
                "add_organisation",
                actor=_who(actor),
                role=role,  # type: ignore[arg-type]
                clock=clock(),
                state="current",
                data={"name": organisation, "nation": nation.upper()},
            )
        svc = Service(name=name, kind=kind, organisation_id=org.id, network_id=net.id, pathway=pathway)  # type: ignore[arg-type]
        s.add(svc)
        s.flush()
        engine.record_change(
            s,
            "service",
            svc.id,
            "add_service",
            actor=_who(actor),
            role=role,
            clock=clock(),  # type: ignore[arg-type]
            state="current",
            data={"name": name, "kind": kind, "organisation": organisation, "network": network, "pathway": pathway},
        )
        _created("service", svc.id)


@service_app.command("list")
def service_list() -> None:
    """List services."""
    _db()
    with Session(get_engine()) as s:
        q = select(Service, Organisation, Network).join(Organisation).join(Network).order_by(Service.id)  # type: ignore[arg-type]
        rows = [(sv.id, sv.name, sv.kind, o.name, o.nation, n.code) for sv, o, n in s.exec(q)]
    _rows("services", ["id", "name", "kind", "trust", "nation", "network"], rows)


@contact_app.command("add")
def contact_add(
    role: Annotated[str, typer.Option(help="Contact role, e.g. chief-executive, service-lead, network-manager, cqc.")],
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    service: Annotated[int | None, typer.Option(help="Service id (for service-level roles).")] = None,
    organisation: Annotated[str | None, typer.Option(help="Trust name (for Trust-level roles).")] = None,
    network: Annotated[str | None, typer.Option(help="Network code (for network and regional roles).")] = None,
    valid_from: Annotated[
        str | None, typer.Option("--from", help="Holds the role from this date (default: at once).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who is recording it (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role_as: Annotated[str, typer.Option("--as", help="Actor role.")] = "network-office",
) -> None:
    """Add a person holding a role (audited). With no scope, the contact is national."""
    from states.services.contacts import add_contact

    check_contact_role(role)
    day = parse_date(valid_from, "--from date") if valid_from else None
    _db()
    with session_scope() as s:
        org_id = _organisation(s, organisation).id if organisation else None
        net_id = _network(s, network).id if network else None
        c = add_contact(
            s,
            role=role,
            name=name,
            email=email,
            service_id=service,
            organisation_id=org_id,
            network_id=net_id,
            valid_from=day,
            actor=_who(actor),
            actor_role=role_as,
            clock=clock(),
        )
        _created("contact", c.id)


@contact_app.command("edit")
def contact_edit(
    contact_id: Annotated[int, typer.Argument(help="contact id (peerwatch contact list)")],
    effective: Annotated[
        str, typer.Option("--from", help="Letters go to the edited contact from this date (YYYY-MM-DD).")
    ],
    name: Annotated[str | None, typer.Option(help="The new name (e.g. the successor in the role).")] = None,
    email: Annotated[str | None, typer.Option(help="The new email address.")] = None,
    actor: Annotated[str, typer.Option(help="Who is acting.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-office",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change who holds a role, or their address, from a date: the old row is kept as history."""
    from states.services.contacts import edit_contact

    day = parse_date(effective, "--from date")
    _db()
    with session_scope() as s:
        out = edit_contact(
            s, contact_id, name=name, email=email, effective=day, actor=actor, actor_role=role, clock=clock(), note=note
        )
        _created("contact", out.row.id, replaces=contact_id, valid_from=day.isoformat())
    if not OPTS.json:
        console.print(f"  replaces contact {contact_id} from {day.isoformat()}")


@contact_app.command("retire")
def contact_retire(
    contact_id: Annotated[int, typer.Argument(help="contact id (peerwatch contact list)")],
    effective: Annotated[str, typer.Option("--from", help="No letters from this date (YYYY-MM-DD).")],
    actor: Annotated[str, typer.Option(help="Who is acting.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-office",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Retire a contact from a date (kept as history); warns if nobody else then holds the role."""
    from states.services.contacts import retire_contact

    day = parse_date(effective, "--from date")
    _db()
    with session_scope() as s:
        out = retire_contact(s, contact_id, effective=day, actor=actor, actor_role=role, clock=clock(), note=note)
    for w in out.warnings:
        errors.print(f"warning: {w}", markup=False)
    data = {"id": contact_id, "retired_from": day.isoformat(), "warnings": out.warnings}
    print_json(data) if OPTS.json else console.print(f"contact {contact_id} retired from {day.isoformat()}")


@contact_app.command("history")
def contact_history_cmd(contact_id: Annotated[int, typer.Argument(help="contact id")]) -> None:
    """Who held this role here, from when to when, and every audited change with who made it."""
    from states.services.contacts import contact_history, describe, status

    today = local_date(clock().now())
    _db()
    with Session(get_engine()) as s:
        rows, events = contact_history(s, contact_id)
        held = [
            {
                "id": c.id,
                "role": c.role,
                "name": c.name,
                "email": c.email,
                "from": c.valid_from,
                "until": c.valid_until,
                "status": status(c, today),
            }
            for c in rows
        ]
    changes = [
        {
            "at": e.at,
            "contact": e.item_id,
            "change": e.trigger,
            "actor": e.actor,
            "role": e.role,
            "note": e.note,
            "data": e.data,
        }
        for e in events
    ]
    if OPTS.json:
        print_json({"holders": held, "changes": changes})
        return
    table(
        f"contact {contact_id}: holders",
        ["id", "role", "name", "email", "from", "until", "status"],
        [(h["id"], h["role"], h["name"], h["email"], h["from"] or "", h["until"] or "", h["status"]) for h in held],
    )
    table(
        "changes",
        ["when", "contact", "change", "who", "role", "what"],
        [(show(c["at"]), c["contact"], c["change"], c["actor"], c["role"], describe(c["data"])) for c in changes],
    )


@contact_app.command("list")
def contact_list(
    every: Annotated[
        bool, typer.Option("--all", help="Also retired and replaced contacts, and those not yet in force.")
    ] = False,
) -> None:
    """List the contacts in force today (--all: with their history)."""
    from sqlalchemy import or_

    from states.services.contacts import status

    today = local_date(clock().now())
    _db()
    with Session(get_engine()) as s:
        q = select(Contact).order_by(Contact.id)  # type: ignore[arg-type]
        if not every:
            q = q.where(
                or_(col(Contact.valid_from).is_(None), col(Contact.valid_from) <= today),
                or_(col(Contact.valid_until).is_(None), col(Contact.valid_until) > today),
            )
        rows = [
            (c.id, c.role, c.name, c.email, c.service_id, c.organisation_id, c.network_id, status(c, today))
            for c in s.exec(q)
        ]
    _rows("contacts", ["id", "role", "name", "email", "service", "trust", "network", "status"], rows)


# ---------------------------------------------------------------- risks

risk_app = typer.Typer(
    help="Immediate risks (IR), serious concerns (SC) and general concerns (GC).", no_args_is_help=True
)
visit_app = typer.Typer(help="Peer review visits, panels and the visit day.", no_args_is_help=True)
report_app = typer.Typer(help="Peer review reports and the factual accuracy check.", no_args_is_help=True)
reviewer_app = typer.Typer(help="Reviewers who can sit on panels.", no_args_is_help=True)
appeal_app = typer.Typer(help="Appeals against a published report.", no_args_is_help=True)
complaint_app = typer.Typer(help="Complaints about the process or conduct of a review.", no_args_is_help=True)
KIND_APPS = {
    "risk": risk_app,
    "visit": visit_app,
    "report": report_app,
    "appeal": appeal_app,
    "complaint": complaint_app,
}
for _name, _sub in KIND_APPS.items():
    app.add_typer(_sub, name=_name)
app.add_typer(reviewer_app, name="reviewer")

ACTOR = Annotated[str, typer.Option(help="Who is acting.")]
ROLE = Annotated[str, typer.Option(help="Actor role: network-office, network-manager, regional-lead, operator.")]


@risk_app.command("raise")
def risk_raise(
    service: Annotated[int, typer.Option(help="Service id.")],
    level: Annotated[str, typer.Option(help="IR, SC or GC.")],
    title: Annotated[str, typer.Option(help="What was found.")],
    actor: Annotated[str, typer.Option(help="Who is recording it.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-manager",
    standard: Annotated[str | None, typer.Option(help="Standard reference, e.g. T-12.")] = None,
    visit_date: Annotated[
        str | None, typer.Option(help="Date of the visit where it was found (verbal notification that day).")
    ] = None,
    identified: Annotated[
        str | None, typer.Option(help="Date identified, if not at a visit (e.g. self-assessment validation).")
    ] = None,
    impact: Annotated[int | None, typer.Option(help="Impact 1-6 (Appendix 4).")] = None,
    likelihood: Annotated[int | None, typer.Option(help="Likelihood 1-6 (Appendix 4).")] = None,
    doctors_in_training: Annotated[
        bool, typer.Option("--doctors-in-training", help="The concern affects doctors in training.")
    ] = False,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Raise a risk or concern found at a visit or at self-assessment validation."""
    level = level.upper()
    if level not in ("IR", "SC", "GC"):
        raise InvalidInput(f"level {level!r}: use IR, SC or GC")
    check_actor_role(role)
    visit = parse_date(visit_date, "--visit-date") if visit_date else None
    found = parse_date(identified, "--identified date") if identified else visit
    if found is None:
        raise InvalidInput("give --visit-date (found at a visit) or --identified (found elsewhere)")
    c = clock()
    if found > local_date(c.now()):
        raise InvalidInput(
            f"date {found.isoformat()} is after today ({local_date(c.now()).isoformat()}): use --as-of to record as of a date"
        )
    _db()
    with session_scope() as s:
        if s.get(Service, service) is None:
            raise NotFound(f"service {service} not found (peerwatch service list)")
        row = Risk(
            service_id=service,
            level=level,
            title=title,
            standard_ref=standard,
            identified_on=found,
            visit_date=visit,
            impact=impact,
            likelihood=likelihood,
            doctors_in_training=doctors_in_training,
            state="new",
        )
        out = engine.create(s, "risk", row, "raise", actor=actor, role=role, clock=c, note=note)
        _created("risk", out.row.id, state=out.row.state, deadlines=_deadline_json(s, "risk", out.row.id))


@risk_app.command("milestone")
def risk_milestone(
    risk_id: Annotated[int, typer.Argument(help="Risk id.")],
    text: Annotated[str, typer.Option(help="What will be done.")],
    due: Annotated[
        str | None, typer.Option(help="Milestone date YYYY-MM-DD (moved to the next working day if it is not one).")
    ] = None,
    working_days: Annotated[
        int | None, typer.Option("--working-days", help="Or: due this many working days from today.")
    ] = None,
    owner: Annotated[
        str, typer.Option(help="Contact role who owns it and is chased when it is overdue.")
    ] = "service-lead",
    actor: Annotated[
        str | None, typer.Option(help="Who is recording it (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role: ROLE = "network-manager",
) -> None:
    """Record a milestone of the action plan agreed for a risk (audited; chased by the sweep when overdue)."""
    from states.services import milestones

    due_on = parse_date(due, "--due date") if due else None
    _db()
    with session_scope() as s:
        out = milestones.add(
            s,
            risk_id,
            text=text,
            due_on=due_on,
            working_days=working_days,
            owner_role=owner,
            actor=_who(actor),
            role=role,
            clock=clock(),
        )
        for n in out.notes:
            errors.print(f"note: {n}", markup=False)
        _created("milestone", out.row.id, due_on=out.row.due_on.isoformat(), owner=owner)


# ---------------------------------------------------------------- reviewers, visits, reports


@reviewer_app.command("add")
def reviewer_add(
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    discipline: Annotated[str, typer.Option(help="clinician, nurse, ahp, management, commissioning, service_user")],
    organisation: Annotated[str | None, typer.Option(help="Trust the reviewer works for.")] = None,
    network: Annotated[str | None, typer.Option(help="The reviewer's home network code.")] = None,
    pathway: Annotated[
        list[str] | None, typer.Option(help="A shared pathway the reviewer works in (repeatable).")
    ] = None,
    trained: Annotated[bool, typer.Option("--trained", help="Has had reviewer training.")] = False,
    actor: Annotated[
        str | None, typer.Option(help="Who is recording it (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role: ROLE = "network-office",
) -> None:
    """Add a reviewer to the pool (audited)."""
    from models import Reviewer
    from states.machines.visit import DISCIPLINES
    from states.services.contacts import add_reviewer

    if discipline not in DISCIPLINES:
        raise InvalidInput(f"discipline {discipline!r}: use one of {', '.join(DISCIPLINES)}")
    _db()
    with session_scope() as s:
        r = Reviewer(name=name, email=email, discipline=discipline, pathways=list(pathway or []), trained=trained)
        if organisation:
            r.organisation_id = _organisation(s, organisation).id
        if network:
            r.network_id = _network(s, network).id
        add_reviewer(s, r, actor=_who(actor), actor_role=role, clock=clock())
        _created("reviewer", r.id)


@reviewer_app.command("list")
def reviewer_list() -> None:
    """List reviewers."""
    from models import Reviewer

    _db()
    with Session(get_engine()) as s:
        rows = [
            (r.id, r.name, r.discipline, r.organisation_id, r.network_id, ", ".join(r.pathways), r.trained)
            for r in s.exec(select(Reviewer).order_by(Reviewer.id))
        ]  # type: ignore[arg-type]
    _rows("reviewers", ["id", "name", "discipline", "organisation", "network", "pathways", "trained"], rows)


@reviewer_app.command("edit")
def reviewer_edit(
    reviewer_id: Annotated[int, typer.Argument(help="reviewer id")],
    effective: Annotated[
        str | None, typer.Option("--from", help="Date of the change (default today; not in the future).")
    ] = None,
    name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    discipline: Annotated[str | None, typer.Option()] = None,
    trained: Annotated[bool | None, typer.Option("--trained/--untrained", help="Has had reviewer training.")] = None,
    actor: ACTOR = "",
    role: ROLE = "network-office",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change a reviewer's details (audited, with what it was)."""
    from states.services.contacts import edit_reviewer

    c = clock()
    day = parse_date(effective, "--from date") if effective else local_date(c.now())
    _db()
    with session_scope() as s:
        edit_reviewer(
            s,
            reviewer_id,
            changes={"name": name, "email": email, "discipline": discipline, "trained": trained},
            effective=day,
            actor=actor,
            actor_role=role,
            clock=c,
            note=note,
        )
    print_json({"id": reviewer_id, "changed_from": day.isoformat()}) if OPTS.json else console.print(
        f"reviewer {reviewer_id} changed"
    )


@reviewer_app.command("retire")
def reviewer_retire(
    reviewer_id: Annotated[int, typer.Argument(help="reviewer id")],
    effective: Annotated[str, typer.Option("--from", help="Not invited onto panels from this date (YYYY-MM-DD).")],
    actor: ACTOR = "",
    role: ROLE = "network-office",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Retire a reviewer from the pool from a date (audited)."""
    from states.services.contacts import retire_reviewer

    day = parse_date(effective, "--from date")
    _db()
    with session_scope() as s:
        retire_reviewer(s, reviewer_id, effective=day, actor=actor, actor_role=role, clock=clock(), note=note)
    data = {"id": reviewer_id, "retired_from": day.isoformat()}
    print_json(data) if OPTS.json else console.print(f"reviewer {reviewer_id} retired from {day.isoformat()}")


@reviewer_app.command("history")
def reviewer_history_cmd(reviewer_id: Annotated[int, typer.Argument(help="reviewer id")]) -> None:
    """Every audited change to a reviewer: who, when, what it was and became."""
    from states.services.contacts import describe, reviewer_history

    _db()
    with Session(get_engine()) as s:
        r, events = reviewer_history(s, reviewer_id)
        changes = [
            {"at": e.at, "change": e.trigger, "actor": e.actor, "role": e.role, "note": e.note, "data": e.data}
            for e in events
        ]
    if OPTS.json:
        print_json({"reviewer": reviewer_id, "name": r.name, "retired_on": r.retired_on, "changes": changes})
        return
    table(
        f"reviewer {reviewer_id}: {r.name}" + (f" (retired from {r.retired_on.isoformat()})" if r.retired_on else ""),
        ["when", "change", "who", "role", "what"],
        [(show(c["at"]), c["change"], c["actor"], c["role"], describe(c["data"])) for c in changes],
    )


@visit_app.command("propose")
def visit_propose(
    service: Annotated[int, typer.Option(help="Service id.")],
    actor: ACTOR = "",
    role: ROLE = "network-manager",
    reason: Annotated[str | None, typer.Option(help="Why: weighting score, validated self-assessment, ...")] = None,
) -> None:
    """Propose a visit to a service."""
    from models import Visit

    _db()
    with session_scope() as s:
        if s.get(Service, service) is None:
            raise NotFound(f"service {service} not found (peerwatch service list)")
        out = engine.create(
            s,
            "visit",
            Visit(service_id=service, state="new"),
            "propose",
            actor=actor,
            role=role,
            clock=clock(),
            params={"reason": reason} if reason else None,
        )
        _created("visit", out.row.id, state=out.row.state)


@visit_app.command("candidates")
def visit_candidates(network: Annotated[str, typer.Option(help="Network code, e.g. WMTN.")]) -> None:
    """Services ranked by the visit weighting score (docs/visits.md)."""
    from states.views.weighting import candidates

    _db()
    with Session(get_engine()) as s:
        ranked = candidates(s, network, local_date(clock().now()))
    if OPTS.json:
        print_json(ranked)
        return
    table(
        f"visit candidates, {network}",
        ["rank", "service", "trust", "score", "last visit", "open IR/SC/GC", "max score", "in progress"],
        [
            (
                n,
                c["service"],
                c["trust"],
                c["score"],
                c["last_visit"] or "never",
                f"{c['open_ir']}/{c['open_sc']}/{c['open_gc']}",
                c["max_risk_score"],
                "yes" if c["visit_in_progress"] else "",
            )
            for n, c in enumerate(ranked, start=1)
        ],
    )


@visit_app.command("panel-add")
def visit_panel_add(
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    reviewer: Annotated[int, typer.Option(help="Reviewer id.")],
    actor: ACTOR = "",
    role: ROLE = "network-office",
    observer: Annotated[bool, typer.Option("--observer", help="Attends as an observer.")] = False,
) -> None:
    """Invite a reviewer onto the panel (refused, with the reason, if conflicted)."""
    _fire_and_print(
        "visit", visit_id, "add_panel_member", actor, role, None, {"reviewer_id": reviewer, "observer": observer}
    )


@visit_app.command("declare")
def visit_declare(
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    reviewer: Annotated[int, typer.Option(help="Reviewer id.")],
    actor: ACTOR = "",
    role: ROLE = "network-office",
    conflicts: Annotated[str | None, typer.Option(help="Conflicts declared, if any.")] = None,
) -> None:
    """Record a reviewer's returned conflict-of-interest declaration."""
    _fire_and_print(
        "visit",
        visit_id,
        "record_declaration",
        actor,
        role,
        None,
        {"reviewer_id": reviewer, "conflicts": conflicts or ""},
    )


@visit_app.command("feedback")
def visit_feedback(
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    actor: ACTOR = "",
    role: ROLE = "network-manager",
    ir: Annotated[
        list[str] | None, typer.Option(help="An immediate risk found: 'title' or 'title|standard ref' (repeatable).")
    ] = None,
    sc: Annotated[list[str] | None, typer.Option(help="A serious concern found (repeatable).")] = None,
    gc: Annotated[list[str] | None, typer.Option(help="A general concern found (repeatable).")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record high level feedback: raises each IR/SC/GC found on the day and starts the report."""
    risks = []
    for level, found in (("IR", ir), ("SC", sc), ("GC", gc)):
        for text in found or []:
            title, _, ref = text.partition("|")
            risks.append({"level": level, "title": title.strip(), "standard_ref": ref.strip() or None})
    _fire_and_print("visit", visit_id, "give_feedback", actor, role, note, {"risks": risks})


@visit_app.command("agenda")
def visit_agenda(
    visit_id: Annotated[int, typer.Argument(help="visit id")],
    ics: Annotated[str | None, typer.Option(help="Also write the day as an ICS calendar file here.")] = None,
) -> None:
    """The visit day from the SOP schedule (walk-around dropped when virtual)."""
    from notifications.ics import visit_calendar
    from states.engine.letters import resolve
    from states.machines.visit import _panel, agenda
    from states.scope import recipient_scope, service_of

    _db()
    with Session(get_engine()) as s:
        _, visit = engine.load(s, "visit", visit_id)
        sessions = agenda(visit)  # type: ignore[arg-type]
        svc, _org, net = service_of(s, visit.service_id)  # type: ignore[attr-defined]
        people = [{"name": r.name, "email": r.email, "group": "panel"} for _m, r in _panel(s, visit_id)]
        scope = recipient_scope(s, visit)
        people += [
            {"name": c.name, "email": c.email, "group": "service"}
            for role in ("service-lead", "chief-executive")
            for c in resolve(s, role, scope, local_date(clock().now()))
        ]
        office = resolve(s, "network-office", scope, local_date(clock().now()))  # the ORGANIZER
        organizer = {"name": f"{net.name} ({office[0].name})", "email": office[0].email} if office else None
        if ics:
            from models.installation import installation_id

            iid, version = installation_id(s), visit.version  # type: ignore[attr-defined]
    if ics:
        from pathlib import Path

        Path(ics).write_bytes(
            visit_calendar(
                f"Visit-{visit_id}",
                svc.name,
                net.name,
                sessions,
                people,
                clock().now(),
                installation=iid,
                organizer=organizer,
                sequence=version,
            )
        )
    if OPTS.json:
        print_json({"visit": visit_id, "sessions": sessions, "ics": ics})
        return
    table(
        f"Visit {visit_id}: {svc.name}, {sessions[0]['start']:%a %d %b %Y} ({'virtual' if visit.mode == 'virtual' else 'in person'})",  # type: ignore[attr-defined]
        ["from", "to", "session", "who"],
        [(f"{x['start']:%H:%M}", f"{x['end']:%H:%M}", x["title"], x["who"]) for x in sessions],
    )
    if ics:
        console.print(f"calendar written to {ics} ({len(sessions)} events, {len(people)} attendees)")


@report_app.command("standard")
def report_standard(
    report_id: Annotated[int, typer.Argument(help="report id")],
    ref: Annotated[str, typer.Option(help="Standard reference, e.g. 1.2.")],
    status: Annotated[str, typer.Option(help="Met, Partially Met, Unmet, Not applicable")],
    descriptor: Annotated[str, typer.Option(help="The standard's descriptor.")] = "",
    comment: Annotated[str, typer.Option()] = "",
    actor: ACTOR = "",
    role: ROLE = "network-office",
) -> None:
    """Record compliance against one standard in a draft report."""
    _fire_and_print(
        "report",
        report_id,
        "add_standard",
        actor,
        role,
        None,
        {"ref": ref, "status": status, "descriptor": descriptor, "comment": comment},
    )


@report_app.command("positive")
def report_positive(
    report_id: Annotated[int, typer.Argument(help="report id")],
    text: Annotated[str, typer.Option(help="A positive development or achievement.")],
    actor: ACTOR = "",
    role: ROLE = "network-office",
) -> None:
    """Record a positive development in a draft report."""
    _fire_and_print("report", report_id, "add_positive", actor, role, None, {"text": text})


@report_app.command("inaccuracy")
def report_inaccuracy(
    report_id: Annotated[int, typer.Argument(help="report id")],
    text: Annotated[str, typer.Option(help="The inaccuracy as the service states it.")],
    actor: ACTOR = "",
    role: ROLE = "network-office",
    after_visit: Annotated[
        bool, typer.Option("--after-visit", help="The service says this changed after the visit (refused).")
    ] = False,
) -> None:
    """Record an inaccuracy the service states at the factual accuracy check."""
    _fire_and_print(
        "report", report_id, "record_inaccuracy", actor, role, None, {"text": text, "after_visit": after_visit}
    )


@report_app.command("decide")
def report_decide(
    report_id: Annotated[int, typer.Argument(help="report id")],
    item: Annotated[int, typer.Option(help="Inaccuracy id (report show).")],
    decision: Annotated[str, typer.Option(help="accepted or rejected")],
    actor: ACTOR = "",
    role: ROLE = "",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Accept or reject an inaccuracy: once as Network Manager, once as Regional Lead (two people)."""
    _fire_and_print(
        "report", report_id, "decide_inaccuracy", actor, role, note, {"item_id": item, "decision": decision}
    )


@report_app.command("render")
def report_render(
    report_id: Annotated[int, typer.Argument(help="report id")],
    out: Annotated[str, typer.Option(help="Folder to write the HTML and PDF into.")] = "var/reports",
) -> None:
    """Render a report to HTML and PDF from the stored data."""
    from pathlib import Path

    from notifications.documents import render_report_html, render_report_pdf
    from states.machines.report import document

    _db()
    with Session(get_engine()) as s:
        _, row = engine.load(s, "report", report_id)
        doc = document(s, row)  # type: ignore[arg-type]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    draft = row.state in ("drafting", "accuracy_check", "inaccuracies_received")
    html, pdf = folder / f"report-{report_id}.html", folder / f"report-{report_id}.pdf"
    html.write_text(render_report_html(doc, draft=draft))
    pdf.write_bytes(render_report_pdf(doc, draft=draft))
    if OPTS.json:
        print_json({"id": report_id, "html": str(html), "pdf": str(pdf)})
    else:
        console.print(f"report {report_id}: {html} and {pdf}")


@appeal_app.command("submit")
def appeal_submit(
    report: Annotated[int, typer.Option(help="The published report appealed against.")],
    appellant: Annotated[int, typer.Option(help="Contact id of the appellant (must be the Trust's Chief Executive).")],
    statement: Annotated[str, typer.Option(help="The appeal statement.")],
    grounds: Annotated[list[str], typer.Option(help="risk:ID (an IR or SC in the report) or compliance (repeatable).")],
    actor: ACTOR = "",
    role: ROLE = "network-office",
) -> None:
    """Record an appeal; a refusal is recorded with its reason and a letter to the appellant, nothing else."""
    from states.machines.appeal import submit

    parsed: list[dict[str, Any]] = []
    for g in grounds:
        if g == "compliance":
            parsed.append({"compliance": True})
        elif g.startswith("risk:") and g[5:].isdigit():
            parsed.append({"risk_id": int(g[5:])})
        else:
            raise InvalidInput(f"--grounds {g!r}: use risk:ID or compliance")
    check_actor_role(role)
    row = submit(
        _db(),
        report_id=report,
        appellant_contact_id=appellant,
        statement=statement,
        grounds=parsed,
        actor=actor,
        role=role,
        clock=clock(),
    )
    with Session(get_engine()) as s:
        _created("appeal", row.id, state=row.state, deadlines=_deadline_json(s, "appeal", row.id))  # type: ignore[arg-type]


@appeal_app.command("member")
def appeal_member(
    appeal_id: Annotated[int, typer.Argument(help="appeal id")],
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    actor: ACTOR = "",
    role: ROLE = "network-manager",
) -> None:
    """Invite someone onto the appeal subgroup (refused if involved in the review)."""
    _fire_and_print("appeal", appeal_id, "add_subgroup_member", actor, role, None, {"name": name, "email": email})


@appeal_app.command("decide")
def appeal_decide(
    appeal_id: Annotated[int, typer.Argument(help="appeal id")],
    outcome: Annotated[str, typer.Option(help="upheld, partly_upheld or not_upheld")],
    note: Annotated[str, typer.Option(help="The decision and its reasons.")],
    actor: ACTOR = "",
    role: ROLE = "network-manager",
    withdraw: Annotated[list[int] | None, typer.Option(help="Risk id to withdraw (repeatable).")] = None,
    regrade: Annotated[list[str] | None, typer.Option(help="RISK_ID=IR|SC (repeatable).")] = None,
) -> None:
    """Decide an appeal (final); upheld or partly upheld applies its changes and re-issues the report."""
    _fire_and_print(
        "appeal",
        appeal_id,
        "decide",
        actor,
        role,
        note,
        {"outcome": outcome, "withdraw": list(withdraw or []), "regrade": ",".join(regrade or [])},
    )


@complaint_app.command("receive")
def complaint_receive(
    network: Annotated[str, typer.Option(help="Network code.")],
    category: Annotated[str, typer.Option(help="arrangements, conduct, report_drafting, factual_accuracy")],
    from_name: Annotated[str, typer.Option(help="Complainant's name.")],
    from_email: Annotated[str, typer.Option(help="Complainant's email.")],
    summary: Annotated[str, typer.Option(help="What the complaint is about.")],
    service: Annotated[int | None, typer.Option(help="Service id, if about one service's review.")] = None,
    about_person: Annotated[
        bool, typer.Option("--about-person", help="About a person rather than the conduct of their role.")
    ] = False,
    received: Annotated[str | None, typer.Option(help="Date received (default today).")] = None,
    actor: ACTOR = "",
    role: ROLE = "network-office",
) -> None:
    """Record a complaint; it is routed to its owner by category."""
    from models import Complaint

    c = clock()
    day = parse_date(received, "--received date") if received else local_date(c.now())
    _db()
    with session_scope() as s:
        net = _network(s, network)
        if service is not None and s.get(Service, service) is None:
            raise NotFound(f"service {service} not found")
        row = Complaint(
            network_id=net.id,
            service_id=service,
            category=category,
            owner_role="",
            complainant_name=from_name,  # type: ignore[arg-type]
            complainant_email=from_email,
            summary=summary,
            received_on=day,
            about_person=about_person,
            state="new",
        )
        out = engine.create(s, "complaint", row, "receive", actor=actor, role=role, clock=c, note=summary)
        _created("complaint", out.row.id, state=out.row.state, deadlines=_deadline_json(s, "complaint", out.row.id))


# ---------------------------------------------------------------- generic kind commands


def _deadline_json(s: Session, kind: str, item_id: int) -> list[dict[str, Any]]:
    spec = get_spec(kind)
    out = []
    for d in engine.pending_deadlines(s, kind, item_id):
        rule = spec.deadline_rules.get(d.name)
        out.append(
            {
                "name": d.name,
                "due_on": d.due_on.isoformat(),
                "status": d.status,
                "remind_on": d.remind_on.isoformat() if d.remind_on else None,
                "owner": rule.owner if rule else None,
                "step": rule.step if rule else None,
                "then": rule.on_due if rule else None,
            }
        )
    return out


def _item_json(s: Session, kind: str, row: Any) -> dict[str, Any]:
    spec = get_spec(kind)
    data = row.model_dump()
    data.update(
        {
            "kind": kind,
            "deadlines": _deadline_json(s, kind, row.id),
            "next_step": spec.next_step.get(row.state),
            "triggers": spec.allowed_from(row.state),
        }
    )
    if kind == "visit":
        from states.machines.visit import panel_view

        data["panel"], data["warnings"] = panel_view(s, row)
    if kind == "report":
        from states.machines.report import document

        doc = document(s, row)
        data["inaccuracies"], data["achievement"] = doc["inaccuracies"], doc["achievement"]
    if kind in ("submission", "selfassessment", "report"):  # received late or on time, as recorded at receipt
        from states.machines.lateness import for_item

        data["lateness"] = for_item(s, kind, row.id)
        if data["lateness"]:  # the latest receipt, flat, for the table
            last = data["lateness"][-1]
            data.update(
                {"late": last["late"], "days_late": last["days_late"], "working_days_late": last["working_days_late"]}
            )
    if kind == "risk":
        data["score"] = row.impact * row.likelihood if row.impact and row.likelihood else None
        data["milestones"] = [
            m.model_dump()
            for m in s.exec(select(Milestone).where(Milestone.risk_id == row.id).order_by(Milestone.due_on))
        ]  # type: ignore[arg-type]
    return data


def _kind_app(kind: str) -> typer.Typer:
    sub = KIND_APPS.get(kind) or typer.Typer(no_args_is_help=True)

    @sub.command("show")
    def show_cmd(item_id: Annotated[int, typer.Argument(help=f"{kind} id")]) -> None:
        """Show one item: state, version, fields, pending deadlines, next step."""
        _db()
        with Session(get_engine()) as s:
            _, row = engine.load(s, kind, item_id)
            data = _item_json(s, kind, row)
        if OPTS.json:
            print_json(data)
            return
        skip = {
            "deadlines",
            "triggers",
            "milestones",
            "kind",
            "panel",
            "warnings",
            "compliance",
            "positives",
            "inaccuracies",
            "lateness",
        }
        table(
            f"{kind} {item_id}",
            ["field", "value"],
            [(k, v) for k, v in data.items() if k not in skip and v is not None],
        )
        if data["deadlines"]:
            table(
                "pending deadlines",
                ["deadline", "due", "status", "owner", "step", "then"],
                [
                    (d["name"], d["due_on"], d["status"], d["owner"], d["step"], d["then"] or "overdue notice")
                    for d in data["deadlines"]
                ],
            )
        if data.get("panel"):
            table(
                "panel",
                ["reviewer", "name", "discipline", "organisation", "network", "trained", "declared", "conflicts"],
                [
                    (
                        m["reviewer_id"],
                        m["name"],
                        m["discipline"],
                        m["organisation"],
                        f"{m['network']} (other network)" if m["other_network"] else m["network"],
                        "yes" if m["trained"] else "no",
                        m["declared_on"] or "not yet",
                        m["declared_conflicts"] or "",
                    )
                    for m in data["panel"]
                ],
            )
        for w in data.get("warnings", []):
            console.print(f"warning: {w}", markup=False)
        if data.get("compliance"):
            table(
                "compliance",
                ["ref", "standard", "status", "comment"],
                [(c["ref"], c["descriptor"], c["status"], c["comment"]) for c in data["compliance"]],
            )
        if data.get("inaccuracies"):
            table(
                "factual accuracy items",
                ["item", "inaccuracy", "outcome"],
                [(i["id"], i["text"], i["outcome"] or "pending") for i in data["inaccuracies"]],
            )
        if data.get("lateness"):
            table(
                "received",
                ["what", "due", "received", "late", "calendar days late", "working days late"],
                [
                    (
                        x["what"],
                        x["due_on"],
                        x["received_on"],
                        "LATE" if x["late"] else "on time" + (" (clock stopped)" if x["clock_paused"] else ""),
                        x["days_late"],
                        x["working_days_late"],
                    )
                    for x in data["lateness"]
                ],
            )
        if data.get("milestones"):
            table(
                "action plan milestones",
                ["id", "due", "milestone", "owner", "done", "chased"],
                [
                    (
                        m["id"],
                        m["due_on"],
                        m["text"],
                        m.get("owner_role"),
                        f"{m['done_on']} by {m.get('done_by')}" if m["done_on"] else "",
                        m.get("chased_on") or "",
                    )
                    for m in data["milestones"]
                ],
            )
        console.print(f"triggers now: {', '.join(data['triggers']) or 'none (closed)'}")

    @sub.command("list")
    def list_cmd(
        state: Annotated[str | None, typer.Option(help="Only items in this state.")] = None,
        due_before: Annotated[
            str | None, typer.Option(help="Only items with a pending deadline before this date.")
        ] = None,
    ) -> None:
        """List items, with their next deadline."""
        spec = get_spec(kind)
        if state and state not in [s.value for s in spec.states]:
            raise InvalidInput(f"unknown state {state!r} for {kind}: {', '.join(s.value for s in spec.states)}")
        before = parse_date(due_before, "--due-before date") if due_before else None
        _db()
        with Session(get_engine()) as s:
            q = select(spec.model).order_by(spec.model.id)  # type: ignore[arg-type]
            if state:
                q = q.where(spec.model.state == state)
            items = list(s.exec(q))
            dq = (
                select(Deadline)
                .where(Deadline.kind == kind, col(Deadline.status).in_(OUTSTANDING))
                .order_by(Deadline.due_on)
            )  # type: ignore[arg-type]
            nxt: dict[int, Deadline] = {}
            for d in s.exec(dq):
                nxt.setdefault(d.item_id, d)
            if before:
                items = [i for i in items if i.id in nxt and nxt[i.id].due_on < before]
            out = []
            for i in items:
                d = nxt.get(i.id)
                row = {
                    "id": i.id,
                    "state": i.state,
                    "version": i.version,
                    "next_deadline": d.name if d else None,
                    "due_on": d.due_on.isoformat() if d else None,
                }
                if kind == "risk":
                    row.update({"level": i.level, "title": i.title, "service_id": i.service_id})
                out.append(row)
        if OPTS.json:
            print_json(out)
            return
        cols = list(out[0]) if out else ["id", "state"]
        table(f"{kind} ({len(out)})", cols, [list(r.values()) for r in out])

    @sub.command("fire")
    def fire_cmd(
        item_id: Annotated[int, typer.Argument(help=f"{kind} id")],
        trigger: Annotated[str, typer.Argument(help="Trigger name (see show / diagram).")],
        actor: Annotated[str, typer.Option(help="Who is acting.")] = "",
        role: Annotated[
            str, typer.Option(help="Actor role: network-office, network-manager, regional-lead, operator.")
        ] = "",
        note: Annotated[str | None, typer.Option(help="Reason or note (required by some triggers).")] = None,
        version: Annotated[int | None, typer.Option(help="Refuse unless the item is still at this version.")] = None,
        param: Annotated[list[str] | None, typer.Option(help="key=value, repeatable (e.g. days=5, impact=4).")] = None,
    ) -> None:
        """Fire a trigger by hand: checked, audited, letters queued, deadlines set."""
        _fire_and_print(kind, item_id, trigger, actor, role, note, _params(param or []), version)

    @sub.command("history")
    def history_cmd(item_id: Annotated[int, typer.Argument(help=f"{kind} id")]) -> None:
        """The audit trail of one item, oldest first."""
        _db()
        with Session(get_engine()) as s:
            events = engine.history(s, kind, item_id)
            letters = list(
                s.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == kind, OutboxMessage.item_id == item_id)
                    .order_by(OutboxMessage.id)
                )
            )  # type: ignore[arg-type]
        if OPTS.json:
            print_json([e.model_dump() for e in events])
            return
        console.print(f"[bold]{kind} {item_id}[/bold]: {len(events)} event(s), oldest first (times Europe/London)")
        for e in events:
            console.print(
                f"{show(e.at)}  [bold]{e.trigger}[/bold]  {e.from_state} -> {e.to_state}  by {e.actor} ({e.role}), version {e.version}",
                markup=True,
                highlight=False,
            )
            if e.note:
                console.print(f"    note: {e.note}", markup=False)
            detail = _fmt_data(e.data)
            if detail:
                console.print(f"    {detail}", markup=False)
        if letters:
            table(
                "letters",
                ["queued", "template", "to", "status"],
                [
                    (
                        show(m.created_at),
                        m.template,
                        ", ".join(f"{p['name']} ({p['role_name']})" for p in m.to) or "-",
                        m.status,
                    )
                    for m in letters
                ],
            )

    return sub


def _fire_and_print(
    kind: str,
    item_id: int,
    trigger: str,
    actor: str,
    role: str,
    note: str | None,
    params: dict[str, Any],
    version: int | None = None,
) -> None:
    """Fire through the engine in one transaction and say what happened."""
    if not role:
        raise InvalidInput("give --role (network-office, network-manager, regional-lead, operator)")
    out, pending = engine.fire_or_record(
        _db(),
        kind,
        item_id,
        trigger,
        actor=actor,
        role=role,
        clock=clock(),
        note=note,
        expected_version=version,
        params=params,
    )
    result = {
        "id": item_id,
        "kind": kind,
        "trigger": trigger,
        "from": out.event.from_state,
        "state": out.row.state,
        "version": out.event.version,
        "letters_queued": out.queued,
        "proposed": out.proposed,
        "deadlines": [{**d, "due_on": d["due_on"].isoformat()} for d in pending],
    }
    if OPTS.json:
        print_json(result)
    elif out.proposed:
        console.print(
            f"{kind} {item_id}: {trigger} proposed by {actor} (version {result['version']}): "
            "it needs a second person to confirm it with the same parameters",
            markup=False,
        )
    else:
        console.print(
            f"{kind} {item_id}: {trigger}: {result['from']} -> {result['state']} (version {result['version']}), "
            f"{out.queued} letter(s) queued",
            markup=False,
        )
        for d in result["deadlines"]:
            console.print(f"  {d['name']} due {d['due_on']}")


def _fmt_data(data: dict[str, Any]) -> str:
    parts = []
    for k, v in (data.get("deadlines") or {}).items():
        parts.append(f"{k} due {v}")
    if data.get("params"):
        parts.append(", ".join(f"{k}={v}" for k, v in data["params"].items()))
    return "; ".join(parts)


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {p!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def _plugin_names() -> list[str]:
    """Command groups in ``cli/cmd_<name>.py`` (each exports ``app`` and ``NAME`` == name)."""
    import pkgutil

    import cli

    return [m.name.removeprefix("cmd_") for m in pkgutil.iter_modules(cli.__path__) if m.name.startswith("cmd_")]


def _mount(word: str | None) -> None:
    """Mount the plugin command groups and every kind's generic show/list/fire/history.

    For a command word that names one of them, only that one is imported (start-up time:
    each plugin pulls in its kind's module); anything else (help, a typo) mounts them all."""
    import importlib

    plugins = _plugin_names()
    builtin = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    builtin |= {g.name for g in app.registered_groups if g.name and g.name not in KIND_APPS}
    if word in builtin:
        return
    every = word not in set(plugins) | set(kinds())
    for name in plugins:
        if (every or name == word) and f"cmd_{name}" not in _DONE:
            _DONE.add(f"cmd_{name}")
            module = importlib.import_module(f"cli.cmd_{name}")
            KIND_APPS.setdefault(module.NAME, module.app)
            if module.NAME not in kinds():
                app.add_typer(module.app, name=module.NAME, help=module.app.info.help)
    for kind in kinds():
        if (every or kind == word) and kind not in _DONE:
            _DONE.add(kind)
            sub = _kind_app(kind)
            if kind not in _MOUNTED:
                app.add_typer(sub, name=kind, help=get_spec(kind).describe)


_MOUNTED = set(KIND_APPS)  # mounted above with their own commands; the generic ones join them in _mount
_DONE: set[str] = set()  # plugins and kinds mounted so far in this process


def _only(word: str | None) -> typer.Typer:
    """The app with only the command group the line names: Typer builds the Click command of
    every mounted group on each call (about 100 commands, 30 ms). Anything else: the whole app."""
    groups = [g for g in app.registered_groups if word is not None and g.name == word]
    if not groups:
        return app
    slim = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    slim.info = app.info
    slim.registered_callback = app.registered_callback
    slim.registered_groups = groups
    return slim


def _command_word(args: list[str]) -> str | None:
    """The first word that is not an option or the --as-of value: the command group."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--as-of":
            skip = True
        elif not a.startswith("-"):
            return a
    return None


# ---------------------------------------------------------------- sweeps and outbox


@app.command()
def chase() -> None:
    """Run today's chase sweep in this process (the `chase` flow runs the same code)."""
    from states.engine.sweep import run_sweep

    summary = run_sweep(_db(), clock())
    if OPTS.json:
        print_json({"as_of": summary.as_of, "actions": summary.actions, "skipped": summary.skipped})
        return
    table(
        f"chase as of {summary.as_of}: {len(summary.actions)} action(s)",
        ["kind", "id", "deadline", "due", "action", "now"],
        [(a["kind"], a["id"], a["deadline"], a["due_on"], a["action"], a.get("to_state", "")) for a in summary.actions],
    )
    for sk in summary.skipped:
        console.print(f"skipped {sk['kind']} {sk['id']}: {sk['reason']}")


@app.command()
def dispatch() -> None:
    """Send what is queued in the outbox (PEERWATCH_MAIL=folder|smtp)."""
    from notifications.dispatch import dispatch as run
    from notifications.transports import transport_from_env
    from states.policy import Policy

    transport = transport_from_env()
    with Session(_db(), expire_on_commit=False) as s:
        summary = run(s, transport, clock(), Policy.from_env())
    data = {
        "emails_sent": summary.sent_messages,
        "messages_sent": summary.sent_rows,
        "retried": summary.retried,
        "failed": summary.failed,
        "still_failed": summary.still_failed,
        "redelivered": summary.redelivered,
        "recovered_sent": summary.recovered_sent,
        "requeued": summary.requeued,
        "in_doubt": summary.in_doubt,
    }
    print_json(data) if OPTS.json else console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()))


outbox_app = typer.Typer(help="The outbox of letters.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option(help="queued, sending, sent, failed, undeliverable")] = None,
    incidents_only: Annotated[
        bool,
        typer.Option(
            "--incidents", help="Only open incidents: failed, undeliverable, and sends interrupted or in doubt."
        ),
    ] = False,
) -> None:
    """List messages (failed, undeliverable and stuck 'sending' ones are incidents)."""
    from models import OutboxStatus
    from notifications.dispatch import incidents, is_in_doubt

    if status is not None and status not in {s.value for s in OutboxStatus}:
        raise InvalidInput(f"status {status!r}: use one of {', '.join(s.value for s in OutboxStatus)}")
    _db()
    with Session(get_engine()) as s:
        if incidents_only:
            rows = incidents(s, clock().now())
            if status:
                rows = [m for m in rows if m.status == status]
        else:
            q = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            if status:
                q = q.where(OutboxMessage.status == status)
            rows = list(s.exec(q))
    out = [
        {
            "id": m.id,
            "status": "in doubt" if is_in_doubt(m) else m.status,
            "template": m.template,
            "category": m.category,
            "item": f"{m.kind} {m.item_id}",
            "to": ", ".join(p["email"] for p in m.to),
            "cc": ", ".join(p["email"] for p in m.cc),
            "attempts": m.attempts,
            "next_try": show(m.next_attempt_at) if m.status in ("queued", "failed") else "",
            "resend_at": show(m.resend_at) if m.resend_at else "",
            "resent_at": show(m.resent_at) if m.resent_at else "",
            "error": m.last_error,
        }
        for m in rows
    ]
    if OPTS.json:
        print_json(out)
    else:
        title = f"outbox incidents ({len(out)})" if incidents_only else f"outbox ({len(out)})"
        table(
            title,
            ["id", "status", "template", "item", "to", "attempts", "next try", "error"],
            [
                (o["id"], o["status"], o["template"], o["item"], o["to"], o["attempts"], o["next_try"], o["error"])
                for o in out
            ],
        )


@outbox_app.command("show")
def outbox_show(
    message_id: Annotated[int, typer.Argument(help="outbox message id (peerwatch outbox list)")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part instead of the plain text.")] = False,
) -> None:
    """One letter: as sent, or as it will be sent (rendered now from what the transition stored)."""
    from notifications.render import rendered

    _db()
    with Session(get_engine()) as s:
        m = s.get(OutboxMessage, message_id) if -(2**63) <= message_id < 2**63 else None
        if m is None:
            raise NotFound(f"outbox message {message_id} not found (peerwatch outbox list)")
    letter = rendered(m)
    people = ", ".join(f"{p['name']} <{p['email']}>" for p in m.to)
    copies = ", ".join(f"{p['name']} <{p['email']}>" for p in m.cc)
    when = f"sent {show(m.sent_at)}" if m.sent_at else f"not sent yet: {m.status}, rendered now from its stored context"
    if OPTS.json:
        print_json(
            {
                "id": m.id,
                "status": m.status,
                "template": m.template,
                "item": f"{m.kind} {m.item_id}",
                "to": m.to,
                "cc": m.cc,
                "sent_at": m.sent_at,
                "subject": letter.subject,
                "body_text": letter.body_text,
                "body_html": letter.body_html,
            }
        )
        return
    for label, value in (
        ("Message", f"{m.id} ({when})"),
        ("Item", f"{m.kind} {m.item_id}"),
        ("Template", m.template),
        ("To", people or "nobody"),
        ("Cc", copies),
        ("Subject", letter.subject),
    ):
        if value:
            console.print(f"{label + ':':9} {value}", markup=False, highlight=False)
    console.print("", markup=False)
    console.print(letter.body_html if html else letter.body_text, markup=False, highlight=False, soft_wrap=True)


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="outbox message id(s)")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed message.")] = False,
    actor: Annotated[
        str | None, typer.Option(help="Who is acting (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role: ROLE = "operator",
) -> None:
    """Queue failed or in-doubt messages to go on the next dispatch (in doubt: only once you know it did not arrive)."""
    from states.services.outbox import retry

    if not ids and not all_failed:
        raise InvalidInput("name the message id(s) to retry, or give --all-failed")
    _db()
    with session_scope() as s:
        done = [m.id for m in retry(s, ids or [], all_failed=all_failed, actor=_who(actor), role=role, clock=clock())]
    print_json({"queued": done}) if OPTS.json else console.print(
        f"queued again: {', '.join(map(str, done)) or 'nothing'}"
    )


@outbox_app.command("in-doubt")
def outbox_in_doubt(
    ids: Annotated[list[int], typer.Argument(help="outbox message id(s) in doubt (peerwatch outbox list --incidents)")],
    hold: Annotated[
        bool, typer.Option("--hold", help="Do not resend it automatically (it stays an incident).")
    ] = False,
    resend: Annotated[
        bool, typer.Option("--resend", help="Resend it on the next dispatch, with the same Message-ID.")
    ] = False,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="The recipient has it: mark it sent, never resend it.")
    ] = False,
    actor: Annotated[
        str | None, typer.Option(help="Who is acting (default: $PEERWATCH_ACTOR, else your login name).")
    ] = None,
    role: ROLE = "operator",
) -> None:
    """Settle letters left in doubt by a crash mid-send (by default each is resent once, same
    Message-ID, PEERWATCH_IN_DOUBT_RESEND_SECONDS after the crash was found)."""
    from states.services.outbox import settle_in_doubt

    chosen = [a for a, on in (("hold", hold), ("resend", resend), ("delivered", delivered)) if on]
    if len(chosen) != 1:
        raise InvalidInput("give one of --hold, --resend or --delivered")
    _db()
    with session_scope() as s:
        done = [m.id for m in settle_in_doubt(s, ids, chosen[0], actor=_who(actor), role=role, clock=clock())]
    print_json({chosen[0]: done}) if OPTS.json else console.print(f"{chosen[0]}: {', '.join(map(str, done))}")


# ---------------------------------------------------------------- calendar and diagrams

calendar_app = typer.Typer(help="The working-day calendar.", no_args_is_help=True)
app.add_typer(calendar_app, name="calendar")


@calendar_app.command("add-working-days")
def add_working_days(
    start: Annotated[str, typer.Argument(help="YYYY-MM-DD (day 0)")],
    n: Annotated[int, typer.Argument(help="working days")],
    nation: Annotated[str, typer.Option(help="ENG, WLS, SCT or NIR")] = "ENG",
) -> None:
    """The N-th working day after DATE, skipping weekends and the nation's bank holidays."""
    day = parse_date(start)
    cal = calendar_for(nation.upper()) if nation.upper() in NATIONS else calendar_for(nation)
    result = cal.add_working_days(day, n)
    if OPTS.json:
        print_json({"start": day, "working_days": n, "nation": cal.nation, "due_on": result})
    else:
        console.print(f"{result.isoformat()} ({result.strftime('%A %d %B %Y')})")


@app.command()
def diagram(kind: Annotated[str, typer.Argument(help="risk")]) -> None:
    """Print a kind's state diagram (Mermaid), drawn from the machine itself."""
    from cli.diagram import mermaid

    sys.stdout.write(mermaid(kind))


# ---------------------------------------------------------------- Prefect


@app.command()
def serve() -> None:
    """Serve the chase, dispatch and fire deployments (schedules from prefect.yaml)."""
    from flows.deployments import serve_all

    serve_all()


@app.command()
def demo(
    keep_server: Annotated[
        bool, typer.Option(help="Leave the local Prefect server running to browse the runs.")
    ] = False,
) -> None:
    """Run the end-to-end demonstration on a fresh SQLite database with real Prefect flows."""
    from cli.demo import run_demo

    run_demo(keep_server=keep_server)


def _created(what: str, new_id: int | None, **extra: Any) -> None:
    if OPTS.json:
        print_json({"id": new_id, **extra})
    else:
        console.print(f"{what} {new_id} created" + (f", state {extra['state']}" if "state" in extra else ""))
        for d in extra.get("deadlines", []):
            console.print(f"  {d['name']} due {d['due_on']}")


def _rows(title: str, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    if OPTS.json:
        print_json([dict(zip(cols, r)) for r in rows])
    else:
        table(title, cols, rows)


def _hoist_globals(argv: list[str]) -> list[str]:
    """Let --json and --as-of go anywhere on the line, as people type them."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--json" or arg.startswith("--as-of="):
            front.append(arg)
        elif arg == "--as-of" and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit code 2, nothing changed."""
    from sqlalchemy.exc import IntegrityError, OperationalError
    from typer._click import exceptions as click_errors  # typer 0.29 vendors click

    args = _hoist_globals(list(sys.argv[1:] if argv is None else argv))
    word = _command_word(args)
    _mount(word)
    try:
        code = _only(word)(args=args, prog_name="peerwatch", standalone_mode=False)
    except (PeerwatchError, NotificationError) as exc:
        _fail(str(exc))
    except click_errors.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "peerwatch --help")
        raise SystemExit(0) from None
    except click_errors.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx else ""
        _fail(f"{exc.format_message()}{where}; see --help")
    except click_errors.ClickException as exc:
        _fail(exc.format_message())
    except typer.Abort:
        _fail("aborted")
    except IntegrityError as exc:
        _fail(f"that would duplicate or orphan a record: {str(exc.orig).splitlines()[0]}")
    except OperationalError as exc:
        _fail(f"database: {str(exc.orig).splitlines()[0]}")
    except OverflowError as exc:  # a number beyond the database's integers (ids are 64-bit), or a date past 9999
        _fail(f"a number or date given is out of range ({exc}): check it; nothing was changed")
    raise SystemExit(code if isinstance(code, int) else 0)


def run() -> None:
    """The console script: ``main``, then leave without the interpreter's teardown.

    By then everything is committed and printed; freeing every module's objects on the way out
    (SQLAlchemy, pydantic) costs about 0.2 s, a third of a ``peerwatch risk show``. Commands
    that ran Prefect (its workers flush logs and events at exit) and unexpected errors (their
    traceback) leave the normal way."""
    import os

    try:
        main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if "prefect" in sys.modules:
        raise SystemExit(code)
    if isinstance(code, str):  # SystemExit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _fail(message: str) -> None:
    errors.print(f"error: {' '.join(message.split())}", markup=False, soft_wrap=True)
    raise SystemExit(2)
