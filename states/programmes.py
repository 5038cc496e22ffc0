"""Programme cycles as data (seeds 000 s5, 001): which phase of which year, by date.

A programme is a YAML file: ``states/programmes/*.yaml`` ship the West Midlands annual and
the Cheshire & Mersey biennial programmes; ``PEERWATCH_PROGRAMMES_DIR`` adds a user's own.
Programme years run 1 April - 31 March; quarters Q1 Apr-Jun, Q2 Jul-Sep, Q3 Oct-Dec,
Q4 Jan-Mar. A biennial programme's year 1 starts in ``first_year_starts`` and every second
April after. A phase opens on its quarter's first day and is due on its quarter's last day,
or on ``due`` (MM-DD) within that quarter's year; ``quarter: every`` repeats it each quarter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from states.errors import InvalidInput, NotFound

BUILTIN = Path(__file__).parent / "programmes"
QUARTERS = {"Q1": (4, 6), "Q2": (7, 9), "Q3": (10, 12), "Q4": (1, 3)}
DEFAULT_FOR_CYCLE = {"annual": "wm-annual", "biennial": "cmmtn-biennial"}


@dataclass(frozen=True)
class PhaseDef:
    key: str
    years: tuple[int, ...]
    quarter: str  # Q1..Q4 or "every"
    title: str
    activities: tuple[str, ...] = ()
    due: str | None = None  # MM-DD
    requests: tuple[str, ...] = ()  # documents each Trust submits
    notify: str | None = None  # a letter to every Trust when the phase opens


@dataclass(frozen=True)
class Programme:
    slug: str
    name: str
    cycle_years: int
    first_year_starts: int
    phases: tuple[PhaseDef, ...] = field(default_factory=tuple)
    # Where the quarters come from: "local policy" (the SOP sets none: a network may move a step,
    # states/services/cycle_quarters.py) or the seed that fixes them (e.g. "seed 001"), which may not be moved.
    quarters_source: str = "programme file"

    @property
    def quarters_are_local_policy(self) -> bool:
        return self.quarters_source == "local policy"


@dataclass(frozen=True)
class PhaseDates:
    definition: PhaseDef
    programme_year: int  # the April it starts in
    cycle_year: int  # 1 or 2
    quarter: str
    opens_on: date
    due_on: date

    @property
    def key(self) -> str:
        return f"{self.definition.key}:{self.quarter}" if self.definition.quarter == "every" else self.definition.key


def _dirs() -> list[Path]:
    extra = os.environ.get("PEERWATCH_PROGRAMMES_DIR")
    return [BUILTIN, *([Path(extra)] if extra else [])]


@cache
def _load(slug: str, dirs: tuple[Path, ...]) -> Programme:
    for d in reversed(dirs):
        path = d / f"{slug}.yaml"
        if path.exists():
            raw = yaml.safe_load(path.read_text())
            return _parse(slug, raw, path)
    raise NotFound(f"programme {slug!r} not found in {', '.join(str(d) for d in dirs)}")


def _parse(slug: str, raw: dict[str, Any], path: Path) -> Programme:
    try:
        phases = tuple(
            PhaseDef(
                key=p["key"],
                years=tuple(p.get("years", [1])),
                quarter=p["quarter"],
                title=p["title"],
                activities=tuple(p.get("activities", [])),
                due=p.get("due"),
                requests=tuple(p.get("requests", [])),
                notify=p.get("notify"),
            )
            for p in raw["phases"]
        )
        prog = Programme(
            slug=slug,
            name=raw["name"],
            cycle_years=int(raw.get("cycle_years", 1)),
            first_year_starts=int(raw.get("first_year_starts", 2000)),
            phases=phases,
            quarters_source=str(raw.get("quarters", "programme file")).replace("-", " ").strip(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"programme file {path}: {exc}") from None
    for p in prog.phases:
        if p.quarter not in (*QUARTERS, "every"):
            raise InvalidInput(f"programme file {path}: phase {p.key} quarter {p.quarter!r}: use Q1-Q4 or every")
    return prog


def programme(slug: str) -> Programme:
    return _load(slug, tuple(_dirs()))


def programme_for(cycle: str, slug: str | None = None) -> Programme:
    return programme(slug or DEFAULT_FOR_CYCLE.get(cycle, cycle))


def programme_year_of(day: date) -> int:
    """The April a programme year starts in: 1 Apr 2026 - 31 Mar 2027 -> 2026."""
    return day.year if day.month >= 4 else day.year - 1


def quarter_of(day: date) -> str:
    return next(q for q, (a, b) in QUARTERS.items() if a <= day.month <= b)


def cycle_year(prog: Programme, year: int) -> int:
    return (year - prog.first_year_starts) % prog.cycle_years + 1


def _quarter_span(year: int, quarter: str) -> tuple[date, date]:
    first, last = QUARTERS[quarter]
    y = year + 1 if quarter == "Q4" else year
    start = date(y, first, 1)
    end = (date(y, last % 12 + 1, 1) if last < 12 else date(y + 1, 1, 1)) - timedelta(days=1)
    return start, end


def phases_for(prog: Programme, year: int, quarters: Mapping[str, str] | None = None) -> list[PhaseDates]:
    """Every phase of a programme year (the April it starts in), with its dates; ``quarters``
    places a step in another quarter (a network's local policy, states/services/cycle_quarters.py)."""
    cy = cycle_year(prog, year)
    out = []
    for p in prog.phases:
        if cy not in p.years:
            continue
        moved = (quarters or {}).get(p.key)
        for q in QUARTERS if p.quarter == "every" else [moved or p.quarter]:
            start, end = _quarter_span(year, q)
            due = end
            if p.due and not moved:
                month, day = (int(x) for x in p.due.split("-"))
                due = date(start.year, month, day)
            out.append(PhaseDates(p, year, cy, q, start, due))
    return sorted(out, key=lambda d: (d.opens_on, d.key))


def where(prog: Programme, day: date, quarters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Where a programme stands on a date: programme year, cycle year, quarter, current phases."""
    year = programme_year_of(day)
    q = quarter_of(day)
    current = [
        p
        for p in phases_for(prog, year, quarters)
        if p.opens_on <= day <= p.due_on or (p.quarter == q and p.opens_on <= day)
    ]
    return {
        "programme": prog.name,
        "programme_year": f"{year}-{str(year + 1)[2:]}",
        "cycle_year": cycle_year(prog, year),
        "cycle_years": prog.cycle_years,
        "quarter": q,
        "phases": [p.definition.title for p in current],
    }
