"""Local policy and seed text of the perinatal ladder (seed 004): the configured names of the
levels and their forums, and the actions the seed lists for each level.

The level NAMES are configuration, because later guidance renames them (LMS/ICS became
LMNS/ICB): ``PEERWATCH_PERINATAL_LEVELS`` and ``PEERWATCH_PERINATAL_FORUMS`` (JSON, or a path
to a JSON file) override the display names. The machine is ``states/machines/perinatal.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from states.errors import InvalidInput

# ------------------------------------------------------------------ configuration (local policy)

DEFAULT_LEVEL_NAMES = {"provider": "Provider", "lms_ics": "LMS/ICS", "regional": "Regional", "national": "National"}
DEFAULT_FORUMS = {
    "provider": "trust board",
    "lms_ics": "local quality surveillance group",
    "regional": "regional quality committee",
    "national": "Maternity Safety Surveillance and Concerns Group (MSSCG)",
}


def _mapping_from_env(var: str, defaults: Mapping[str, str]) -> dict[str, str]:
    """Defaults overridden by ``var``: a JSON object, or the path of a file holding one."""
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return dict(defaults)
    text = raw.strip()
    if not text.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise InvalidInput(f"{var}={raw!r} is neither a JSON object nor the path of a JSON file")
        text = path.read_text()
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{var} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    if not isinstance(given, dict):
        raise InvalidInput(f'{var} must be a JSON object mapping level to name, e.g. {{"lms_ics": "LMNS/ICB"}}')
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InvalidInput(f"{var}: unknown level(s) {', '.join(unknown)}; the levels are {', '.join(defaults)}")
    bad = [k for k, v in given.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise InvalidInput(f"{var}: the name of {', '.join(bad)} must be non-empty text")
    return {**defaults, **{k: v.strip() for k, v in given.items()}}


@dataclass(frozen=True)
class PerinatalPolicy:
    """Local policy defaults, not the SOP; each overridable by ``PEERWATCH_PERINATAL_<NAME>``."""

    levels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LEVEL_NAMES))  # display names
    forums: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FORUMS))  # who meets at each level
    board_review_reminder_working_days: int = 5  # reminder before the month's board review is due
    service_kinds: tuple[str, ...] = ("maternity", "neonatal", "perinatal")  # service kinds a concern may be about

    @classmethod
    def from_env(cls) -> PerinatalPolicy:
        days = os.environ.get("PEERWATCH_PERINATAL_BOARD_REVIEW_REMINDER_WORKING_DAYS")
        kinds = os.environ.get("PEERWATCH_PERINATAL_SERVICE_KINDS")
        values: dict[str, Any] = {
            "levels": _mapping_from_env("PEERWATCH_PERINATAL_LEVELS", DEFAULT_LEVEL_NAMES),
            "forums": _mapping_from_env("PEERWATCH_PERINATAL_FORUMS", DEFAULT_FORUMS),
        }
        if days is not None:
            try:
                values["board_review_reminder_working_days"] = int(days)
            except ValueError:
                raise InvalidInput(
                    f"PEERWATCH_PERINATAL_BOARD_REVIEW_REMINDER_WORKING_DAYS={days!r} is not a whole number"
                ) from None
        if kinds:
            values["service_kinds"] = tuple(k.strip().lower() for k in kinds.split(",") if k.strip())
        return cls(**values)

    def names(self) -> dict[str, str]:
        """Format keys for text naming the levels: ``{lms_ics}``, ``{lms_ics_forum}``..."""
        return {**self.levels, **{f"{k}_forum": v for k, v in self.forums.items()}}


# ------------------------------------------------------------------ the seed's actions at each level (004 Principle 5)

ACTIONS: dict[str, list[str]] = {
    "provider": [
        "Discussion between frontline champions, the MVP, the board and the non-executive lead to appraise and "
        "understand the issue, and agree action, timeframes and follow-up.",
        "Involve HR for advice and processes where poor individual behaviours are leading to team dysfunction.",
        "The issue is discussed at the trust board and an action plan is agreed as a priority.",
        "The issue(s) are discussed with the LMS lead and regional chief midwife and the action plan is shared.",
        "{lms_ics} to support implementation of the action plan, escalating to regional teams if needed.",
    ],
    "lms_ics": [
        "Appreciative enquiry and a supportive approach to the board safety champion and perinatal triumvirate by the "
        "LMS lead and regional chief midwife, to agree, implement and oversee progress with the action plan.",
        "Advice and support from the regional chief midwife and lead obstetrician, with resources such as best "
        "practice documents and guidance.",
        "Support from MatNeoSIP if the issue lends itself to a quality improvement approach.",
        "Peer-to-peer support from a provider trust within the LMS with a 'good' or 'outstanding' CQC rating.",
        "Mentorship from the clinical network.",
        "Access to specific training.",
        "The LMS shares relevant learning.",
        "The LMS reflects relevant issues at the ICS-chaired quality committee, as agreed with the trust and the "
        "regional chief midwife and lead obstetrician.",
        "The regional chief midwife and lead obstetrician escalate to the regional chief nurse as required.",
    ],
    "regional": [
        "Relevant issues are escalated to the {regional_forum} by the regional chief nurse, regional chief midwife "
        "and lead obstetrician.",
        "The action plan and progress with meeting it are provided.",
        "Advice and support from the regional chief midwife and lead obstetrician, with resources such as best "
        "practice documents and guidance.",
        "The {regional_forum} agrees any additional action or support required: this might include regional quality "
        "improvement team support, escalation to JSOG or an unannounced CQC inspection.",
    ],
    "national": [
        "Discussion at the {national_forum} on any additional action or support required and, if the criteria are "
        "met, entry into the Maternity Safety Support Programme.",
        "Agreement on the most appropriate organisation to offer support, intervention and follow-up.",
        "Agreement on timeframes for monitoring and follow-up, with fair and consistent follow-up at subsequent "
        "meetings, or sooner if warranted.",
    ],
}
