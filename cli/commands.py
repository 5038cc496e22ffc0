"""The commands at the top of ``peerwatch``: init, whoami, chase, dispatch, diagram, serve and demo.

cli/app.py mounts them only when one of them is typed (or for help): Prefect (serve, demo) and
Jinja2 (dispatch) are imported inside the command that needs them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.cmd_user import describe, print_whoami
from cli.context import of, os_login, sudo_uid
from cli.diagram import mermaid
from cli.output import console, print_json, table
from cli.seed import seed_reference
from states.engine import keys, record_change
from states.engine.sweep import run_sweep
from states.policy import Policy
from states.roles import ADMINISTRATOR, OPERATOR
from states.services import accounts, clocks, installation

app = typer.Typer()


@app.command()
def init(
    ctx: typer.Context,
    training: Annotated[
        bool,
        typer.Option(
            "--training", help="Make a new, empty database a training database: simulated dates, --as, no SMTP."
        ),
    ] = False,
    permissions: Annotated[
        Path | None, typer.Option("--permissions", help="Seed the permission table from this YAML file (once).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Your display name, if init makes your account.")] = None,
    email: Annotated[str | None, typer.Option(help="Your email, if init makes your account.")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also load the demo networks, Trusts, services and contacts.")
    ] = False,
    service_account: Annotated[
        str | None,
        typer.Option(
            "--service-account",
            help="The OS login that owns the database and the audit key; staff run peerwatch through "
            "sudo as it. Run init that way: sudo -u NAME peerwatch init --service-account NAME.",
        ),
    ] = None,
) -> None:
    """Set up: the tables, the audit key file (if none), and you (the OS user running this, or
    the one who ran it through sudo as the service account) as the first administrator when
    the database has none."""
    run = of(ctx)
    eng = run.db()
    with Session(eng) as s:  # refused before the key file or an account is made
        login = installation.init_login(s, os_login(), sudo_uid(), service_account)
    key_made = keys.create_key_file()
    found = keys.load(required=True)
    with Session(eng, expire_on_commit=False) as s:
        if training:
            accounts.mark_training(s)
        clock = clocks.action_clock(s, run.as_of)
        user, made = accounts.bootstrap(s, clock, os_login=login, name=name, email=email, permissions_file=permissions)
        if service_account is not None and service_account.strip() != installation.service_account(s):
            assert user is not None  # init_login refused a change where administrators exist
            via = installation.SUDO if login != os_login() else "cli"
            installation.set_service_account(s, accounts.principal_for(s, user, via), clock, service_account)
        if demo:  # the demo's reference data: an administrator's act, audited (never an unmapped login's)
            holder = user or accounts.find_user(s, login)
            admin = accounts.principal_for(s, holder, "cli")
            admin.require(ADMINISTRATOR, "load the demo reference data")
            seed_reference(s)
            record_change(s, "demo_data", 1, "seed_demo_reference_data", principal=admin, role=ADMINISTRATOR,
                          clock=clock, state="seeded")  # fmt: skip
        is_training = accounts.is_training(s)
        named = installation.service_account(s)
        s.commit()
    out = {
        "database": str(eng.url),
        "demo": demo,
        "training": is_training,
        "os_login": login,
        "service_account": named,
        "account": None if user is None else {"id": user.id, "name": user.name, "email": user.email},
        "administrator_made": made,
        "audit_key": str(key_made) if key_made else (found.where if found else None),
        "audit_key_made": key_made is not None,
        "permissions_seeded": permissions is not None,
    }
    if run.json:
        print_json(out)
        return
    console.print(f"database ready: {eng.url}" + (" (demo data loaded)" if demo else ""), markup=False)
    console.print(
        "training database: simulated dates and --as ACCOUNT are allowed; its letters are never sent over SMTP"
        if is_training
        else "not a training database: every action happens now, on the server's clock",
        markup=False,
    )
    console.print(
        f"audit key: {key_made} made (mode 0600; keep a copy in your secrets store)"
        if key_made
        else f"audit key: {out['audit_key']} (already there)",
        markup=False,
    )
    if made and user is not None:
        console.print(
            f"administrator: account {user.id} {user.name} <{user.email}>, for the OS login {login}", markup=False
        )
        console.print("next: peerwatch user add NAME EMAIL --os-login LOGIN, then peerwatch user grant", markup=False)
    elif user is not None:
        console.print(f"administrators exist already; the OS login {login} is account {user.id} ({user.name})")
    else:
        console.print(f"administrators exist already; the OS login {login} has no account (ask one of them)")
    if named:
        console.print(f"service account: {named} (staff run peerwatch through sudo -u {named})", markup=False)
    if permissions is not None:
        console.print(f"permission table seeded from {permissions} (peerwatch permissions shows it)", markup=False)


@app.command()
def whoami(ctx: typer.Context) -> None:
    """Who you are to peerwatch: your account, OS login, roles and their scopes."""
    run = of(ctx)
    with Session(run.db()) as s:
        me = run.principal(s)
        detail = accounts.user_detail(s, str(me.user_id))
        data = {
            "id": me.user_id,
            "name": me.name,
            "email": detail["email"],
            "os_login": detail["os_login"],
            "status": detail["status"],
            "via": me.via,
            "grants": describe(s, me),
            "training": accounts.is_training(s),
            "service_account": installation.service_account(s),
        }
    print_whoami(run, data)


SWEEPERS = (OPERATOR, ADMINISTRATOR)


@app.command()
def chase(ctx: typer.Context) -> None:
    """Run today's chase sweep in this process (the `chase` flow runs the same code), as the
    system; operators and administrators start it. --as-of: a past date only, to catch up."""
    run = of(ctx)
    db = run.db()
    with Session(db) as s:
        run.principal(s).require_any(SWEEPERS, "run the sweep")
        clock = run.flow_clock(s)
    summary = run_sweep(db, clock)
    if run.json:
        print_json(
            {
                "as_of": summary.as_of,
                "actions": summary.actions,
                "skipped": summary.skipped,
                "undeliverable": summary.undeliverable,
            }
        )
        return
    table(
        f"chase as of {summary.as_of}: {len(summary.actions)} action(s)",
        ["kind", "id", "deadline", "due", "action", "now"],
        [(a["kind"], a["id"], a["deadline"], a["due_on"], a["action"], a.get("to_state", "")) for a in summary.actions],
    )
    for sk in summary.skipped:  # each an incident: never a silent skip
        step = f" ({sk['step']})" if sk.get("step") else ""
        console.print(f"skipped {sk['kind']} {sk['id']}{step}: {sk['reason']}", markup=False)
    for u in summary.undeliverable:
        console.print(
            f"undeliverable: {u.get('letter')} for {u.get('kind')} {u.get('id')} (outbox {u.get('outbox_id')}): "
            f"{u.get('reason')}",
            markup=False,
        )


@app.command()
def dispatch(ctx: typer.Context) -> None:
    """Send what is queued in the outbox (PEERWATCH_MAIL=folder|smtp); operators and administrators."""
    from notifications.dispatch import dispatch as send  # lazy: start-up time (Jinja2)
    from notifications.transports import transport_from_env  # lazy: start-up time (with the above)

    run = of(ctx)
    db = run.db()
    with Session(db) as s:
        run.principal(s).require_any(SWEEPERS, "send the outbox")
        clock = run.flow_clock(s)
    transport = transport_from_env()
    with Session(db, expire_on_commit=False) as s:
        summary = send(s, transport, clock, Policy.from_env())
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
    if summary.note:  # a training database: written to the folder, never sent over SMTP
        data["note"] = summary.note
    print_json(data) if run.json else console.print(
        ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()), markup=False
    )


@app.command()
def diagram(kind: Annotated[str, typer.Argument(help="risk")]) -> None:
    """Print a kind's state diagram (Mermaid), drawn from the machine itself."""
    sys.stdout.write(mermaid(kind))


@app.command()
def serve() -> None:
    """Serve the chase, dispatch and fire deployments (schedules from prefect.yaml)."""
    from flows.deployments import serve_all  # lazy: start-up time (Prefect)

    serve_all()


@app.command()
def demo(
    keep_server: Annotated[
        bool, typer.Option(help="Leave the local Prefect server running to browse the runs.")
    ] = False,
) -> None:
    """Run the end-to-end demonstration on a fresh SQLite database with real Prefect flows."""
    from cli.demo import run_demo  # lazy: start-up time (Prefect)

    run_demo(keep_server=keep_server)
