"""Mermaid state diagrams drawn from a kind's own machine (never by hand), and the docs made from them.

``python -m cli.diagram --write`` regenerates ``docs/diagrams.md`` (every kind), every
```` ```mermaid ```` block of the other ``docs/*.md`` pages (each names its machine in its
``%% ... generated from states/machines/<kind>.py`` line) and the generated part of ``docs/operator.md``
(``cli/reference.py``). ``--check`` changes nothing and exits 1 naming what differs;
tests/test_diagrams.py runs the same check, so a machine changed without its docs fails.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cli.reference import OPERATOR, operator_page
from states.machines.spec import CLOCK_TRIGGERS, get_spec, kinds

DOCS = Path(__file__).resolve().parent.parent / "docs"
INDEX = "diagrams.md"
COMMAND = "python -m cli.diagram --write"
# A docs block: its fence, body and closing fence; the body names its machine's module.
BLOCK = re.compile(r"^```mermaid\n(.*?)^```$", re.S | re.M)
MACHINE = re.compile(r"generated from states/machines/(\w+)\.py")
# The docs show the default names of local policy, whatever this shell has set.
POLICY_ENV = ("PEERWATCH_PERINATAL_LEVELS", "PEERWATCH_PERINATAL_FORUMS")


def mermaid(kind: str) -> str:
    spec = get_spec(kind)
    machine = spec.machine
    lines = [
        "stateDiagram-v2",
        f"    %% {spec.describe or kind}: generated from states/machines/{kind}.py",
        f"    [*] --> {spec.initial.value}",
    ]
    for name, event in machine.events.items():
        if name in CLOCK_TRIGGERS:
            continue
        for source, transitions in event.transitions.items():
            for t in transitions:
                dest = t.dest if t.dest is not None else source
                guard = [c.func for c in t.conditions if c.target] + [
                    f"not {c.func}" for c in t.conditions if not c.target
                ]
                label = name + (f" [{', '.join(guard)}]" if guard else "")
                lines.append(f"    {source} --> {dest}: {label}")
    for s in sorted(spec.terminal):
        lines.append(f"    {s} --> [*]")
    lines.append(f"    note right of {spec.initial.value}: every open state also takes {', '.join(CLOCK_TRIGGERS)}")
    return "\n".join(lines) + "\n"


def documented(kind: str) -> str:
    """The diagram as the docs show it: states carry the labels their machine gives them (the
    perinatal ladder's levels, their configured names and forums)."""
    spec = get_spec(kind)
    lines = mermaid(kind).splitlines()
    if spec.state_labels is None:
        return "\n".join(lines) + "\n"
    labels = [f'    state "{text.replace(chr(34), "#quot;")}" as {key}' for key, text in spec.state_labels().items()]
    return "\n".join([lines[0], *labels, *lines[1:]]) + "\n"


@dataclass(frozen=True)
class Drift:
    """A generated document (or one block of it) that no longer matches the code."""

    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.what} differs from the code; run `{COMMAND}`"


def _pages(docs: Path) -> list[Path]:
    return sorted(p for p in docs.glob("*.md") if p.name != INDEX)


def _sync_blocks(text: str, draw: dict[str, str]) -> tuple[str, list[str]]:
    """The page with every mermaid block replaced by its machine's diagram, and the blocks that
    differed (a block naming no machine is hand-drawn: it is reported, never kept silently)."""
    changed: list[str] = []

    def fix(m: re.Match[str]) -> str:
        named = MACHINE.search(m.group(1))
        if named is None or named.group(1) not in draw:
            first = next((line.strip() for line in m.group(1).splitlines()[1:] if line.strip()), "empty")
            changed.append(f"a mermaid block naming no machine (at {first!r})")
            return m.group(0)
        kind = named.group(1)
        if m.group(1) != draw[kind]:
            changed.append(f"the {kind} diagram")
        return f"```mermaid\n{draw[kind]}```"

    return BLOCK.sub(fix, text), changed


def index(draw: dict[str, str], where: dict[str, list[str]]) -> str:
    """docs/diagrams.md: every kind's diagram, each with the page that explains it."""
    out = [
        "# State diagrams",
        "",
        f"Generated from the machines in `states/` by `{COMMAND}`: do not edit by hand.",
        "`tests/test_diagrams.py` fails when this page, or a diagram in another page of `docs/`,",
        "no longer matches its machine. Every open state also takes the clock-stop triggers",
        f"{', '.join(f'`{t}`' for t in CLOCK_TRIGGERS)} (not drawn); who may fire each trigger:",
        "[operator.md](operator.md).",
        "",
    ]
    for kind in draw:
        spec = get_spec(kind)
        pages = ", ".join(f"[{p}]({p})" for p in where.get(kind, []))
        out += [
            f"## {kind}",
            "",
            f"{spec.describe}. Machine: `states/machines/{kind}.py`" + (f"; explained in {pages}." if pages else "."),
            "",
            "```mermaid",
            draw[kind].rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(out)


def plan(docs: Path = DOCS) -> tuple[dict[Path, str], list[Drift]]:
    """Every generated page as it should be, and what differs from the files on disk."""
    draw = {k: documented(k) for k in kinds()}
    pages: dict[Path, str] = {}
    drift: list[Drift] = []
    where: dict[str, list[str]] = {}
    for page in _pages(docs):
        if page.name == OPERATOR:
            continue
        text = page.read_text()
        for m in BLOCK.finditer(text):
            named = MACHINE.search(m.group(1))
            if named:
                where.setdefault(named.group(1), []).append(page.name)
        new, changed = _sync_blocks(text, draw)
        pages[page] = new
        drift += [Drift(page, c) for c in changed]
    wanted = {docs / INDEX: index(draw, where), docs / OPERATOR: operator_page(docs / OPERATOR)}
    for path, text in wanted.items():
        pages[path] = text
        if not path.exists() or path.read_text() != text:
            drift.append(Drift(path, "the generated page"))
    return pages, drift


def _default_policy() -> None:
    set_here = [v for v in POLICY_ENV if os.environ.get(v)]
    if set_here:
        raise SystemExit(f"error: unset {', '.join(set_here)}: the docs show the default names")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["--write"], ["--check"]):
        print(f"usage: python -m cli.diagram --write | --check\n\n{__doc__}", file=sys.stderr)
        return 2
    _default_policy()
    pages, drift = plan()
    if args == ["--check"]:
        for d in drift:
            print(d, file=sys.stderr)
        return 1 if drift else 0
    for path, text in pages.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(DOCS.parent)}")
    hand_drawn = [d for d in drift if "naming no machine" in d.what]
    for d in hand_drawn:
        print(
            f"left as it is: {d.path.name}: {d.what}: give it its `%% ...: generated from states/machines/<kind>.py` line",
            file=sys.stderr,
        )
    return 1 if hand_drawn else 0


if __name__ == "__main__":
    raise SystemExit(main())
