"""The shapes of /api/v1's creating (a visit, a complaint), the outbox's retry and settle, and
the network's working pages on an item (a visit's panel, a report's draft and its factual
accuracy decisions): requests refuse unknown keys, answers ignore keys added later."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field

from states.machines.complaint import ROUTES as COMPLAINT_CATEGORIES
from states.machines.report import COMPLIANCE
from web.api.models import MAX_ID, NAME, TEXT, In, Out

Category = Literal[tuple(COMPLAINT_CATEGORIES)]  # type: ignore[valid-type]
Compliance = Literal[COMPLIANCE]  # type: ignore[valid-type]


class Acting(In):
    """What every change may carry besides its own fields."""

    role: str | None = Field(
        None, max_length=100, pattern=NAME, description="Which of my roles to act in, when more than one fits."
    )


class Versioned(Acting):
    """A step on an item: its note, and the version it was read at."""

    note: str | None = Field(None, max_length=10_000, pattern=TEXT, description="A reason or note.")
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Refuse (409) unless the item is at this version.")


# ---------------------------------------------------------------- creating


class VisitIn(Acting):
    """The fields of ``peerwatch visit propose``."""

    service: int = Field(ge=1, le=MAX_ID, description="The service's id.")
    reason: str | None = Field(None, max_length=10_000, pattern=TEXT, description="Why the visit is proposed.")


class ComplaintIn(Acting):
    """The fields of ``peerwatch complaint receive``."""

    network: str = Field(min_length=1, max_length=100, pattern=TEXT, description="The network's code.")
    category: Category = Field(description="Routes the complaint to its owner.")
    from_name: str = Field(min_length=1, max_length=500, pattern=TEXT, description="The complainant's name.")
    from_email: str = Field(min_length=3, max_length=320, pattern=TEXT, description="The complainant's email.")
    summary: str = Field(min_length=1, max_length=10_000, pattern=TEXT, description="What the complaint is about.")
    service: int | None = Field(None, ge=1, le=MAX_ID, description="The service it is about, if one.")
    about_person: bool = False
    received: date | None = Field(None, description="The day it was received (today when not given).")


# ---------------------------------------------------------------- the outbox


class SettleIn(In):
    action: Literal["hold", "resend", "delivered"] = Field(
        description="hold: not resent until retried; resend: on the next dispatch, same Message-ID; "
        "delivered: the recipient has it, never resent."
    )


class LetterActed(Out):
    id: int
    kind: str = Field(description="The kind of item the letter is about.")
    item_id: int
    template: str
    status: str = Field(description="Its status now.")


class OutboxActed(Out):
    letters: list[LetterActed] = Field(description="The letters changed (none: nothing was failed in my scopes).")


# ---------------------------------------------------------------- the working pages


class Working(Out):
    kind: str
    id: int
    state: str
    version: int = Field(description="Send it with a step to refuse a stale change (409).")
    place: dict[str, Any] = Field(description="The item's service, Trust and network.")
    may: list[str] = Field(description="The page's steps this account may take in the item's state now.")


class MemberOut(Out):
    reviewer_id: int
    name: str
    discipline: str
    observer: bool
    declared_on: date | None
    conflicts: str


class CandidateOut(Out):
    id: int
    name: str
    discipline: str
    trained: bool


class PanelOut(Working):
    members: list[MemberOut]
    candidates: list[CandidateOut] = Field(description="Current reviewers not on the panel.")
    confirmed: bool


class StandardOut(Out):
    ref: str
    status: str
    descriptor: str
    comment: str


class DraftOut(Working):
    compliance: list[StandardOut]
    positives: list[str]
    summary: str


class InaccuracyOut(Out):
    id: int
    text: str
    manager: str = Field(description="The Network Manager's decision (empty: none yet).")
    manager_actor: str
    lead: str = Field(description="The Regional Lead's decision (empty: none yet).")
    lead_actor: str
    outcome: str = Field(description="accepted only if both accept; undecided until both decide.")


class AccuracyOut(Working):
    items: list[InaccuracyOut]


class PanelMemberIn(Versioned):
    reviewer_id: int = Field(ge=1, le=MAX_ID)
    observer: bool = False


class ReviewerIn(Versioned):
    reviewer_id: int = Field(ge=1, le=MAX_ID)


class DeclarationIn(Versioned):
    reviewer_id: int = Field(ge=1, le=MAX_ID)
    conflicts: str = Field("", max_length=10_000, pattern=TEXT, description="Empty: none declared.")


class Finding(In):
    level: Literal["IR", "SC", "GC"]
    title: str = Field(min_length=1, max_length=500, pattern=TEXT)
    standard_ref: str | None = Field(None, max_length=100, pattern=TEXT)


class FeedbackIn(Versioned):
    risks: list[Finding] = Field(max_length=100, description="What was found on the day (empty: nothing was).")


class StandardIn(Versioned):
    ref: str = Field(min_length=1, max_length=100, pattern=TEXT, description="The standard's reference.")
    status: Compliance
    descriptor: str = Field("", max_length=10_000, pattern=TEXT)
    comment: str = Field("", max_length=10_000, pattern=TEXT)


class PositiveIn(Versioned):
    text: str = Field(min_length=1, max_length=10_000, pattern=TEXT)


class InaccuracyIn(Versioned):
    text: str = Field(min_length=1, max_length=10_000, pattern=TEXT)
    after_visit: bool = False


class DecisionIn(Versioned):
    item_id: int = Field(ge=1, le=MAX_ID, description="The inaccuracy's id.")
    decision: Literal["accepted", "rejected"]
