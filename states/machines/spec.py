"""What a kind of item is, declared once by its machine module, and the registry of kinds.

A machine module (``states/machines/risk.py`` ...) builds a ``KindSpec``: its states (an Enum), a table
of transitions (dicts in the ``transitions`` library's format plus ``roles``), pure guards,
an ``effects`` function that names letters and deadlines, and its deadline rules. The engine
(``states/engine/__init__.py``) knows nothing else about a kind. Adding a kind = adding a module and
one line in ``_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from functools import cached_property
from typing import Any

from sqlmodel import Session, col, select

from models.tables import OUTSTANDING, Deadline, StatefulItem
from states.calendar import WorkingCalendar
from states.errors import NotFound
from states.policy import Policy

# Internal triggers every kind gets in every open state: the clock stop (DOMAIN.md "Time").
CLOCK_TRIGGERS = ("pause_clock", "resume_clock", "extend_deadline")


@dataclass(frozen=True)
class Letter:
    """A message to write to the outbox: a template and the contact roles it goes to."""

    template: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    category: str = "letter"  # letter: one per item | reminder, chase: combined per person
    key: str = ""  # tells apart two letters of one transition with the same template
    people: tuple[tuple[str, str], ...] = ()  # (name, email) written to directly, e.g. reviewers
    # (filename, content type, the bytes or, rendered when the letter is sent, (renderer, its data))
    attachments: tuple[tuple[str, str, bytes | tuple[str, dict[str, Any]]], ...] = ()
    context: tuple[tuple[str, Any], ...] = ()  # extra template variables


# A deadline rule's letter may depend on the row (e.g. only the reviewers yet to declare).
LetterFor = Letter | Callable[[Session, Any], "Letter | None"]


@dataclass(frozen=True)
class NewDeadline:
    name: str
    due_on: date
    remind_on: date | None = None


@dataclass(frozen=True)
class CloseDeadline:
    """Close this item's outstanding deadlines called ``name``.

    ``status``: ``closed`` (no longer owed) or ``fired`` (passed and acted upon: still owed until
    the item moves on). ``due_before``: only those due strictly before this date (e.g. the
    months a late board review covers)."""

    name: str
    status: str = "closed"
    due_before: date | None = None


@dataclass(frozen=True)
class MoveDeadline:
    """Move this item's outstanding deadlines called ``name`` to a new due date and reminder date.

    A reminder already sent stays sent only if the new reminder date is not after today."""

    name: str
    due_on: date
    remind_on: date | None = None


@dataclass(frozen=True)
class FollowOn:
    """A transition of another item that this one asks for, fired by the engine in the same
    transaction, as the same actor and role, at the same time (so it is audited as theirs).

    Either ``item_id`` (fire ``trigger`` on that existing item of ``kind``) or ``new`` (a new row of
    ``kind``, inserted in its initial state, whose opening ``trigger`` is fired). ``note`` and
    ``params`` go with the request. ``link``: only with ``new``, a field of the firing item set to
    the new item's id (e.g. ``visit_id``); a linked follow-on is created before this transition's
    audit event and letters, which may quote it; the others run after them, in order."""

    kind: str
    trigger: str
    item_id: int | None = None
    new: StatefulItem | None = None
    note: str | None = None
    params: Mapping[str, Any] | None = None
    link: str | None = None

    def __post_init__(self) -> None:
        if (self.item_id is None) == (self.new is None):
            raise ValueError(f"follow-on {self.kind} {self.trigger}: give exactly one of item_id or new")
        if self.link is not None and self.new is None:
            raise ValueError(f"follow-on {self.kind} {self.trigger}: link needs a new item")


@dataclass
class Effects:
    """What a transition does besides changing the item's own fields, as data the engine applies
    in the caller's transaction:

    - ``letters``: outbox rows to write (composed after the transition, quoting its deadlines);
    - ``deadlines``: new deadlines of this item (one replaces an outstanding one of the same name);
    - ``close``: outstanding deadlines of this item to close by name (``CloseDeadline``);
    - ``move``: outstanding deadlines of this item to move to a new date (``MoveDeadline``);
    - ``follow_on``: transitions of other items to fire or items to create (``FollowOn``);
    - ``then``: deprecated callables run after the transition is written; use ``follow_on``.
    """

    letters: list[Letter] = field(default_factory=list)
    deadlines: list[NewDeadline] = field(default_factory=list)
    close: list[CloseDeadline] = field(default_factory=list)
    move: list[MoveDeadline] = field(default_factory=list)
    follow_on: list[FollowOn] = field(default_factory=list)
    # Deprecated: run after the transition is written, in the same transaction. Each must itself
    # go through the engine. Kept until no machine uses it; use follow_on.
    then: list[Callable[[], Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DeadlineRule:
    """What the sweep does about a deadline of this name."""

    owner: str  # contact role who must act before it passes
    step: str  # what they must do, for people reading `show`
    on_due: str | None = None  # trigger the sweep fires as the system actor once it passes
    overdue: LetterFor | None = None  # else: a letter sent once when it passes
    reminder: LetterFor | None = None  # sent once on remind_on
    due_today: LetterFor | None = None  # sent once on the due date itself
    # A deadline closes when its item changes state, unless the new state is one of these
    # (e.g. an appeal's 8-week result date runs through consideration and the subgroup).
    runs_through: frozenset[str] = frozenset()


def letter_for(spec: LetterFor | None, session: Session, row: Any) -> Letter | None:
    if spec is None or isinstance(spec, Letter):
        return spec
    return spec(session, row)


def outstanding_deadlines(session: Session, kind: str, item_id: int, name: str | None = None) -> list[Deadline]:
    """An item's outstanding deadlines (open, paused, or passed with the overdue letter sent), by date."""
    query = select(Deadline).where(
        Deadline.kind == kind,
        Deadline.item_id == item_id,
        col(Deadline.status).in_(OUTSTANDING),
    )
    if name is not None:
        query = query.where(Deadline.name == name)
    return list(session.exec(query.order_by(col(Deadline.due_on))))


@dataclass
class Context:
    """Everything a guard or an effect may read. Guards must not write."""

    session: Session
    row: Any
    trigger: str
    source: str
    dest: str
    params: Mapping[str, Any]
    now: datetime
    today: date
    calendar: WorkingCalendar
    policy: Policy
    actor: str  # the acting account's display name
    role: str  # the role it acts in (chosen from its grants in the item's scope)
    note: str | None
    kind: str = ""  # the kind whose machine fires
    user_id: int | None = None  # the acting account: compare people by this, never by name
    via: str | None = None  # how the account was authenticated (cli, sudo, token, training, web)

    def deadlines(self, name: str | None = None) -> list[Deadline]:
        """This item's outstanding deadlines (of ``name``, if given), by date: to read, not to change."""
        return outstanding_deadlines(self.session, self.kind, self.row.id, name)


@dataclass
class KindSpec:
    name: str
    model: type[StatefulItem]
    states: type[Enum]
    initial: Enum
    transitions: list[dict[str, Any]]
    guards: Mapping[str, Callable[[Context], bool]]
    deadline_rules: dict[str, DeadlineRule]
    terminal: frozenset[str]
    nation_of: Callable[[Session, Any], str]
    letter_context: Callable[[Session, Any], dict[str, Any]]
    recipient_scope: Callable[[Session, Any], dict[str, int | None]]
    # One action per trigger: what the transition does, returned as data (the engine applies
    # it). A kind not yet split into actions gives one ``effects`` function for every trigger.
    actions: Mapping[str, Callable[[Context], Effects]] = field(default_factory=dict)
    effects: Callable[[Context], Effects] | None = None
    next_step: dict[str, str] = field(default_factory=dict)
    describe: str = ""
    # Labels for states in diagrams, read when drawn (e.g. local policy's names for levels).
    state_labels: Callable[[], Mapping[str, str]] | None = None
    # transitions.Machine, built on first use; not an argument, so a replace() builds its own
    _machine: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        """State Enums in the table become the plain strings the transitions library wants."""
        for t in self.transitions:
            src = t["source"]
            t["source"] = [str(s) for s in src] if isinstance(src, list | tuple) else str(src)
            t["dest"] = None if t["dest"] is None else str(t["dest"])
        unknown = set(self.actions) - {t["trigger"] for t in self.transitions}
        if unknown:
            raise ValueError(f"{self.name}: actions for triggers not in the table: {', '.join(sorted(unknown))}")

    def act(self, ctx: Context) -> Effects:
        """Run the trigger's action: it may set the row's own fields and returns the rest as data."""
        action = self.actions.get(ctx.trigger)
        if action is not None:
            return action(ctx)
        return self.effects(ctx) if self.effects is not None else Effects()

    def next_state(self, trigger: str, source: str, ctx: Context) -> str | None:
        """The state ``trigger`` leads to from ``source`` given the guards, or None if every
        guard-passing row is missing (the machine decides; the row is never bound to it)."""
        carrier = _Carrier(source, ctx, self.guards)
        return carrier.state if self.machine.events[trigger].trigger(carrier) else None

    def unmet_guards(self, trigger: str, source: str, ctx: Context) -> list[str]:
        """The machine's guards that refused ``trigger`` from ``source`` (``not g`` for an unless)."""
        rows = self.machine.events[trigger].transitions.get(source, [])
        conditions = [c for t in rows for c in t.conditions]
        unmet = [c.func for c in conditions if c.target and not self.guards[c.func](ctx)]
        unmet += [f"not {c.func}" for c in conditions if not c.target and self.guards[c.func](ctx)]
        return list(dict.fromkeys(unmet))

    @cached_property
    def all_transitions(self) -> list[dict[str, Any]]:
        """The declared table plus the clock-stop triggers on every open state."""
        open_states = [s.value for s in self.states if s.value not in self.terminal and s != self.initial]
        clock = [
            {
                "trigger": t,
                "source": open_states,
                "dest": None,
                "roles": ["network-manager", "regional-lead", "operator"],
                "note_required": True,
            }
            for t in CLOCK_TRIGGERS
        ]
        return self.transitions + clock

    @property
    def machine(self) -> Any:
        """One machine per kind, no models; the engine binds a row only while it fires."""
        if self._machine is None:
            table = [
                {k: v for k, v in t.items() if k in ("trigger", "source", "dest", "conditions", "unless")}
                for t in self.all_transitions
            ]
            from transitions import Machine  # lazy: built once per kind, on first use, not at CLI start-up

            self._machine = Machine(
                model=None,
                states=[s.value for s in self.states],
                transitions=table,
                initial=self.initial.value,
                auto_transitions=False,
                send_event=False,
            )
        return self._machine

    def triggers(self) -> list[str]:
        return list(self._triggers)

    @cached_property
    def _triggers(self) -> dict[str, None]:
        return dict.fromkeys(t["trigger"] for t in self.all_transitions)

    def rows_for(self, trigger: str, source: str) -> list[dict[str, Any]]:
        """The table rows for a trigger from a state, in declaration order."""
        key = (trigger, source)
        found = self._rows.get(key)
        if found is None:
            found = self._rows[key] = [
                t
                for t in self.all_transitions
                if t["trigger"] == trigger
                and (source in (srcs := t["source"] if isinstance(t["source"], list) else [t["source"]]) or "*" in srcs)
            ]
        return list(found)

    @cached_property
    def _rows(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        return {}

    def allowed_from(self, source: str) -> list[str]:
        """The triggers the machine takes from ``source``, in table order."""
        return list(self.machine.get_triggers(source))


class _Carrier:
    """What the shared machine sees while a trigger fires: a state and the guards."""

    def __init__(self, state: str, ctx: Context, guards: Mapping[str, Callable[[Context], bool]]) -> None:
        self.state = state
        self._ctx = ctx
        self._guards = guards

    def __getattr__(self, name: str) -> Any:
        guard = self._guards.get(name)
        if guard is None:
            raise AttributeError(name)
        return lambda: guard(self._ctx)


_MODULES = {
    "risk": "states.machines.risk",
    "visit": "states.machines.visit",
    "report": "states.machines.report",
    "appeal": "states.machines.appeal",
    "complaint": "states.machines.complaint",
    "phase": "states.machines.phase",
    "submission": "states.machines.submission",
    "surveillance": "states.machines.surveillance",
    "selfassessment": "states.machines.selfassessment",
    "perinatal": "states.machines.perinatal",
    "mssp": "states.machines.mssp",
    "action_plan": "states.machines.action_plan",
}
SPECS: dict[str, KindSpec] = {}  # loaded specs by kind; public as a test seam (tests swap one in)


def kinds() -> list[str]:
    return list(_MODULES)


def get_spec(kind: str) -> KindSpec:
    if kind not in _MODULES:
        raise NotFound(f"unknown kind {kind!r}: known kinds are {', '.join(_MODULES)}")
    if kind not in SPECS:
        SPECS[kind] = importlib.import_module(_MODULES[kind]).SPEC
    return SPECS[kind]
