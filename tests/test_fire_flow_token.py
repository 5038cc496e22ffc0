"""The Prefect ``fire`` flow acts as the owner of a personal access token (issue 14).

The token never reaches the Prefect server's stored parameters in clear, whether the run is
made by calling the flow or made on the server from a deployment (read back from the API);
an unknown, expired or revoked token, or a disabled owner, is refused with nothing changed;
no parameter names an actor, a role outright or the system; ``role`` only chooses among the
owner's own grants; a person's action happens now outside a training database.
"""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, Risk
from models.accounts import AccessToken, User
from states import engine
from states.clock import FixedClock, SystemClock, local_date
from states.errors import MissingActor, PermissionDenied
from states.principal import Principal
from states.services import accounts
from tests.factories import person
from tests.support_accounts import account

pytestmark = pytest.mark.usefixtures("prefect_harness")
MASK = "**********"


def _token(db: Engine, owner: Principal, days: int = 30) -> tuple[int, str]:
    with Session(db) as s:
        row, token = accounts.create_token(s, owner, SystemClock(), "prefect", days)
        s.commit()
        assert row.id is not None
        return row.id, token


def _snapshot(db: Engine, risk_id: int) -> tuple[Any, ...]:
    with Session(db) as s:
        row = s.get(Risk, risk_id)
        assert row is not None
        return row.state, row.version, s.exec(select(func.count()).select_from(AuditEvent)).one()


def _run(flow_run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def _logs(flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def _recent_risk(session: Session, services: dict[str, int]) -> Risk:
    """An IR raised last week (a real past date: outside a training database a person acts now)."""
    day = local_date(SystemClock().now()) - timedelta(days=7)
    row = Risk(
        service_id=next(iter(services.values())),
        level="IR",
        title="IR found at visit",
        identified_on=day,
        visit_date=day,
        state="new",
    )
    out = engine.create(
        session, "risk", row, "raise", principal=person("panel lead", "network-manager"), clock=FixedClock(day)
    )
    session.commit()
    assert isinstance(out.row, Risk)
    return out.row


def test_the_token_is_never_stored_in_clear_on_a_run_the_flow_makes(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    """Called directly, with the token as a plain string or a SecretStr: the run's stored
    parameters (read back from the Prefect API) hold the mask; its name and logs name the
    account that acted and never hold the token."""
    from flows.fire import fire

    owner = account(db, "Jo Bloggs", ("regional-lead",))
    _id, token = _token(db, owner)
    for given in (token, SecretStr(token)):
        risk = _recent_risk(session, services)
        state = fire(kind="risk", item_id=risk.id, trigger="send_formal_notification", token=given, return_state=True)
        assert state.is_completed(), state
        result = state.result()
        assert (result["to"], result["actor"], result["user_id"], result["role"]) == (
            "awaiting_response",
            "Jo Bloggs",
            owner.user_id,
            "regional-lead",
        )
        run = _run(state.state_details.flow_run_id)
        assert run.parameters["token"] == MASK
        logs = _logs(run.id)
        assert "by Jo Bloggs (regional-lead, account" in logs  # the run's log names who acted...
        assert token not in run.model_dump_json() and token not in logs  # ...never the token
        today = local_date(SystemClock().now()).isoformat()
        assert run.name == f"fire send_formal_notification on risk {risk.id} by Jo Bloggs (regional-lead) as of {today}"
    with Session(db) as s:
        (row,) = s.exec(select(AccessToken).where(AccessToken.user_id == owner.user_id)).all()
        assert row.last_used_at is not None and token not in (row.token_hash, row.prefix)


def test_a_run_made_on_the_server_has_its_stored_token_replaced_by_the_mask_when_it_starts(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    """The fire-manual deployment's runs are made on the server with the parameters as sent
    (the UI, the API): the run's first act replaces the stored token with the mask."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    from flows.fire import fire

    owner = account(db, "Jo Bloggs", ("regional-lead",))
    _id, token = _token(db, owner)
    risk = _recent_risk(session, services)
    parameters = {"kind": "risk", "item_id": risk.id, "trigger": "send_formal_notification", "token": token}
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow(fire), name="fire-token-test", entrypoint="flows/fire.py:fire"
        )
        made = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    assert _run(made.id).parameters["token"] == token  # as sent: why the server must be behind its API auth
    result = run_flow(fire, flow_run=made, parameters=parameters)
    assert result["actor"] == "Jo Bloggs"  # type: ignore[index]
    after = _run(made.id)
    assert after.parameters["token"] == MASK and token not in after.model_dump_json()
    assert {k: v for k, v in after.parameters.items() if k != "token"} == {
        k: v for k, v in parameters.items() if k != "token"
    }


def test_a_run_that_fails_before_it_starts_still_has_its_stored_token_masked(db: Engine) -> None:
    """A run from the deployment whose parameters do not validate never runs its body: its hook
    masks the stored token all the same."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    from flows.fire import fire

    token = "pw_" + "y" * 43
    parameters = {"kind": "risk", "item_id": "not a number", "trigger": "withdraw", "token": token}
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow(fire), name="fire-token-invalid", entrypoint="flows/fire.py:fire"
        )
        made = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    state = run_flow(fire, flow_run=made, parameters=parameters, return_type="state")
    assert state.is_failed() and "item_id" in str(state.message) + str(state.result(raise_on_failure=False))  # type: ignore[union-attr]
    after = _run(made.id)
    assert after.parameters["token"] == MASK and token not in after.model_dump_json()


def test_an_unknown_expired_or_revoked_token_or_a_disabled_owner_is_refused_with_nothing_changed(
    db: Engine, session: Session, services: dict[str, int], me: Principal
) -> None:
    from flows.fire import fire

    owner = account(db, "Jo Bloggs", ("regional-lead",))
    risk = _recent_risk(session, services)

    def refused(token: str, says: str) -> None:
        before = _snapshot(db, risk.id)
        with pytest.raises(MissingActor, match=says):
            fire(kind="risk", item_id=risk.id, trigger="send_formal_notification", token=token)
        assert _snapshot(db, risk.id) == before

    refused("pw_" + "x" * 43, "unknown or revoked")
    refused("not-a-token", "no valid access token")
    expired_id, expired = _token(db, owner)
    with Session(db) as s:
        s.execute(
            update(AccessToken)
            .where(AccessToken.id == expired_id)  # type: ignore[arg-type]
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
        s.commit()
    refused(expired, "expired")
    revoked_id, revoked = _token(db, owner)
    with Session(db) as s:
        accounts.revoke_token(s, owner, SystemClock(), revoked_id)
        s.commit()
    refused(revoked, "unknown or revoked")
    _live, live = _token(db, owner)
    with Session(db) as s:
        user = s.get(User, owner.user_id)
        assert user is not None
        accounts.disable_user(s, me, SystemClock(), user.email or "")
        s.commit()
    refused(live, "unknown or revoked")  # disabling an account revokes its tokens


def test_no_parameter_names_an_actor_or_the_system_and_role_chooses_among_the_owners_grants(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    from flows.fire import fire

    assert set(inspect.signature(fire.fn).parameters) == {
        "kind",
        "item_id",
        "trigger",
        "token",
        "role",
        "note",
        "expected_version",
        "params",
        "as_of",
    }
    schema = fire.parameters.model_dump()["properties"]["token"]  # the UI's run form masks what is typed
    assert (schema["type"], schema["format"], schema["writeOnly"]) == ("string", "password", True)
    both = account(db, "Sam Lee", ("network-manager", "regional-lead"))
    _id, token = _token(db, both)
    risk = _recent_risk(session, services)
    for role in ("system", "auditor"):  # not held: refused whatever the trigger allows
        before = _snapshot(db, risk.id)
        with pytest.raises(PermissionDenied, match=f"does not hold the role '{role}'"):
            fire(kind="risk", item_id=risk.id, trigger="send_formal_notification", token=token, role=role)
        assert _snapshot(db, risk.id) == before
    out = fire(kind="risk", item_id=risk.id, trigger="send_formal_notification", token=token, role="regional-lead")
    assert (out["actor"], out["user_id"], out["role"]) == ("Sam Lee", both.user_id, "regional-lead")
    with Session(db) as s:
        last = s.exec(select(AuditEvent).where(AuditEvent.item_id == risk.id).order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None and (last.user_id, last.actor, last.role) == (both.user_id, "Sam Lee", "regional-lead")


def test_a_grant_for_another_network_is_refused_and_the_refusal_names_the_account(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    from flows.fire import fire
    from models import Network, Service

    risk = _recent_risk(session, services)
    home = session.exec(select(Service.network_id).where(Service.id == risk.service_id)).one()
    elsewhere = session.exec(select(Network.id).where(Network.id != home)).first()
    owner = account(db, "Kim Other", ("network-manager",), scope="network", scope_id=elsewhere)
    _id, token = _token(db, owner)
    state, version, _events = _snapshot(db, risk.id)
    with pytest.raises(PermissionDenied, match="not in the scope"):
        fire(kind="risk", item_id=risk.id, trigger="send_formal_notification", token=token)
    assert _snapshot(db, risk.id)[:2] == (state, version)
    with Session(db) as s:
        last = s.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None and last.user_id == owner.user_id and last.item_id == risk.id


def test_as_of_is_refused_outside_a_training_database(db: Engine, session: Session, services: dict[str, int]) -> None:
    """A person's action happens now: a back-dated (or future) transition through the flow is
    refused, nothing changed (a training database takes it: tests/test_flows.py)."""
    from flows.fire import fire

    owner = account(db, "Jo Bloggs", ("regional-lead",))
    _id, token = _token(db, owner)
    risk = _recent_risk(session, services)
    before = _snapshot(db, risk.id)
    for as_of in ("2026-01-05", (date.today() + timedelta(days=30)).isoformat()):
        with pytest.raises(PermissionDenied, match="a person's action happens now"):
            fire(kind="risk", item_id=risk.id, trigger="send_formal_notification", token=token, as_of=as_of)
        assert _snapshot(db, risk.id) == before
