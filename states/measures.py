"""The measures of a Trust board's monthly maternity and neonatal safety review (seed 004,
Appendix 2 minimum measures), their values' rules, and the thresholds that propose a concern.

``MEASURES`` is the declared list: each with its key (stored in ``BoardReview.measures``), its
label, its type (``count`` a whole number from 0, ``number`` from 0, ``percent`` 0 to 100,
``yesno``, ``rating`` one of the CQC's four, ``text``) and whether the board reviews it
``monthly`` or ``annually``. ``check_value`` reads one value as a form or a script gives it
(text or a number) into the value stored; ``check_measures`` reads them all, every problem at
once.

Thresholds are local policy: ``PEERWATCH_PERINATAL_THRESHOLDS`` (a JSON object, or the path of
a file holding one) maps a measure's key to a condition that puts a value OUTSIDE what the
network expects, ``"< 90"``, ``"<= 90"``, ``"> 5"``, ``">= 5"`` (numbers) or ``"= yes"`` /
``"= no"`` (yes/no), merged over ``DEFAULT_THRESHOLDS``; ``null`` drops a default. A value
outside its threshold proposes a concern to the network (``states/services/board_reviews.py``).
Pure: nothing here reads or writes the database.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from states.errors import InvalidInput

COUNT, NUMBER, PERCENT, YESNO, RATING, TEXT = "count", "number", "percent", "yesno", "rating", "text"
TYPES = (COUNT, NUMBER, PERCENT, YESNO, RATING, TEXT)
MONTHLY, ANNUAL = "monthly", "annual"
RATINGS = ("Outstanding", "Good", "Requires Improvement", "Inadequate")  # the CQC's (states/machines/mssp.py)
MAX_COUNT = 1_000_000
MAX_NUMBER = 1_000_000.0
MAX_TEXT = 4000
THRESHOLDS_VAR = "PEERWATCH_PERINATAL_THRESHOLDS"


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    type: str
    period: str = MONTHLY
    hint: str = ""
    maximum: float | None = None  # a count or number's own upper bound (CNST: 10 safety actions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "type": self.type,
            "period": self.period,
            "hint": self.hint,
            "maximum": self.maximum,
        }


def _cqc(domain: str, label: str) -> Measure:
    return Measure(f"cqc_{domain}", f"CQC maternity rating: {label}", RATING, hint="as last published by the CQC")


# Appendix 2 of seed 004, in its order (DOMAIN.md "Perinatal quality surveillance").
MEASURES: tuple[Measure, ...] = (
    _cqc("overall", "overall"),
    _cqc("safe", "safe"),
    _cqc("effective", "effective"),
    _cqc("caring", "caring"),
    _cqc("well_led", "well-led"),
    _cqc("responsive", "responsive"),
    Measure("in_mssp", "In the Maternity Safety Support Programme", YESNO),
    Measure(
        "perinatal_deaths_reviewed",
        "Perinatal deaths reviewed this month",
        COUNT,
        hint="with the perinatal mortality review tool (real-time monitoring)",
    ),
    Measure("perinatal_deaths_findings", "Findings of the review of perinatal deaths", TEXT),
    Measure("hsib_eligible_cases", "Cases eligible for referral to HSIB", COUNT),
    Measure("hsib_findings", "Findings of the review of cases eligible for HSIB referral", TEXT),
    Measure("incidents_moderate_or_above", "Incidents graded moderate harm or above", COUNT),
    Measure("incidents_actions", "Actions taken on incidents graded moderate or above", TEXT),
    Measure("training_compliance_pct", "Training compliance, all maternity staff groups (%)", PERCENT, hint="0 to 100"),
    Measure(
        "obstetric_cover_hours",
        "Consultant obstetric cover on the delivery suite (hours a week)",
        NUMBER,
        maximum=168,
    ),
    Measure("rota_gaps", "Obstetric and midwifery rota gaps", COUNT),
    Measure("midwife_staffing_fill_pct", "Midwife staffing, actual against planned (%)", PERCENT, hint="0 to 100"),
    Measure("service_user_feedback", "Service user voice feedback", TEXT),
    Measure("staff_feedback", "Staff feedback from frontline champions and walk-abouts", TEXT),
    Measure("external_concerns", "HSIB, NHSR, CQC or other concerns or requests for action made to the Trust", TEXT),
    Measure("coroner_reg28_reports", "Coroner Regulation 28 reports received", COUNT),
    Measure(
        "cnst_safety_actions_met", "CNST maternity incentive scheme: safety actions met (of 10)", COUNT, maximum=10
    ),
    Measure(
        "midwives_recommend_pct",
        "Midwives who would recommend their Trust as a place to work or receive treatment (%)",
        PERCENT,
        ANNUAL,
        "0 to 100, from the annual staff survey",
    ),
    Measure(
        "og_trainees_supervision_pct",
        "O&G trainees rating out-of-hours supervision excellent or good (%)",
        PERCENT,
        ANNUAL,
        "0 to 100, from the GMC national training survey",
    ),
)
BY_KEY = {m.key: m for m in MEASURES}

# Local policy defaults (documented in docs/portal.md): what puts a value outside expectations.
DEFAULT_THRESHOLDS: dict[str, str] = {
    "training_compliance_pct": "< 90",
    "midwife_staffing_fill_pct": "< 90",
    "incidents_moderate_or_above": "> 5",
}
_CONDITION = re.compile(r"^\s*(<=|>=|<|>|=)\s*(\S.*?)\s*$")
_YES = {"yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Threshold:
    """``value op limit`` puts a measure's value outside what the network expects."""

    measure: str
    op: str
    limit: float

    @property
    def text(self) -> str:
        m = BY_KEY[self.measure]
        limit = ("yes" if self.limit else "no") if m.type == YESNO else f"{self.limit:g}"
        return f"{self.op} {limit}"

    def outside(self, value: Any) -> bool:
        number = as_number(value)
        if number is None:
            return False
        return {
            "<": number < self.limit,
            "<=": number <= self.limit,
            ">": number > self.limit,
            ">=": number >= self.limit,
            "=": number == self.limit,
        }[self.op]


def as_number(value: Any) -> float | None:
    """A stored value as a number for a threshold (yes = 1, no = 0); None for text or nothing."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def parse_threshold(key: str, condition: Any) -> Threshold:
    """One configured condition for measure ``key``, refused with the reason if malformed."""
    m = BY_KEY.get(key)
    if m is None:
        raise InvalidInput(f"{THRESHOLDS_VAR}: unknown measure {key!r}; the measures are {', '.join(BY_KEY)}")
    if m.type in (TEXT, RATING):
        raise InvalidInput(f"{THRESHOLDS_VAR}: {key} is {m.type}, which has no threshold: give numbers or yes/no")
    found = _CONDITION.match(condition) if isinstance(condition, str) else None
    if found is None:
        raise InvalidInput(
            f'{THRESHOLDS_VAR}: {key}: {condition!r} is not a condition such as "< 90", "> 5" or "= yes"'
        )
    op, raw = found.groups()
    if m.type == YESNO:
        if op != "=" or raw.lower() not in ("yes", "no"):
            raise InvalidInput(f'{THRESHOLDS_VAR}: {key} is yes/no: its condition is "= yes" or "= no"')
        return Threshold(key, op, 1.0 if raw.lower() == "yes" else 0.0)
    try:
        limit = float(raw.removesuffix("%"))
    except ValueError:
        raise InvalidInput(f"{THRESHOLDS_VAR}: {key}: {raw!r} is not a number") from None
    if not math.isfinite(limit):
        raise InvalidInput(f"{THRESHOLDS_VAR}: {key}: {raw!r} is not a finite number")
    return Threshold(key, op, limit)


def thresholds() -> dict[str, Threshold]:
    """The thresholds in force: the defaults, overridden by ``PEERWATCH_PERINATAL_THRESHOLDS``."""
    raw = os.environ.get(THRESHOLDS_VAR)
    given: dict[str, Any] = {}
    if raw is not None and raw.strip():
        text = raw.strip()
        if not text.startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise InvalidInput(f"{THRESHOLDS_VAR}={raw!r} is neither a JSON object nor the path of a JSON file")
            text = path.read_text(encoding="utf-8")
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{THRESHOLDS_VAR} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(loaded, dict):
            raise InvalidInput(f'{THRESHOLDS_VAR} must be a JSON object, e.g. {{"training_compliance_pct": "< 90"}}')
        given = loaded
    merged: dict[str, Any] = {**DEFAULT_THRESHOLDS, **given}
    return {k: parse_threshold(k, v) for k, v in merged.items() if v is not None}


def check_value(m: Measure, raw: Any) -> Any:
    """``raw`` (form text or a JSON value) as stored for measure ``m``; None when blank.
    Raises InvalidInput naming the measure."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    what = m.label
    if m.type == TEXT:
        if not isinstance(raw, str):
            raise InvalidInput(f"{what}: give text")
        text = raw.strip()
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"{what}: {len(text):,} characters, over the limit of {MAX_TEXT:,}")
        if _CONTROL.search(text.replace("\r\n", "\n").replace("\t", " ")):
            raise InvalidInput(f"{what}: contains a control character")
        return text
    if m.type == YESNO:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower() if isinstance(raw, str) else None
        if word in _YES:
            return True
        if word in _NO:
            return False
        raise InvalidInput(f"{what}: {str(raw)[:40]!r}: answer yes or no")
    if m.type == RATING:
        said = " ".join(str(raw).split()).lower() if isinstance(raw, str) else ""
        word = {"ri": "requires improvement"}.get(said, said)
        for r in RATINGS:
            if word == r.lower():
                return r
        raise InvalidInput(f"{what}: {str(raw)[:40]!r}: use one of {', '.join(RATINGS)}")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidInput(f"{what}: give a number")
    if isinstance(raw, int) and not -(10**15) < raw < 10**15:
        raise InvalidInput(f"{what}: the number is far too large")
    given: str | int | float = raw.strip().removesuffix("%").strip() if isinstance(raw, str) else raw
    try:
        number = float(given) if not isinstance(given, str) or len(given) <= 30 else math.nan
    except ValueError:
        raise InvalidInput(f"{what}: {str(raw)[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{what}: {str(raw)[:40]!r} is not a number")
    if m.type == PERCENT:
        if not 0 <= number <= 100:
            raise InvalidInput(f"{what}: {number:g} is outside 0 to 100")
        return number
    top = m.maximum if m.maximum is not None else (MAX_COUNT if m.type == COUNT else MAX_NUMBER)
    if m.type == COUNT:
        if number != int(number):
            raise InvalidInput(f"{what}: {number:g} is not a whole number")
        if not 0 <= number <= top:
            raise InvalidInput(f"{what}: {number:g} is outside 0 to {top:g}")
        return int(number)
    if not 0 <= number <= top:
        raise InvalidInput(f"{what}: {number:g} is outside 0 to {top:g}")
    return number


class MeasuresRejected(InvalidInput):
    """Measures refused: ``problems`` maps each measure's key to its problem; nothing was stored."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("board review refused, nothing recorded: " + "; ".join(problems.values()))


def check_measures(given: Any) -> dict[str, Any]:
    """Every value read (blank ones left out); an unknown key or a bad value refuses them all."""
    if not isinstance(given, dict):
        raise InvalidInput("measures: give a mapping of measure to value")
    problems: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key in given:
        if key not in BY_KEY:
            problems[str(key)[:60]] = f"unknown measure {str(key)[:60]!r}"
    for m in MEASURES:
        try:
            value = check_value(m, given.get(m.key))
        except InvalidInput as exc:
            problems[m.key] = str(exc)
            continue
        if value is not None:
            out[m.key] = value
    if problems:
        raise MeasuresRejected(problems)
    if not out:
        raise MeasuresRejected({"": "no measure given: record at least one of the month's measures"})
    return out


def show_value(m: Measure, value: Any) -> str:
    """A stored value as people read it."""
    if value is None:
        return ""
    if m.type == YESNO:
        return "Yes" if value else "No"
    if m.type == PERCENT:
        return f"{value:g}%"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
