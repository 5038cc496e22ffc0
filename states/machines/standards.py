"""The standards a self-assessment is judged against (seed 000 s5.1, Appendix 2; 000 s6.4).

The statuses (Met, Partially Met, Unmet) and the status a figure gives where a standard has
thresholds; the standard set in force for a service kind on a date; the check of every
returned row against the set (any problem refuses them all, each named by row and column);
the total achievement, (Met x 1 + Partially Met x 0.5 + Unmet x 0) / standards x 100 with the
weights of local policy, and the 50% below which a service is escalated. Pure, or read-only
queries: loading a library of sets is a use case (``states/services/standards.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.selfassessment import Standard, StandardSet
from states.errors import InvalidInput
from states.policy import numbers_from_env

MET, PARTLY, UNMET = "Met", "Partially Met", "Unmet"
STATUSES = (MET, PARTLY, UNMET)
ESCALATE_BELOW = 50.0  # 000 s6.4: "not achieving at least a 50% total achievement rating" (the SOP, not local policy)


class SpreadsheetRejected(InvalidInput):
    """A returned spreadsheet refused: its problems are listed (the first ``listed``, with the
    total count, so 100,000 bad rows never print 100,000 lines); nothing was imported."""

    def __init__(self, problems: list[str], listed: int | None = None) -> None:
        cap = listed if listed is not None else SelfAssessmentPolicy.from_env().selfassessment_max_problems_listed
        cap = max(1, int(cap))
        self.count = len(problems)
        self.problems = list(problems[:cap])
        self.more = self.count - len(self.problems)  # problems found but not listed
        head = f"spreadsheet refused, nothing imported: {self.count} problem(s)"
        if self.more:
            head += f", the first {len(self.problems)} listed"
        super().__init__(head + ": " + "; ".join(self.problems) + (f"; ... and {self.more} more" if self.more else ""))


@dataclass(frozen=True)
class SelfAssessmentPolicy:
    """Local policy defaults, not the SOP; each overridable by ``PEERWATCH_<NAME>``."""

    selfassessment_return_weeks: int = 6  # the service returns the completed spreadsheet
    selfassessment_reminder_working_days: int = 5  # reminder before the return is due
    selfassessment_weight_met: float = 1.0  # total achievement weights (DOMAIN.md "Self-assessment declaration")
    selfassessment_weight_partly: float = 0.5
    selfassessment_weight_unmet: float = 0.0
    # Limits on a returned spreadsheet, checked before it is parsed (issue 12 item 5). An
    # Appendix 2 return is tens of kilobytes and a few hundred rows: these leave ample room.
    selfassessment_max_file_bytes: int = 10_000_000  # the file as uploaded
    selfassessment_max_uncompressed_bytes: int = 50_000_000  # all its parts once unzipped
    selfassessment_max_compression_ratio: int = 100  # unzipped / zipped, of any part over 1 MB and of the whole
    selfassessment_max_parts: int = 1000  # files inside the zip
    selfassessment_max_rows: int = 5000  # last row any sheet may use (declared or actual)
    selfassessment_max_columns: int = 50  # last column any sheet may use (AX)
    selfassessment_max_problems_listed: int = 50  # problems listed when a file is refused (then the count)

    @classmethod
    def from_env(cls) -> SelfAssessmentPolicy:
        return cls(**numbers_from_env(cls))

    def weight(self, status: str) -> float:
        return {
            MET: self.selfassessment_weight_met,
            PARTLY: self.selfassessment_weight_partly,
            UNMET: self.selfassessment_weight_unmet,
        }[status]


# ---------------------------------------------------------------- the standard sets


def head_set(session: Session, service_kind: str) -> StandardSet | None:
    """The newest loaded set for a kind: the one no other set supersedes."""
    return session.exec(
        select(StandardSet)
        .where(StandardSet.service_kind == service_kind, col(StandardSet.superseded_by_id).is_(None))
        .order_by(col(StandardSet.effective_from).desc(), col(StandardSet.id).desc())
    ).first()


def current_set(session: Session, service_kind: str, on: date) -> StandardSet | None:
    """The set in force for a kind on a date: effective by then and not yet superseded by then."""
    sets = list(session.exec(select(StandardSet).where(StandardSet.service_kind == service_kind)))
    by_id = {s.id: s for s in sets}
    for s in sorted(sets, key=lambda s: (s.effective_from, s.id or 0), reverse=True):
        if s.effective_from > on:
            continue
        successor = by_id.get(s.superseded_by_id)
        if successor is None or successor.effective_from > on:
            return s
    return None


def standards_of(session: Session, set_id: int) -> list[Standard]:
    return list(
        session.exec(
            select(Standard).where(Standard.set_id == set_id).order_by(col(Standard.position), col(Standard.id))
        )
    )


# ---------------------------------------------------------------- judging a row


def derive_status(std: Standard, figure: float | None) -> str | None:
    """The status the figure gives, where the standard has thresholds (e.g. 1.2: >= 98 Met, >= 90 Partially Met)."""
    if std.met_threshold is None or figure is None:
        return None
    if figure >= std.met_threshold:
        return MET
    if std.partly_threshold is not None and figure >= std.partly_threshold:
        return PARTLY
    return UNMET


def bands(std: Standard) -> str:
    if std.met_threshold is None:
        return "no thresholds"
    parts = [f"Met >= {std.met_threshold:g}"]
    if std.partly_threshold is not None:
        parts.append(f"Partially Met >= {std.partly_threshold:g}")
    return ", ".join(parts) + ", else Unmet"


def status_of(text: Any) -> str | None:
    """Met, Partially Met or Unmet, whatever the case and spacing; None if blank; the text if unknown."""
    if text is None or not str(text).strip():
        return None
    wanted = " ".join(str(text).split()).lower()
    return next((s for s in STATUSES if s.lower() == wanted), str(text).strip())


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float | date) and isinstance(getattr(value, "text", None), str):
        value = value.text  # an array formula: its literal text
    if isinstance(value, float):
        return format(value, "g")
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def check_rows(rows: list[dict[str, Any]], standards: list[Standard]) -> list[dict[str, Any]]:
    """Judge every row against the standard set; any problem refuses all of them (SpreadsheetRejected)."""
    by_ref = {s.ref: s for s in standards}
    problems: list[str] = []
    seen: dict[str, int] = {}
    items = []
    for raw in rows:
        n = raw.get("row", "?")
        ref = cell_text(raw.get("ref"))
        std = by_ref.get(ref)
        if not ref:
            problems.append(f"row {n}, Ref No.: missing")
        elif std is None:
            problems.append(f"row {n}, Ref No.: unknown standard {ref!r} (known: {', '.join(by_ref)})")
        elif ref in seen:
            problems.append(f"row {n}, Ref No.: standard {ref} appears again (first on row {seen[ref]})")
            std = None
        else:
            seen[ref] = n
        figure: float | None = None
        value: Any = raw.get("figure")
        blank_figure = value is None or (isinstance(value, str) and not value.strip())
        if not blank_figure:
            try:
                if isinstance(value, bool):
                    raise ValueError(value)
                figure = float(value.strip().removesuffix("%").strip()) if isinstance(value, str) else float(value)
            except (TypeError, ValueError):
                problems.append(f"row {n}, Figure Achieved: {cell_text(value)!r} is not a number")
            else:
                if figure != figure or not 0 <= figure <= 100:  # NaN or out of range
                    problems.append(f"row {n}, Figure Achieved: {figure:g} is outside 0-100")
                    figure = None
        if std is not None and std.has_thresholds and blank_figure:
            problems.append(f"row {n}, Figure Achieved: missing: standard {ref} is judged on its figure ({bands(std)})")
        status = status_of(raw.get("status"))
        derived = derive_status(std, figure) if std else None
        if status is not None and status not in STATUSES:
            problems.append(f"row {n}, Self-Assessment: {status!r} is not Met, Partially Met or Unmet")
        elif std is not None:
            if status == PARTLY and not std.has_partly_band:
                problems.append(
                    f"row {n}, Self-Assessment: standard {ref} has no 'Partially Met' band: use Met or Unmet"
                )
            elif status is None and not std.has_thresholds:
                problems.append(f"row {n}, Self-Assessment: missing: Met, Partially Met or Unmet")
            elif status is not None and derived is not None and status != derived:
                problems.append(
                    f"row {n}, Self-Assessment: {status!r} contradicts the figure {figure:g} "
                    f"({derived} for standard {ref}: {bands(std)})"
                )
        if not cell_text(raw.get("evidence")):
            problems.append(
                f"row {n}, Evidence location: missing: say where the evidence is "
                "(work plan, annual report, Operational Policy or during visit)"
            )
        if std is not None:
            items.append(
                {
                    "ref": ref,
                    "self_status": status or derived,
                    "figure": figure,
                    "comments": cell_text(raw.get("comments")),
                    "evidence_location": cell_text(raw.get("evidence")),
                }
            )
    for ref in by_ref:
        if ref not in seen:
            problems.append(f"Ref No.: standard {ref} has no row")
    if problems:
        raise SpreadsheetRejected(problems)
    return items


def total_achievement(statuses: list[str], standards_count: int, policy: SelfAssessmentPolicy | None = None) -> float:
    """(Met x 1 + Partially Met x 0.5 + Unmet x 0) / number of standards x 100, with the policy's weights."""
    policy = policy or SelfAssessmentPolicy.from_env()
    if standards_count <= 0:
        raise InvalidInput("no standards to compute an achievement from")
    return 100.0 * sum(policy.weight(s) for s in statuses) / standards_count


def is_below_escalation(achievement: float) -> bool:
    return achievement < ESCALATE_BELOW
