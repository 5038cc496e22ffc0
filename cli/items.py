"""The commands every kind has: ``show``, ``list``, ``fire`` and ``history`` (``peerwatch <kind> ...``),
and ``fire_and_print``, which the kinds' own commands use to fire one trigger and say what happened."""

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, Context, of
from cli.output import console, print_json, table
from states.clock import parse_date, show
from states.errors import InvalidInput
from states.machines.spec import get_spec
from states.services import acting, items

SHOW_SKIP = frozenset(
    {
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
)


def kind_app(kind: str) -> typer.Typer:
    """A command group for a kind with no commands of its own: only the generic ones."""
    return add_item_commands(typer.Typer(help=get_spec(kind).describe, no_args_is_help=True), kind)


def add_item_commands(sub: typer.Typer, kind: str) -> typer.Typer:
    """Add show, list, fire and history for ``kind`` to its command group."""

    @sub.command("show")
    def show_cmd(ctx: typer.Context, item_id: Annotated[int, typer.Argument(help=f"{kind} id")]) -> None:
        """Show one item: state, version, fields, pending deadlines, next step."""
        run = of(ctx)
        with Session(run.db()) as s:
            data = items.show(s, kind, item_id)
        if run.json:
            print_json(data)
        else:
            print_item(kind, item_id, data)

    @sub.command("list")
    def list_cmd(
        ctx: typer.Context,
        state: Annotated[str | None, typer.Option(help="Only items in this state.")] = None,
        due_before: Annotated[
            str | None, typer.Option(help="Only items with a pending deadline before this date.")
        ] = None,
    ) -> None:
        """List items, with their next deadline."""
        run = of(ctx)
        items.check_state(kind, state)
        before = parse_date(due_before, "--due-before date") if due_before else None
        with Session(run.db()) as s:
            out = items.item_rows(s, kind, state, before)
        if run.json:
            print_json(out)
            return
        cols = list(out[0]) if out else ["id", "state"]
        table(f"{kind} ({len(out)})", cols, [list(r.values()) for r in out])

    @sub.command("fire")
    def fire_cmd(
        ctx: typer.Context,
        item_id: Annotated[int, typer.Argument(help=f"{kind} id")],
        trigger: Annotated[str, typer.Argument(help="Trigger name (see show / diagram).")],
        role: ROLE = None,
        note: Annotated[str | None, typer.Option(help="Reason or note (required by some triggers).")] = None,
        version: Annotated[int | None, typer.Option(help="Refuse unless the item is still at this version.")] = None,
        param: Annotated[list[str] | None, typer.Option(help="key=value, repeatable (e.g. days=5, impact=4).")] = None,
    ) -> None:
        """Fire a trigger by hand, as you (your OS account's peerwatch account): checked, audited,
        letters queued, deadlines set."""
        fire_and_print(of(ctx), kind, item_id, trigger, role, note, params(param or []), version)

    @sub.command("history")
    def history_cmd(ctx: typer.Context, item_id: Annotated[int, typer.Argument(help=f"{kind} id")]) -> None:
        """The audit trail of one item, oldest first."""
        run = of(ctx)
        with Session(run.db()) as s:
            events, letters = items.history(s, kind, item_id)
        if run.json:
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


def print_item(kind: str, item_id: int, data: dict[str, Any]) -> None:
    """One item as tables: fields, pending deadlines, and what its kind adds."""
    table(
        f"{kind} {item_id}",
        ["field", "value"],
        [(k, v) for k, v in data.items() if k not in SHOW_SKIP and v is not None],
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


def fire_and_print(
    run: Context,
    kind: str,
    item_id: int,
    trigger: str,
    role: str | None,
    note: str | None,
    params: dict[str, Any],
    version: int | None = None,
) -> None:
    """Fire through the engine in one transaction, as the person running the command (``role``:
    which of their roles, when more than one may), and say what happened. Who is acting is
    settled first: an unmapped OS account, a disabled account or a role not held is refused
    with nothing changed; a refusal by the engine is recorded with the account that tried."""
    db = run.db()
    with Session(db) as s:
        who = run.acting(s, role)
    result = acting.fire(
        db, who.principal, who.clock, kind, item_id, trigger, note=note, params=params, version=version
    )
    deadlines = result["deadlines"]
    if run.json:
        print_json(result)
    elif result["proposed"]:
        console.print(
            f"{kind} {item_id}: {trigger} proposed by {who.principal.name} (version {result['version']}): "
            "it needs a second person to confirm it with the same parameters",
            markup=False,
        )
    else:
        console.print(
            f"{kind} {item_id}: {trigger}: {result['from']} -> {result['state']} (version {result['version']}), "
            f"{result['letters_queued']} letter(s) queued",
            markup=False,
        )
        for d in deadlines:
            console.print(f"  {d['name']} due {d['due_on']}")


def _fmt_data(data: dict[str, Any]) -> str:
    parts = []
    for k, v in (data.get("deadlines") or {}).items():
        parts.append(f"{k} due {v}")
    if data.get("params"):
        parts.append(", ".join(f"{k}={v}" for k, v in data["params"].items()))
    return "; ".join(parts)


def params(pairs: list[str]) -> dict[str, str]:
    """``key=value`` pairs as a dict, or InvalidInput naming the bad one."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {p!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out
