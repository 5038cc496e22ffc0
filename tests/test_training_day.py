"""A training database may stand at a day of its own (``installation.training_today``): with no
``--as-of``, its people's actions and its flows happen on that day, so that the web
application (which has no ``--as-of``) acts inside the story the demo left rather than before
it. Any other database runs on the real clock, and nobody can move it."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent
from states.clock import FixedClock, SystemClock, local_date
from states.errors import PermissionDenied
from states.principal import Principal
from states.services import clocks
from tests import support_accounts
from tests.support_cli import cli_env, ok, run

DAY = date(2027, 3, 19)


def test_a_training_database_acts_on_its_day_once_an_administrator_sets_it(
    training: None, db: Engine, me: Principal
) -> None:
    with Session(db) as s:
        assert isinstance(clocks.action_clock(s, None), SystemClock)  # not set: the real clock
        clocks.set_training_today(s, me, SystemClock(), DAY)
        s.commit()
    with Session(db) as s:
        for clock in (clocks.action_clock(s, None), clocks.flow_clock(s, None)):
            assert local_date(clock.now()) == DAY
        assert local_date(clocks.action_clock(s, "2027-01-04").now()) == date(2027, 1, 4)  # --as-of still wins
        event = s.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
        assert event is not None and event.trigger == "set_training_day" and event.data["day"] == DAY.isoformat()
        assert event.user_id == me.user_id


def test_a_real_database_cannot_be_stood_at_a_day(db: Engine, me: Principal) -> None:
    with Session(db) as s, pytest.raises(PermissionDenied, match="only a training database"):
        clocks.set_training_today(s, me, SystemClock(), DAY)
    with Session(db) as s:
        assert clocks.training_today(s) is None
        assert isinstance(clocks.action_clock(s, None), SystemClock)


def test_only_an_administrator_moves_the_day(training: None, db: Engine) -> None:
    nm = support_accounts.account(db, "Nia Manager", ("network-manager",))
    with Session(db) as s, pytest.raises(PermissionDenied, match="only an administrator"):
        clocks.set_training_today(s, nm, FixedClock(DAY), DAY)


def test_the_command_shows_moves_and_clears_it(training: None, db: Engine, me: Principal) -> None:
    env = cli_env()
    assert "real clock" in ok(run(env, "installation", "training-day"))
    assert "Fri 19 Mar 2027" in ok(run(env, "installation", "training-day", DAY.isoformat()))
    assert "standing at Fri 19 Mar 2027" in ok(run(env, "installation", "show"))
    assert "real clock" in ok(run(env, "installation", "training-day", "--clear"))
    with Session(db) as s:
        assert clocks.training_today(s) is None
