"""Local policy: defaults where the seeds are silent, each overridable by environment.

``PEERWATCH_<NAME>`` (upper case) overrides a value, e.g. ``PEERWATCH_REMINDER_WORKING_DAYS=3``.
See docs/configuration.md for what each one means and where its default comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from states.errors import InvalidInput


@dataclass(frozen=True)
class Policy:
    reminder_working_days: int = 2  # reminder before a response is due (local policy)
    chase_response_working_days: int = 5  # after a chase, before escalation (local policy)
    further_response_working_days: int = 10  # after an inadequate response (local policy)
    monitoring_weeks: int = 13  # quarterly monitoring of action plans and GCs (000 s6)
    asct_threshold: int = 12  # score above this goes to the ASCT (000 s6 step 4)
    max_send_attempts: int = 5  # then a message is failed: an incident
    retry_backoff_seconds: int = 300  # doubled on each failed try

    @classmethod
    def from_env(cls) -> Policy:
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = os.environ.get(f"PEERWATCH_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise InvalidInput(f"PEERWATCH_{f.name.upper()}={raw!r} is not a whole number") from None
        return cls(**values)
