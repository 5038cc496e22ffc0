"""``peerwatch audit``: prove the audit trail has not been altered (the keyed chain, its anchors
outside the database, the item tables replayed from it); anchor it; rotate its key; list refused
attempts (docs/security.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console, print_json, table
from states.clock import show
from states.engine import keys as audit_keys
from states.engine import record_change
from states.engine.audit import check_chain
from states.engine.replay import replay
from states.roles import ADMINISTRATOR
from states.services import anchors
from states.views.directory import refused_attempts

NAME = "audit"
app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor_dir: Annotated[
        Path | None,
        typer.Option("--anchors", help="Also prove every anchor in this directory is still in the chain."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Print at most this many replay findings (0: all; --json has all).")] = 100,
) -> None:
    """Recompute the keyed hash chain over every audit event, check the anchors, and replay every
    item's events against the item tables; name each problem (exit 1), or say it is intact.
    Without the audit key it cannot verify: it says so (exit 2), never "intact"."""
    run = of(ctx)
    with Session(run.db()) as s:
        chain = check_chain(s)  # NoAuditKey: "cannot verify", exit 2
        checked, found = anchors.verify_anchors(s, anchor_dir) if anchor_dir is not None else (0, [])
        replayed = replay(s)
    problems = []
    if chain.problem:
        problems.append(f"audit chain broken after {chain.checked} good event(s): {chain.problem}")
    problems += found
    findings = [f.line() for f in replayed.findings]
    if run.json:
        out: dict[str, Any] = {
            "ok": not (problems or findings),
            "events": chain.checked,
            "unkeyed_events": chain.unkeyed,
            "first_broken_event": chain.broken.id if chain.broken else None,
            "chain_problem": chain.problem,
            "anchors_checked": checked,
            "anchor_problems": found,
            "items_replayed": replayed.items,
            "deadlines_checked": replayed.deadlines,
            "replay_findings": [f.as_dict() for f in replayed.findings],
        }
        print_json(out)
    else:
        shown = findings if limit <= 0 else findings[:limit]
        for line in problems + shown:
            console.print(f"problem: {line}", markup=False, highlight=False, soft_wrap=True)
        if len(shown) < len(findings):
            console.print(f"... and {len(findings) - len(shown)} more replay finding(s) (--limit 0 or --json for all)")
        summary = (
            f"{chain.checked} events ({chain.unkeyed} unkeyed before keying), {checked} anchors checked, "
            f"replay of {replayed.items} items"
        )
        if problems or findings:
            n = len(problems) + len(findings)
            console.print(f"{n} problem(s) found; verified: {summary}", markup=False, highlight=False, soft_wrap=True)
        else:
            console.print(f"intact: {summary} clean", markup=False, highlight=False, soft_wrap=True)
    if problems or findings:
        raise typer.Exit(1)


@app.command("anchor")
def anchor(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write it (default PEERWATCH_ANCHOR_DIR, else var/anchors)."),
    ] = None,
) -> None:
    """Verify the chain since the last anchor, write its head (event id and count, hash, time,
    installation) to a new file outside the database, and queue an email of it to the auditors."""
    run = of(ctx)
    with Session(run.db()) as s:
        who = run.acting(s)  # no mapped account, no write (the email goes through the outbox)
        path = anchors.anchor(s, who.clock, directory)
        s.commit()
    run.say({"anchor": str(path)}, f"audit chain anchored: {path}")


@app.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Append a new audit key to the key file: it signs from now on; the old keys still verify
    the events they signed (administrators; audited, signed with the new key)."""
    run = of(ctx)
    with Session(run.db()) as s:
        who = run.acting(s, ADMINISTRATOR)
        role = who.principal.require(ADMINISTRATOR, "rotate the audit key")
        before = audit_keys.load()
        assert before is not None  # required: NoAuditKey otherwise
        new = audit_keys.rotate()
        record_change(
            s,
            "audit_key",
            1,
            "rotate",
            principal=who.principal,
            role=role,
            clock=who.clock,
            state="rotated",
            data={"key_id": new, "previous_key_id": before.current},
        )
        s.commit()
    run.say({"key_id": new, "previous_key_id": before.current}, f"audit key rotated: {new} signs from now on")


@app.command("keys")
def keys(ctx: typer.Context) -> None:
    """Where the audit keys come from and their ids (never the keys themselves)."""
    run = of(ctx)
    found = audit_keys.load()
    assert found is not None
    data = {"where": found.where, "key_ids": list(found.keys), "signing": found.current}
    run.say(data, f"{found.where}: keys {', '.join(found.keys)}; {found.current} signs")


@app.command("refused")
def refused(ctx: typer.Context, limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50) -> None:
    """Refused attempts: who tried what, when, and why."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = refused_attempts(s, limit)
    data = [
        {
            "at": r.at,
            "kind": r.kind,
            "item": r.item_id,
            "trigger": r.trigger,
            "user_id": r.user_id,
            "actor": r.actor,
            "role": r.role,
            "reason": r.reason,
            "os_login": (r.data or {}).get("os_login"),
        }
        for r in rows
    ]
    if run.json:
        print_json(data)
    else:
        table(
            "refused attempts",
            ["when", "kind", "item", "trigger", "account", "actor", "role", "reason"],
            [(show(r.at), r.kind, r.item_id, r.trigger, r.user_id, r.actor, r.role, r.reason) for r in rows],
        )
