"""Dates peerwatch records run from 2000-01-01 to 2100-12-31: a date outside them is refused with
one line and nothing stored, wherever it came from (the rule is on the ORM flush, with the text
rule: states/text.py). A risk "identified" on 0001-01-01 was accepted, and then every page that
counted working days to its deadline took a second (the reviewer's probe)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import Contact, Risk
from states.clock import FixedClock
from states.errors import InvalidInput
from states.services import intake
from tests.factories import MRH, person


@pytest.mark.parametrize("found", [date(1, 1, 1), date(1999, 12, 31)])
def test_a_risk_found_before_2000_is_refused_and_nothing_is_stored(
    db: Engine, services: dict[str, int], found: date
) -> None:
    nm = person("Dr Asha Patel", "network-manager")
    with Session(db) as s, pytest.raises(InvalidInput, match="give a date from 2000-01-01 to 2100-12-31"):
        intake.raise_risk(
            s, service=services[MRH], level="SC", title="ancient", standard=None, visit_date=found,
            identified=None, impact=None, likelihood=None, doctors_in_training=False,
            principal=nm, clock=FixedClock(date(2026, 12, 7)), note=None,
        )  # fmt: skip
    with Session(db) as s:
        assert s.exec(select(func.count()).select_from(Risk)).one() == 0


def test_a_changed_date_is_checked_too(db: Engine, services: dict[str, int]) -> None:
    with Session(db) as s:
        c = Contact(role="service-lead", name="Ann Lead", email="ann@example.nhs.uk", service_id=services[MRH])
        s.add(c)
        s.commit()
        c.valid_until = date(1900, 1, 1)
        s.add(c)
        with pytest.raises(InvalidInput, match="contact valid until 1900-01-01"):
            s.commit()
        s.rollback()
        c.valid_until = date(2100, 12, 31)  # the last day recorded is accepted
        s.add(c)
        s.commit()
