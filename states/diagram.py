"""Mermaid state diagrams drawn from a kind's own machine (never by hand)."""

from __future__ import annotations

from states.kinds import CLOCK_TRIGGERS, get_spec


def mermaid(kind: str) -> str:
    spec = get_spec(kind)
    machine = spec.machine
    lines = ["stateDiagram-v2", f"    %% {spec.describe or kind}: generated from states/{kind}.py", f"    [*] --> {spec.initial.value}"]
    for name, event in machine.events.items():
        if name in CLOCK_TRIGGERS:
            continue
        for source, transitions in event.transitions.items():
            for t in transitions:
                dest = t.dest if t.dest is not None else source
                guard = [c.func for c in t.conditions if c.target] + [f"not {c.func}" for c in t.conditions if not c.target]
                label = name + (f" [{', '.join(guard)}]" if guard else "")
                lines.append(f"    {source} --> {dest}: {label}")
    for s in sorted(spec.terminal):
        lines.append(f"    {s} --> [*]")
    lines.append(f"    note right of {spec.initial.value}: every open state also takes {', '.join(CLOCK_TRIGGERS)}")
    return "\n".join(lines) + "\n"
