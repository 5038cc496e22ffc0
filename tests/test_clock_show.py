"""Times are stored in UTC and shown in Europe/London, with the zone people see (GMT or BST),
including across the clock changes and for a value stored without its zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from states.clock import show


@pytest.mark.parametrize(
    ("utc", "shown"),
    [
        (datetime(2027, 3, 19, 12, 0, tzinfo=UTC), "2027-03-19 12:00 GMT"),
        (datetime(2027, 7, 1, 23, 30, tzinfo=UTC), "2027-07-02 00:30 BST"),  # the next day in London
        (datetime(2026, 10, 25, 0, 59, tzinfo=UTC), "2026-10-25 01:59 BST"),  # the last minute of summer time
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "2026-10-25 01:00 GMT"),  # the hour shown twice
        (datetime(2027, 3, 28, 1, 0, tzinfo=UTC), "2027-03-28 02:00 BST"),  # the hour that does not exist
        (datetime(2099, 12, 31, 23, 59), "2099-12-31 23:59 GMT"),  # stored naive: read as UTC
    ],
)
def test_a_moment_is_shown_in_london(utc: datetime, shown: str) -> None:
    assert show(utc) == shown
