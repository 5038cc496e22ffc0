"""QNT surveillance decisions (seed 002 s1.1.1): one row per service per programme year."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from sqlalchemy import JSON, Column
from sqlmodel import Field

from models.tables import StatefulItem


class Surveillance(StatefulItem, table=True):
    """A service's annual self-report against its agreed quality indicators, and the
    additional surveillance agreed with the provider and the commissioner."""

    kind: ClassVar[str] = "surveillance"

    service_id: int = Field(foreign_key="service.id", index=True)
    programme_year: int  # the year the programme year starts (1 April), e.g. 2026 for 2026-27
    indicators_agreed: int
    indicators_met: int
    good_practice_score: float | None = None
    good_practice_threshold: float | None = None
    # any of "routine" (option 1), "enhanced" (option 2), "peer_review" (option 3)
    options: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # option 2: {"provider": "...", "commissioner": "..."} (either or both)
    enhanced_actions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    provider_agreed_by: str | None = None
    provider_agreed_on: date | None = None
    provider_agreed_user_id: int | None = None  # the two signatories are compared by account
    commissioner_agreed_by: str | None = None
    commissioner_agreed_on: date | None = None
    commissioner_agreed_user_id: int | None = None
    visit_id: int | None = Field(default=None, foreign_key="visit.id", index=True)
    closed_reason: str | None = None
