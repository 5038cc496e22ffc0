"""The operator's reference (docs/operator.md), generated from the machines and the command line.

For every kind, every trigger a person may fire (any role but ``system``), by default
configuration: from which states to which, the roles, whether it needs ``--note`` or a
second person (four eyes), the guards that must hold, the ``--param key=value`` it reads
and an example command. The page's hand-written introduction (everything above ``MARKER``)
is kept; the rest is rewritten by ``python -m cli.diagram --write``.

Parameters are found by reading each trigger's action in its machine module (``states/machines/params.py``,
which the web's forms read too); commands that fire a
trigger for you by reading ``cli/*.py`` for the commands that name it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from states.machines.params import params_read
from states.machines.spec import CLOCK_TRIGGERS, KindSpec, get_spec, kinds
from states.roles import ACTOR_ROLES, AUDITOR, COMMISSIONER_ROLES, SYSTEM, TRUST_ROLES

OPERATOR = "operator.md"
MARKER = "<!-- generated below by `python -m cli.diagram --write`: edit the introduction above only -->"
CLI = Path(__file__).resolve().parent.parent / "cli"
# Parameters that are lists (fire's --param takes text): given by the trigger's own command.
STRUCTURED = frozenset({"risks", "rows"})
# The clock stop is one mechanism for every kind (states/engine/deadlines.py): shown once, by hand.
CLOCK_EXAMPLES = {
    "pause_clock": '--note "Trust asked for time: inquest"',
    "resume_clock": '--note "inquest concluded"',
    "extend_deadline": '--note "agreed with the Trust" --param days=5   # or --param until=YYYY-MM-DD; --param deadline=NAME for one',
}


# ------------------------------------------------------------------ what the machine says


def manual_rows(spec: KindSpec) -> list[dict[str, Any]]:
    """The declared transitions a person may fire, one per table row, with default roles."""
    out = []
    for t in spec.transitions:
        roles = [
            r
            for r in (*ACTOR_ROLES, *TRUST_ROLES, *COMMISSIONER_ROLES)
            if r in set(t.get("roles", ())) and r not in (SYSTEM, AUDITOR)
        ]
        if not roles:
            continue
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        out.append(
            {
                "trigger": t["trigger"],
                "from": sources,
                "to": t["dest"],
                "roles": roles,
                "note": bool(t.get("note_required")),
                "four_eyes": bool(t.get("four_eyes")),
                "guards": [*t.get("conditions", []), *(f"not {u}" for u in t.get("unless", []))],
            }
        )
    return out


# ------------------------------------------------------------------ what the command line offers


@cache
def cli_commands() -> dict[tuple[str, str], str]:
    """(kind, trigger) -> the ``peerwatch`` command that fires it for you, from cli/*.py: a
    command that fires it itself, or calls a ``states`` function (imported by name) that does."""
    out: dict[tuple[str, str], str] = {}
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text())
        name = next(
            (
                str(n.value.value)
                for n in tree.body
                if isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Constant)
                and any(isinstance(t, ast.Name) and t.id == "NAME" for t in n.targets)
            ),
            None,
        )
        imported = _states_imports(tree)
        for func in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            command = _command_of(func, name)
            if not command:
                continue
            called = {n.func.id for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            helpers = [_states_function(*imported[c]) for c in sorted(called) if c in imported]
            for body in (func, *(h for h in helpers if h is not None)):
                for kind, trigger in _fired_in(body):
                    out.setdefault((kind, trigger), command)
    return out


def _states_imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Names imported anywhere in a CLI module ``from states.<module> import <name>``."""
    return {
        a.asname or a.name: (n.module, a.name)
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("states.")
        for a in n.names
    }


@cache
def _states_function(module: str, name: str) -> ast.FunctionDef | None:
    path = CLI.parent / Path(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return None
    return next(
        (n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == name), None
    )


def _command_of(func: ast.FunctionDef, plugin: str | None) -> str | None:
    """``peerwatch <group> <command>`` for a function decorated ``@<group>_app.command(...)``."""
    for d in func.decorator_list:
        if (
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and d.func.attr == "command"
            and isinstance(d.func.value, ast.Name)
        ):
            group = plugin if d.func.value.id == "app" else d.func.value.id.removesuffix("_app")
            word = (
                str(d.args[0].value) if d.args and isinstance(d.args[0], ast.Constant) else func.name.replace("_", "-")
            )
            return f"peerwatch {group} {word}" if group else f"peerwatch {word}"
    return None


def _fired_in(func: ast.FunctionDef) -> Iterator[tuple[str, str]]:
    """(kind, trigger) of each ``fire_and_print`` / ``engine.fire`` / ``engine.create`` call."""
    for node in ast.walk(func):
        if not isinstance(node, ast.Call):
            continue
        callee = (
            node.func.attr
            if isinstance(node.func, ast.Attribute)
            else node.func.id
            if isinstance(node.func, ast.Name)
            else ""
        )
        consts = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
        if callee in ("fire_and_print", "fire", "create") and len(consts) > 3:
            kind, trigger = consts[1], consts[3]
        else:
            continue
        if isinstance(kind, str) and isinstance(trigger, str):
            yield kind, trigger


# ------------------------------------------------------------------ the page


def _cell(items: list[str]) -> str:
    return ", ".join(items) if items else "-"


def _example(kind: str, row: dict[str, Any]) -> str:
    role = row["roles"][0]
    parts = [
        f"peerwatch {kind} fire ID {row['trigger']}",
        f"--role {role}",
    ]
    if row["note"]:
        parts.append('--note "..."')
    keys = params_read(kind).get(row["trigger"], ())
    parts += [f"--param {k}=..." for k in keys if k not in STRUCTURED]
    lists = [k for k in keys if k in STRUCTURED]
    return " ".join(parts) + (f"   # {', '.join(lists)}: a list, which only its own command passes" if lists else "")


def kind_section(kind: str) -> list[str]:
    spec = get_spec(kind)
    rows = manual_rows(spec)
    out = [
        f"## {kind}",
        "",
        f"{spec.describe}. Machine: `states/machines/{kind}.py`; `peerwatch diagram {kind}` draws it.",
        "",
    ]
    if not rows:
        return [*out, "Nothing to fire by hand: peerwatch moves it.", ""]
    out += [
        "| trigger | from | to | roles | `--note` | four eyes | only if | `--param` |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| `{r['trigger']}` | {_cell(r['from'])} | {r['to'] or '(stays)'} | {_cell(r['roles'])} | "
            f"{'required' if r['note'] else '-'} | {'yes' if r['four_eyes'] else '-'} | {_cell(r['guards'])} | "
            f"{_cell(list(params_read(kind).get(r['trigger'], ())))} |"
        )
    out += ["", "```sh"]
    commands = cli_commands()
    for trigger in dict.fromkeys(r["trigger"] for r in rows):
        row = next(r for r in rows if r["trigger"] == trigger)
        own = commands.get((kind, trigger))
        if row["from"] == [spec.initial.value]:
            out.append(
                f"{own} ...   # {trigger}: opens a new item (see --help), not through fire"
                if own
                else f"peerwatch {kind} --help   # {trigger}: opens a new item: peerwatch does it, or a command listed there"
            )
        else:
            if own:
                out.append(f"{own} ...   # {trigger} by its own command (see --help), or:")
            out.append(_example(kind, row))
        if row["four_eyes"]:
            out.append(
                f"#   {trigger} needs four eyes: a second person fires the same line (same --param) to confirm it"
            )
    return [*out, "```", ""]


def clock_section() -> list[str]:
    spec = get_spec(kinds()[0])
    clock_rows = [t for t in spec.all_transitions if t["trigger"] in CLOCK_TRIGGERS]
    roles = [r for r in ACTOR_ROLES if any(r in t["roles"] for t in clock_rows)]
    out = [
        "## Every kind: the clock stop",
        "",
        "Every open state of every kind also takes these (states/engine/deadlines.py); each needs `--note` and one of "
        f"{_cell(roles)}.",
        "",
        "```sh",
    ]
    for t in CLOCK_TRIGGERS:
        out.append(f"peerwatch risk fire ID {t} --role {roles[0]} {CLOCK_EXAMPLES[t]}")
    return [*out, "```", ""]


def generated() -> str:
    """The generated part of docs/operator.md."""
    lines = [MARKER, ""]
    for kind in kinds():
        lines += kind_section(kind)
    lines += clock_section()
    return "\n".join(lines)


def operator_page(path: Path) -> str:
    """The page: its hand-written introduction (kept as it is) and the generated reference."""
    intro = path.read_text().split(MARKER)[0] if path.exists() else ""
    if not intro.strip():
        intro = "# Operator reference\n\n(Write the introduction here.)\n\n"
    return intro + generated()
