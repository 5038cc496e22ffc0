"""The triggers a person may fire now on an item, as forms with typed fields, and the reading of
a submitted form into the parameters the engine takes.

``trigger_forms`` offers the triggers the machine takes from the item's state that the principal
may fire where the item sits: a role the trigger allows (after the administrators' permission
table) held in a grant covering the item. A trigger whose guards refuse it now is offered
disabled, with the rules not met (guards are tried only for triggers that read no parameters: the
others' guards depend on the answers). A trigger that reads a list only its own command passes
(a spreadsheet's rows, the feedback's risks) is not offered. The parameters' types come from
``states/machines/params.py``. ``confirm`` marks the steps the web asks to check first
(escalations, withdrawals, appeal decisions, anything four-eyes).

The engine decides; this module only shows. It reads the permission table through
``states/permissions.py``, the module the engine checks with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from models.tables import Proposal, StatefulItem
from states import permissions
from states.calendar import calendar_for
from states.clock import Clock, local_date, parse_date
from states.errors import PeerwatchError, PermissionDenied
from states.machines import params as typed
from states.machines.spec import CLOCK_TRIGGERS, Context, KindSpec, get_spec, outstanding_deadlines
from states.policy import Policy
from states.principal import Principal

CONFIRM_TRIGGERS = frozenset({"withdraw", "cancel", "close_not_acceptable", "decide", "decide_entry", "decide_exit"})
NOTE = "note"


@dataclass(frozen=True)
class Permissions:
    """The permission table in force (states/permissions.py, the engine's own reading): who may
    fire a trigger from given rows of a machine's table, and whether it needs four eyes."""

    table: permissions.Rules

    def roles(self, spec: KindSpec, trigger: str, rows: list[dict[str, Any]]) -> set[str]:
        return permissions.roles_for(spec, trigger, rows, self.table)

    def four_eyes(self, spec: KindSpec, trigger: str) -> bool:
        return permissions.is_four_eyes(spec, trigger, self.table)


def permission_table(session: Session) -> Permissions:
    """The permission table's overrides, read once per transaction as the engine reads them."""
    return Permissions(permissions.rules(session))


def label(trigger: str) -> str:
    return trigger.replace("_", " ").capitalize()


def confirm_first(trigger: str, four_eyes: bool) -> bool:
    """Irreversible steps the web asks to check before firing."""
    return four_eyes or trigger.startswith("escalate") or trigger in CONFIRM_TRIGGERS


def may_fire(session: Session, principal: Principal, kind: str, row: StatefulItem, trigger: str) -> bool:
    """Could ``principal`` fire ``trigger`` on ``row`` now: the state allows it, and a role it
    holds where the item sits is one the permission table names (its guards aside)."""
    spec = get_spec(kind)
    rows = spec.rows_for(trigger, row.state)
    if not rows:
        return False
    try:
        principal.choose(
            permission_table(session).roles(spec, trigger, rows), spec.recipient_scope(session, row), trigger
        )
    except PermissionDenied:
        return False
    return True


def trigger_forms(
    session: Session, principal: Principal, kind: str, row: StatefulItem, clock: Clock
) -> list[dict[str, Any]]:
    """Each: trigger, label, fields[{name, type (date|int|choice|text|textarea|bool), label, choices,
    required, ...}], note_required, four_eyes, confirm, roles, role (the one it would act in),
    enabled, reason (when disabled), proposal (a four-eyes proposal waiting at this version)."""
    spec = get_spec(kind)
    table = permission_table(session)
    where = spec.recipient_scope(session, row)
    proposals = {
        p.trigger: p
        for p in session.exec(
            select(Proposal).where(
                Proposal.kind == kind, Proposal.item_id == row.id, Proposal.item_version == row.version
            )
        )
    }
    out = []
    for trigger in spec.allowed_from(row.state):
        rows = spec.rows_for(trigger, row.state)
        roles = table.roles(spec, trigger, rows)
        try:
            role = principal.choose(roles, where, f"fire {trigger!r} on {kind} {row.id}")
        except PermissionDenied:
            continue
        if trigger not in CLOCK_TRIGGERS and typed.structured(kind, trigger):
            continue
        fields = [p.as_dict() for p in typed.fields(kind, trigger)]
        unmet: list[str] = []
        if trigger in CLOCK_TRIGGERS:  # the clock stop needs a deadline to stop, restart or move
            pending = outstanding_deadlines(session, kind, row.id or 0)
            wanted = "paused" if trigger == "resume_clock" else "open"
            names = sorted({d.name for d in pending if d.status == wanted})
            if not names:
                unmet = [f"a {wanted} deadline"]
            for f in fields:
                if f["name"] == "deadline":
                    f.update(type=typed.CHOICE, choices=[{"value": n, "label": n.replace("_", " ")} for n in names])
        elif not fields:
            unmet = _unmet(session, spec, row, trigger, principal, role, clock)
        four_eyes = table.four_eyes(spec, trigger)
        proposal = proposals.get(trigger)
        mine = proposal is not None and proposal.user_id == principal.user_id
        out.append(
            {
                "trigger": trigger,
                "label": label(trigger),
                "fields": fields,
                "note_required": any(r.get("note_required") for r in rows),
                "four_eyes": four_eyes,
                "confirm": confirm_first(trigger, four_eyes),
                "roles": sorted(roles),
                "role": role,
                "enabled": not unmet and not mine,
                "reason": (
                    f"rule(s) not met now: {', '.join(unmet)}"
                    if unmet
                    else "you proposed it: a second person must confirm it"
                    if mine
                    else None
                ),
                "proposal": None
                if proposal is None
                else {
                    "actor": proposal.actor,
                    "role": proposal.role,
                    "at": proposal.at,
                    "params": proposal.params,
                    "note": proposal.note,
                    "mine": mine,
                },
                "clock": trigger in CLOCK_TRIGGERS,
            }
        )
    return out


def _unmet(
    session: Session, spec: KindSpec, row: StatefulItem, trigger: str, principal: Principal, role: str, clock: Clock
) -> list[str]:
    """The guards that refuse ``trigger`` now (none if it has none, or they cannot be tried)."""
    if not any(r.get("conditions") or r.get("unless") for r in spec.rows_for(trigger, row.state)):
        return []
    now = clock.now()
    ctx = Context(
        session=session,
        row=row,
        trigger=trigger,
        source=row.state,
        dest=row.state,
        params={},
        now=now,
        today=local_date(now),
        calendar=calendar_for(spec.nation_of(session, row)),
        policy=Policy.from_env(),
        actor=principal.name,
        role=role,
        note=None,
        kind=spec.name,
        user_id=principal.user_id,
        via=principal.via,
    )
    try:
        with session.no_autoflush:
            if spec.next_state(trigger, row.state, ctx) is not None:
                return []
            return spec.unmet_guards(trigger, row.state, ctx) or ["a rule"]
    except (PeerwatchError, LookupError, ValueError, TypeError, AttributeError):
        return []  # the guard needs what the form asks: the engine decides when it is fired


def find(forms: list[dict[str, Any]], trigger: str) -> dict[str, Any] | None:
    return next((f for f in forms if f["trigger"] == trigger), None)


def read(form: dict[str, Any], posted: Mapping[str, str]) -> tuple[dict[str, Any], str | None, dict[str, str]]:
    """A submitted form (its field names as ``trigger_forms`` gives them; a multiple choice as one
    box per value named ``<name>__<value>``) as (params, note, errors by field). Params are the
    strings the command line would pass (a multiple choice: a list), empty answers left out."""
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in form["fields"]:
        name, kind = f["name"], f["type"]
        if f.get("multiple"):
            chosen = [c["value"] for c in f["choices"] if posted.get(f"{name}__{c['value']}")]
            if chosen:
                params[name] = chosen
            elif f["required"]:
                errors[name] = f"Choose at least one: {f['label'].lower()}"
            continue
        raw = str(posted.get(name, "")).strip()
        if not raw:
            if f["required"]:
                errors[name] = f"Enter {f['label'].lower()}" if kind != typed.CHOICE else f"Choose {f['label'].lower()}"
            continue
        if kind == typed.DATE:
            try:
                params[name] = parse_date(raw, f["label"]).isoformat()
            except PeerwatchError:
                errors[name] = f"{f['label']} must be a real date, like 2027-01-31"
        elif kind == typed.INT:
            try:
                number = int(raw)
            except ValueError:
                errors[name] = f"{f['label']} must be a whole number"
                continue
            if (f["min"] is not None and number < f["min"]) or (f["max"] is not None and number > f["max"]):
                errors[name] = (
                    f"{f['label']} must be between {f['min']} and {f['max'] if f['max'] is not None else 'any'}"
                )
            else:
                params[name] = str(number)
        elif kind == typed.CHOICE:
            if raw not in {c["value"] for c in f["choices"]}:
                errors[name] = f"Choose {f['label'].lower()} from the list"
            else:
                params[name] = raw
        elif kind == typed.BOOL:
            if raw not in ("yes", "no"):
                errors[name] = f"Answer yes or no: {f['label'].lower()}"
            else:
                params[name] = raw
        else:
            params[name] = raw
    note = str(posted.get(NOTE, "")).strip() or None
    if form["note_required"] and not note:
        errors[NOTE] = "Give a reason (the note): this step needs one"
    return params, note, errors


def answers(form: dict[str, Any], params: Mapping[str, Any]) -> list[dict[str, str]]:
    """The answers as a summary list reads them (label, value shown)."""
    out = []
    for f in form["fields"]:
        if f["name"] not in params:
            continue
        value = params[f["name"]]
        shown: dict[str, str] = {str(c["value"]): str(c["label"]) for c in f["choices"]}
        if isinstance(value, list):
            text = ", ".join(shown.get(str(v), str(v)) for v in value)
        else:
            text = shown.get(value, "Yes" if value == "yes" else "No" if value == "no" else str(value))
        out.append({"name": f["name"], "label": f["label"], "value": text})
    return out


def hidden(form: dict[str, Any], params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The answers as the hidden fields of the check-your-answers page (posted again as they were)."""
    out: list[tuple[str, str]] = []
    for f in form["fields"]:
        value = params.get(f["name"])
        if isinstance(value, list):
            out += [(f"{f['name']}__{v}", "1") for v in value]
        elif value is not None:
            out.append((f["name"], str(value)))
    return out


def proposal_values(form: dict[str, Any]) -> dict[str, str]:
    """A waiting proposal's answers, to fill the form a second person confirms with."""
    p = form.get("proposal") or {}
    out: dict[str, str] = {}
    for k, v in (p.get("params") or {}).items():
        if isinstance(v, list):
            out.update({f"{k}__{x}": "1" for x in v})
        else:
            out[k] = str(v)
    return out
