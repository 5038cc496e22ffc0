"""The Maternity Safety Support Programme (seed 004, DOMAIN.md): every entry criterion; automatic
entry only from a recorded CQC assessment meeting a rating criterion; referral to the MSSCG for
the other routes, whose decision is recorded; exit proposed when Safe AND Well-led each improve,
and decided by the MSSCG; and the machine.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest

from models.perinatal import CqcRating
from states.errors import InvalidInput
from states.machines.mssp import (
    CRITERIA,
    RATINGS,
    improved_safe_and_well_led,
    mssp_entry_criteria,
    rating,
)
from tests.support_mssp import RI, G, I, O


def r(overall: str = G, safe: str = G, well_led: str = G, **kw: Any) -> dict[str, Any]:
    return {"overall": overall, "safe": safe, "well_led": well_led, **kw}


# (why, previous, current, criteria met)
CRITERIA_TABLE: list[tuple[str, dict[str, Any] | None, dict[str, Any], list[str]]] = [
    ("all good, no history", None, r(), []),
    ("all outstanding", r(O, O, O), r(O, O, O), []),
    ("overall inadequate", None, r(I, RI, RI), ["overall_inadequate"]),
    ("overall inadequate, safe inadequate: still one criterion for overall", None, r(I, I, I), ["overall_inadequate"]),
    ("overall RI alone", None, r(RI, RI, RI), []),
    ("overall RI, safe inadequate", None, r(RI, I, G), ["ri_inadequate_safe_or_well_led"]),
    ("overall RI, well-led inadequate", None, r(RI, G, I), ["ri_inadequate_safe_or_well_led"]),
    ("overall RI, effective inadequate (third domain)", None, r(RI, G, G, effective=I), ["ri_inadequate_third_domain"]),
    ("overall RI, caring inadequate", None, r(RI, G, G, caring=I), ["ri_inadequate_third_domain"]),
    ("overall RI, responsive inadequate", None, r(RI, RI, RI, responsive=I), ["ri_inadequate_third_domain"]),
    (
        "overall RI, safe and responsive inadequate",
        None,
        r(RI, I, RI, responsive=I),
        ["ri_inadequate_safe_or_well_led", "ri_inadequate_third_domain"],
    ),
    ("overall good with an inadequate domain is not a criterion", None, r(G, I, G, effective=I), []),
    ("warning notice on a good rating", None, r(warning_notice=True), ["warning_notice"]),
    ("safe dropped good -> RI", r(G, G, G), r(G, RI, G), ["dropped_safe"]),
    ("safe dropped outstanding -> RI", r(O, O, O), r(G, RI, O), ["dropped_safe"]),
    ("well-led dropped good -> RI", r(G, G, G), r(G, G, RI), ["dropped_well_led"]),
    ("well-led dropped outstanding -> inadequate", r(O, O, O), r(G, O, I), ["dropped_well_led"]),
    ("both dropped", r(G, G, O), r(RI, RI, RI), ["dropped_safe", "dropped_well_led"]),
    ("safe was already RI: no drop", r(RI, RI, G), r(RI, RI, G), []),
    ("safe RI -> inadequate is not a drop from good", r(RI, RI, RI), r(RI, I, RI), ["ri_inadequate_safe_or_well_led"]),
    ("outstanding -> good is not a drop to RI", r(O, O, O), r(G, G, G), []),
    ("effective dropped to RI is not a criterion", r(G, G, G, effective=G), r(G, G, G, effective=RI), []),
    ("no previous rating: no drop", None, r(G, RI, RI), []),
    ("DHSC/NHSE review request", None, r(dhsc_nhse_review_request=True), ["review_request"]),
    ("HSIB concern", None, r(hsib_concern=True), ["hsib_concern"]),
    (
        "everything at once",
        r(G, G, G),
        r(I, I, I, warning_notice=True, dhsc_nhse_review_request=True, hsib_concern=True),
        ["overall_inadequate", "warning_notice", "dropped_safe", "dropped_well_led", "review_request", "hsib_concern"],
    ),
]


@pytest.mark.parametrize(("why", "previous", "current", "expected"), CRITERIA_TABLE, ids=[t[0] for t in CRITERIA_TABLE])
def test_entry_criteria_table(
    why: str, previous: dict[str, Any] | None, current: dict[str, Any], expected: list[str]
) -> None:
    assert mssp_entry_criteria(previous, current) == expected


def test_every_criterion_is_in_the_table() -> None:
    met = {c for *_, expected in CRITERIA_TABLE for c in expected}
    assert met == set(CRITERIA)


def test_entry_criteria_over_every_rating_combination() -> None:
    """Each rating criterion holds exactly when its condition does, over all 4^4 x 5^2 combinations."""
    prev_options = [*RATINGS, None]
    for overall, safe, well_led, third, p_safe, p_wl in itertools.product(
        RATINGS, RATINGS, RATINGS, RATINGS, prev_options, prev_options
    ):
        previous = None if p_safe is None and p_wl is None else {"overall": G, "safe": p_safe, "well_led": p_wl}
        current = {"overall": overall, "safe": safe, "well_led": well_led, "caring": third}
        met = set(mssp_entry_criteria(previous, current))
        assert ("overall_inadequate" in met) == (overall == I)
        assert ("ri_inadequate_safe_or_well_led" in met) == (overall == RI and I in (safe, well_led))
        assert ("ri_inadequate_third_domain" in met) == (overall == RI and third == I)
        assert ("dropped_safe" in met) == (p_safe in (O, G) and safe in (RI, I))
        assert ("dropped_well_led" in met) == (p_wl in (O, G) and well_led in (RI, I))
        assert not met & {"warning_notice", "review_request", "hsib_concern"}
        for flag, name in (
            ("warning_notice", "warning_notice"),
            ("dhsc_nhse_review_request", "review_request"),
            ("hsib_concern", "hsib_concern"),
        ):
            assert name in mssp_entry_criteria(previous, {**current, flag: True})


def test_criteria_read_stored_ratings_too() -> None:
    prev = CqcRating(
        organisation_id=1,
        assessed_on=date(2025, 1, 1),
        overall=G,
        safe=G,
        well_led=G,
        recorded_by="a",
        recorded_role="operator",
    )
    cur = CqcRating(
        organisation_id=1,
        assessed_on=date(2026, 1, 1),
        overall=RI,
        safe=RI,
        well_led=G,
        recorded_by="a",
        recorded_role="operator",
    )
    assert mssp_entry_criteria(prev, cur) == ["dropped_safe"]


# (baseline safe, well-led) -> (current safe, well-led) -> exits?
EXIT_TABLE = [
    ((I, I), (RI, RI), True),
    ((RI, RI), (G, G), True),
    ((I, RI), (G, O), True),  # more than one step is fine
    ((RI, RI), (G, RI), False),  # only Safe improved
    ((RI, RI), (RI, G), False),  # only Well-led improved
    ((RI, RI), (RI, RI), False),
    ((I, I), (O, I), False),
    ((RI, RI), (O, I), False),  # one up, one down
    ((G, G), (O, O), True),
    ((O, O), (O, O), False),  # cannot improve on Outstanding
]


@pytest.mark.parametrize(("baseline", "current", "exits"), EXIT_TABLE, ids=[f"{b}->{c}" for b, c, _ in EXIT_TABLE])
def test_exit_needs_safe_and_well_led_each_one_step_better(
    baseline: tuple[str, str], current: tuple[str, str], exits: bool
) -> None:
    assert (
        improved_safe_and_well_led(
            {"safe": baseline[0], "well_led": baseline[1]}, {"safe": current[0], "well_led": current[1]}
        )
        is exits
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("good", G),
        ("RI", RI),
        ("requires-improvement", RI),
        ("Requires_Improvement", RI),
        ("  INADEQUATE ", I),
        ("Outstanding", O),
    ],
)
def test_ratings_are_spelled_as_the_cqc_spells_them(text: str, expected: str) -> None:
    assert rating(text) == expected


def test_an_unknown_rating_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'Excellent'"):
        rating("Excellent")
