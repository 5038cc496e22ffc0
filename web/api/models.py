"""The shapes of /api/v1 (web/api/): what each request takes and each answer holds, so the
OpenAPI document is precise (schemathesis checks every answer against it).

Answers ignore keys a view adds later (they appear here when they are documented); requests
refuse unknown keys (a misspelt field is a 422, never silently dropped)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from states.machines.spec import kinds

# Row ids and versions are INTEGER columns: 32 bits on PostgreSQL, where a larger number in a
# query is an error, not "no such row". The schema refuses them (422) on every database.
MAX_ID = 2**31 - 1
# Names (triggers, roles, parameters) are lower-case words; free text has no control character
# but tab and line breaks (PostgreSQL refuses a NUL in text: it must never reach a query).
NAME = r"^[a-z][a-z0-9_-]{0,99}$"
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Value = Annotated[str, Field(max_length=1000, pattern=TEXT)]
ParamName = Annotated[str, Field(pattern=NAME)]

Kind = enum.Enum("Kind", {k: k for k in kinds()}, type=str)  # type: ignore[misc]
"""The kinds of item (a wrong kind is a 422 by the schema)."""


class ApiError(BaseModel):
    """Every refusal: one line saying why."""

    error: str = Field(description="One line: why the request was refused (nothing was changed).")


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- me


class GrantOut(Out):
    role: str
    scope: str = Field(description="installation, network, organisation or service")
    scope_id: int | None


class MeOut(Out):
    id: int
    name: str
    via: str
    roles: list[str]
    grants: list[GrantOut]
    training: bool = Field(description="This is a training database (simulated dates; letters never sent).")


# ---------------------------------------------------------------- my work


class WorkDeadline(Out):
    kind: str
    id: int
    ref: str
    title: str
    service: str | None
    network: str | None
    state: str
    deadline: str = Field(description="The deadline's name.")
    due: str = Field(description="What is due.")
    owner: str | None = Field(description="The role that owns the step.")
    next_step: str | None
    due_on: date
    status: str
    working_days_left: int | None
    overdue: bool


class ProposalOut(Out):
    kind: str
    id: int
    ref: str
    title: str
    trigger: str
    proposed_by: str
    role: str | None
    at: datetime
    params: dict[str, Any] | None
    note: str | None
    version: int


class WorkIncident(Out):
    message_id: int
    kind: str
    id: int
    template: str
    status: str
    error: str | None
    created_at: datetime


class WorkOut(Out):
    deadlines: list[WorkDeadline]
    total: int = Field(description="Open deadlines in all (the page is limit/offset of them), counted up to 1000.")
    total_is_at_least: bool = Field(description="True when there are more than ``total``: the count stopped there.")
    limit: int
    offset: int
    today: date
    proposals: list[ProposalOut] = Field(description="Four-eyes proposals waiting for a second person (not mine).")
    incidents: list[WorkIncident] = Field(description="The outbox's incidents (operators).")


# ---------------------------------------------------------------- lists and items


class ListRow(Out):
    id: int
    ref: str
    title: str
    state: str
    version: int
    service: str | None
    network: str | None
    deadline: str | None = Field(description="The next open deadline's name.")
    due_on: date | None
    overdue: bool
    updated_at: datetime


class ItemList(Out):
    kind: str
    rows: list[ListRow]
    total: int
    page: int
    per_page: int
    pages: int
    states: list[str] = Field(description="The kind's states (the values the state filter takes).")


class StateOut(Out):
    name: str
    label: str
    current: bool
    initial: bool
    terminal: bool
    moves: list[dict[str, str | None]]


class ItemDeadline(Out):
    name: str
    due_on: date
    status: str
    owner: str | None
    step: str | None
    then: str | None
    working_days_left: int | None
    overdue: bool


class EventOut(Out):
    actor: str
    role: str | None
    trigger: str
    from_: str | None = Field(alias="from")
    to: str | None
    at: datetime
    recorded_at: datetime | None
    note: str | None
    via: str | None
    params: dict[str, Any]
    version: int | None


class LetterOut(Out):
    message_id: int
    template: str
    subject: str | None
    to: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class RelatedOut(Out):
    kind: str
    id: int
    ref: str
    title: str
    state: str


class TriggerOut(Out):
    trigger: str
    label: str
    fields: list[dict[str, Any]] = Field(description="The parameters it takes: name, type, label, choices, required.")
    note_required: bool
    four_eyes: bool
    confirm: bool
    roles: list[str]
    role: str = Field(description="The role this account would act in.")
    enabled: bool
    reason: str | None = Field(description="Why it cannot be fired now, when not enabled.")


class ItemOut(Out):
    kind: str
    id: int
    ref: str
    title: str
    state: str
    version: int = Field(description="Send it with a fire to refuse a stale change (409).")
    next_step: str | None
    closed: bool
    place: dict[str, str | None]
    summary: dict[str, Any]
    states: list[StateOut]
    deadlines: list[ItemDeadline]
    history: list[EventOut]
    letters: list[LetterOut]
    related: list[RelatedOut]
    triggers: list[TriggerOut] = Field(description="The triggers this account may fire now.")


# ---------------------------------------------------------------- acting


class FireIn(In):
    trigger: str = Field(max_length=100, pattern=NAME, description="The trigger (see the item's triggers).")
    note: str | None = Field(
        None, max_length=10_000, pattern=TEXT, description="A reason or note (some triggers need one)."
    )
    params: dict[ParamName, Value] | None = Field(
        None, max_length=50, description='The trigger\'s parameters, e.g. {"days": "5"}.'
    )
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Refuse (409) unless the item is at this version.")
    role: str | None = Field(
        None, max_length=100, pattern=NAME, description="Which of my roles to act in, when more than one fits."
    )


class PendingOut(Out):
    name: str
    due_on: date
    status: str


class FireOut(Out):
    id: int
    kind: str
    trigger: str
    from_: str = Field(alias="from", description="The state before.")
    state: str = Field(description="The state now.")
    version: int = Field(description="The item's version now (send it with the next fire).")
    letters_queued: int
    proposed: bool = Field(description="A four-eyes trigger recorded, awaiting a second person.")
    deadlines: list[PendingOut]


class RiskIn(In):
    """The fields of ``peerwatch risk raise``."""

    service: int = Field(ge=1, le=MAX_ID, description="The service's id.")
    level: Literal["IR", "SC", "GC"]
    title: str = Field(min_length=1, max_length=500, pattern=TEXT, description="What was found.")
    standard: str | None = Field(None, max_length=100, pattern=TEXT, description="A standard's reference, e.g. T-12.")
    visit_date: date | None = Field(None, description="The visit where it was found.")
    identified: date | None = Field(None, description="The day it was found, if not at a visit.")
    impact: int | None = Field(None, ge=1, le=6)
    likelihood: int | None = Field(None, ge=1, le=6)
    doctors_in_training: bool = False
    note: str | None = Field(None, max_length=10_000, pattern=TEXT)
    role: str | None = Field(
        None, max_length=100, pattern=NAME, description="Which of my roles to act in, when more than one fits."
    )


class DeadlineOut(Out):
    name: str
    due_on: date
    status: str
    remind_on: date | None
    owner: str | None = Field(description="The role that owns the step.")
    step: str | None = Field(description="What is due.")
    then: str | None = Field(description="What happens when it falls due.")


class CreatedOut(Out):
    id: int
    kind: str
    state: str
    version: int
    deadlines: list[DeadlineOut]


# ---------------------------------------------------------------- the outbox


class IncidentOut(Out):
    id: int
    status: str = Field(description="failed, undeliverable, sending (interrupted) or in doubt")
    template: str
    kind: str
    item_id: int
    to: list[str]
    attempts: int
    error: str | None
    created_at: datetime


class OutboxOut(Out):
    incidents: list[IncidentOut] = Field(description="Open incidents about items in this account's scope.")
    may_act: bool = Field(description="This account may retry and settle them (a staff role).")
