"""Local policy: defaults where the seeds are silent, each overridable by environment.

``PEERWATCH_<NAME>`` (upper case) overrides a value, e.g. ``PEERWATCH_REMINDER_WORKING_DAYS=3``.
See docs/configuration.md for what each one means and where its default comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from states.errors import InvalidInput


def numbers_from_env(policy: type, prefix: str = "PEERWATCH_") -> dict[str, Any]:
    """The fields of a policy dataclass set in the environment as ``<prefix><FIELD>``, parsed
    as the field's type (int or float); a malformed value is refused, naming the variable."""
    values: dict[str, Any] = {}  # each parsed as its field's type, int or float
    for f in fields(policy):
        name = f"{prefix}{f.name.upper()}"
        raw = os.environ.get(name)
        if raw is not None:
            kind = float if f.type in (float, "float") else int
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise InvalidInput(f"{name}={raw!r} is not a {'number' if kind is float else 'whole number'}") from None
    return values


@dataclass(frozen=True)
class Policy:
    reminder_working_days: int = 2  # reminder before a response is due (local policy)
    chase_response_working_days: int = 5  # after a chase, before escalation (local policy)
    further_response_working_days: int = 10  # after an inadequate response (local policy)
    monitoring_weeks: int = 13  # quarterly monitoring of action plans and GCs (000 s6)
    asct_threshold: int = 12  # score above this goes to the ASCT (000 s6 step 4)
    max_send_attempts: int = 5  # then a message is failed: an incident
    retry_backoff_seconds: int = 300  # doubled on each failed try
    factual_accuracy_working_days: int = 10  # the service's factual accuracy reply (local policy)
    report_weeks: int = 8  # written report after a visit or self-assessment receipt (000 s5.1, s5.4)
    declarations_working_days_before_visit: int = 10  # panel conflict declarations chased (local policy)
    complaint_acknowledge_working_days: int = 5  # acknowledge a complaint (local policy)
    complaint_resolution_working_days: int = 20  # investigate and resolve it (local policy)
    response_judgement_working_days: int = (
        5  # Network Manager judges a Trust's formal response (local policy, issue 16)
    )
    plan_update_weeks: int = 13  # the service's quarterly update on its agreed action plan (001, local policy)
    max_extension_working_days: int = 60  # one extend_deadline moves a deadline at most this far (local policy)
    # Visit selection by weighting (000 s5.2 names the process, not the weights: local policy).
    weight_months_since_visit: float = 1.0
    never_visited_months: float = 36.0
    weight_open_ir: float = 10.0
    weight_open_sc: float = 5.0
    weight_open_gc: float = 1.0
    weight_max_risk_score: float = 0.5
    weight_achievement_gap: float = 0.2  # per point below 100% (self-assessment, issue 5)

    @classmethod
    def from_env(cls) -> Policy:
        return cls(**numbers_from_env(cls))
