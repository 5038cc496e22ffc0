"""Who may fire which trigger: one table for every kind, checked by the engine on every entry
point (CLI, the Prefect ``fire`` flow, the web application, and the sweeps, which act as the
``system`` role).

The defaults are declared beside each transition in its machine module (``roles``). An
administrator overrides them in the database (``permission_rule`` rows, changed only through
``peerwatch permissions set|reset``, each change audited); a deployment file may seed the
overrides once, at ``peerwatch init --permissions FILE``::

    risk:
      close: [network-manager]          # only the Network Manager may close a risk
    four_eyes:
      report: [approve]                 # a second person must confirm these triggers

``auditor`` is read-only and ``administrator`` fires nothing clinical, whatever the table says.
``peerwatch permissions`` prints the whole table in force. No environment variable changes it.

Four eyes: a trigger marked ``four_eyes`` (in its machine table or by an administrator) is
first *proposed* by one person (recorded and audited, nothing else changes) and only fires
when a different account fires it again with the same parameters. Defaults: appeal decisions
(SOP s8.1: the decision is final, so two people make it). Report amendments already need two
people: each factual accuracy item is decided by the Network Manager and the Regional Lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from models.accounts import PermissionRule
from states.errors import InvalidInput
from states.machines.spec import KindSpec, get_spec, kinds
from states.roles import ACTOR_ROLES, ADMINISTRATOR, AUDITOR


@dataclass(frozen=True)
class Rules:
    """The administrators' overrides in force: (kind, trigger) -> roles, and -> four eyes."""

    roles: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    four_eyes: dict[tuple[str, str], bool] = field(default_factory=dict)


def rules(session: Session) -> Rules:
    """The permission table's overrides, in one query per transaction (kept in the session for
    the transaction that read them: a change made in it (``forget``) or after it is read anew)."""
    transaction = session.get_transaction()
    cached = session.info.get(_CACHE)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    out = _read(session)
    if transaction is not None:
        session.info[_CACHE] = (transaction, out)
    return out


def forget(session: Session) -> None:
    """Drop the rules this session read: the table was just changed in it."""
    session.info.pop(_CACHE, None)


_CACHE = "permission_rules"


def _read(session: Session) -> Rules:
    out = Rules()
    for r in session.exec(select(PermissionRule)):
        if r.roles is not None:
            out.roles[(r.kind, r.trigger)] = frozenset(r.roles)
        if r.four_eyes is not None:
            out.four_eyes[(r.kind, r.trigger)] = r.four_eyes
    return out


def roles_for(spec: KindSpec, trigger: str, rows: list[dict[str, Any]], table: Rules | None = None) -> set[str]:
    """The roles that may fire ``trigger`` from the rows that match the item's state."""
    configured = (table or Rules()).roles.get((spec.name, trigger))
    roles = set(configured) if configured is not None else set().union(*(set(r.get("roles", ())) for r in rows))
    roles.discard(AUDITOR)
    roles.discard(ADMINISTRATOR)
    return roles


def is_four_eyes(spec: KindSpec, trigger: str, table: Rules | None = None) -> bool:
    configured = (table or Rules()).four_eyes.get((spec.name, trigger))
    if configured is not None:
        return configured
    return any(t.get("four_eyes") for t in spec.all_transitions if t["trigger"] == trigger)


def check_rule(kind: str, trigger: str, roles: list[str] | None) -> None:
    """Refuse an override naming an unknown kind, trigger or role (or a read-only role)."""
    spec = get_spec(kind)
    if trigger not in spec.triggers():
        raise InvalidInput(f"unknown trigger {trigger!r} for {kind}: known triggers are {', '.join(spec.triggers())}")
    bad = [r for r in roles or [] if r not in ACTOR_ROLES or r in (AUDITOR,)]
    if bad:
        raise InvalidInput(
            f"{kind}.{trigger}: role(s) {', '.join(bad)} cannot fire triggers "
            f"(use {', '.join(r for r in ACTOR_ROLES if r != AUDITOR)})"
        )


def read_file(path: Path) -> list[tuple[str, str, list[str] | None, bool | None]]:
    """A deployment's permissions file as (kind, trigger, roles, four_eyes) overrides."""
    if not path.is_file():
        raise InvalidInput(f"permissions file {str(path)!r}: no such file")
    import yaml  # lazy: PyYAML loads only when a permissions file is read, not at CLI start-up

    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of kind -> trigger -> [roles]")
    out: dict[tuple[str, str], list[Any]] = {}
    for kind, table in data.items():
        if kind == "four_eyes":
            for k, triggers in (table or {}).items():
                for t in triggers or []:
                    check_rule(k, t, None)
                    out.setdefault((k, t), [None, None])[1] = True
            continue
        for trigger, roles in (table or {}).items():
            if not isinstance(roles, list):
                raise InvalidInput(f"{path}: {kind}.{trigger}: expected a list of roles")
            check_rule(kind, trigger, roles)
            out.setdefault((kind, trigger), [None, None])[0] = [str(r) for r in roles]
    return [(k, t, v[0], v[1]) for (k, t), v in out.items()]


def matrix(session: Session) -> list[dict[str, Any]]:
    """Every kind's triggers with the roles in force, the four-eyes flag, and whether an
    administrator changed them."""
    table = rules(session)
    out = []
    for kind in kinds():
        spec = get_spec(kind)
        for trigger in spec.triggers():
            rows = [t for t in spec.all_transitions if t["trigger"] == trigger]
            out.append(
                {
                    "kind": kind,
                    "trigger": trigger,
                    "roles": sorted(roles_for(spec, trigger, rows, table)),
                    "four_eyes": is_four_eyes(spec, trigger, table),
                    "changed": (kind, trigger) in table.roles or (kind, trigger) in table.four_eyes,
                }
            )
    return out
