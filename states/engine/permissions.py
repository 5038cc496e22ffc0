"""Who may fire which trigger: one table for every kind, checked by the engine on every entry
point (CLI, the Prefect ``fire`` flow, and the sweeps, which act as the ``system`` role).

The defaults are declared beside each transition in its machine module (``roles``); one
file overrides them for a deployment: ``PEERWATCH_PERMISSIONS=/path/permissions.yaml``::

    risk:
      close: [network-manager]          # only the Network Manager may close a risk
    four_eyes:
      report: [approve]                 # a second person must confirm these triggers

``auditor`` is read-only: it may fire nothing, whatever the file says.
``peerwatch permissions`` prints the whole table in force.

Four eyes: a trigger marked ``four_eyes`` (in its machine table or in the file) is first
*proposed* by one person (recorded and audited, nothing else changes) and only fires when a
different person fires it again with the same parameters. Defaults: appeal decisions (SOP
s8.1: the decision is final, so two people make it). Report amendments already need two
people: each factual accuracy item is decided by the Network Manager and the Regional Lead.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from states.errors import InvalidInput
from states.machines.spec import KindSpec, get_spec, kinds
from states.roles import ACTOR_ROLES, AUDITOR


def forget_overrides() -> None:
    """Test seam: forget the cached permissions file, so the next check reads it again."""
    _overrides.cache_clear()


@cache
def _overrides(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"PEERWATCH_PERMISSIONS={path!r}: no such file")
    import yaml  # lazy: PyYAML loads only when a permissions file is read, not at CLI start-up

    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of kind -> trigger -> [roles]")
    for kind, table in data.items():
        if kind == "four_eyes":
            continue
        for trigger, roles in (table or {}).items():
            bad = [r for r in roles if r not in ACTOR_ROLES]
            if bad:
                raise InvalidInput(f"{path}: {kind}.{trigger}: unknown role(s) {', '.join(bad)}")
    return data


def overrides() -> dict[str, Any]:
    return _overrides(os.environ.get("PEERWATCH_PERMISSIONS"))


def roles_for(spec: KindSpec, trigger: str, rows: list[dict[str, Any]]) -> set[str]:
    """The roles that may fire ``trigger`` from the rows that match the item's state."""
    configured = (overrides().get(spec.name) or {}).get(trigger)
    roles = set(configured) if configured is not None else set().union(*(set(r.get("roles", ())) for r in rows))
    roles.discard(AUDITOR)
    return roles


def is_four_eyes(spec: KindSpec, trigger: str) -> bool:
    extra = set((overrides().get("four_eyes") or {}).get(spec.name) or [])
    return trigger in extra or any(t.get("four_eyes") for t in spec.all_transitions if t["trigger"] == trigger)


def matrix() -> list[dict[str, Any]]:
    """Every kind's triggers with the roles in force and the four-eyes flag."""
    out = []
    for kind in kinds():
        spec = get_spec(kind)
        for trigger in spec.triggers():
            rows = [t for t in spec.all_transitions if t["trigger"] == trigger]
            out.append(
                {
                    "kind": kind,
                    "trigger": trigger,
                    "roles": sorted(roles_for(spec, trigger, rows)),
                    "four_eyes": is_four_eyes(spec, trigger),
                }
            )
    return out
