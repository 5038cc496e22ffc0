"""One manual transition, runnable from the Prefect UI or API, as the owner of an access token.

Who acts is the owner of the personal access token given (``peerwatch token create``: shown
once, stored as a hash, expiring, revocable), with the grants the owner holds *now*; ``role``
only chooses among them when more than one fits. An unknown, expired or revoked token, or a
disabled owner, is refused and nothing is changed. No parameter names an actor or a role
outright, and none can yield the built-in system principal (no account maps to it).

A person's action happens now: ``as_of`` is refused unless the database is a training
database (``states.services.clocks.action_clock``).

The token is a ``pydantic.SecretStr``. Prefect stores a run's parameters on its server and
shows them in its UI, so:

- a run this code creates (``fire(...)`` called directly or as a subflow) sends the token to
  the server as ``**********`` (``MaskedFlow.serialize_parameters``): it is never stored;
- a run created on the server first (the ``fire-manual`` deployment, from the UI or the API)
  holds the parameters as they were sent until the run starts: the run's hooks replace the
  stored token with ``**********`` as it starts running, or as it fails before that (a
  parameter that does not validate), crashes or is cancelled (``scrub``). The server must
  therefore be behind its API auth setting or an authenticating proxy (docs/scale.md).

The run's name never holds the token: it names the trigger, the item and, once known, the
account that acted and the role it acted in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from pydantic import SecretStr
from sqlmodel import Session

from flows.naming import fire_run_name
from models import init_db
from states import engine
from states.principal import Principal
from states.services.accounts import token_principal
from states.services.clocks import action_clock

MASK = "**********"
SECRET_PARAMETERS = ("token",)

log = logging.getLogger("peerwatch.flows.fire")
P = ParamSpec("P")
R = TypeVar("R")


class MaskedFlow(Flow[P, R]):
    """A flow whose secret parameters never reach the Prefect server in clear."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        out = super().serialize_parameters(parameters)
        for name in SECRET_PARAMETERS:
            if name in out and out[name] is not None:
                out[name] = MASK
        return out


def masked_flow(**options: Any) -> Callable[[Callable[P, R]], MaskedFlow[P, R]]:
    """``@flow(**options)``, as a ``MaskedFlow``."""

    def wrap(fn: Callable[P, R]) -> MaskedFlow[P, R]:
        return MaskedFlow(fn, **options)

    return wrap


def scrub(flow_run: Any) -> None:
    """Replace a secret parameter stored in clear on ``flow_run`` (one made on the server, from
    a deployment) with the mask, on the server and in the run's own copy."""
    if flow_run is None:
        return
    stored = dict(flow_run.parameters or {})
    if all(stored.get(name) in (None, MASK) for name in SECRET_PARAMETERS):
        return
    for name in SECRET_PARAMETERS:
        if stored.get(name) is not None:
            stored[name] = MASK
    from prefect.client.orchestration import get_client  # lazy: only a run made with the token in clear needs it

    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, parameters=stored)
    flow_run.parameters = stored


def scrub_stored_token() -> None:
    """``scrub`` this run, before anything else happens (the ``on_running`` hook has, as a rule)."""
    ctx = FlowRunContext.get()
    scrub(ctx.flow_run if ctx is not None else None)


def _scrub_hook(_flow: Any, flow_run: Any, _state: Any) -> None:
    """The run's hooks: as it starts running, and when it fails before that (a parameter that
    does not validate), crashes or is cancelled, the stored token is masked."""
    scrub(flow_run)


SCRUB_HOOKS: dict[str, Any] = {
    f"on_{when}": [_scrub_hook] for when in ("running", "failure", "crashed", "cancellation")
}


def _rename(name: str) -> None:
    """Name the run by who acted, now that it is known (never by the token)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    from prefect.client.orchestration import get_client  # lazy: only inside a flow run

    with get_client(sync_client=True) as client:
        client.set_flow_run_name(ctx.flow_run.id, name)
    ctx.flow_run.name = name


def _logger() -> Any:
    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _who(token: SecretStr | str, role: str | None, as_of: str | None) -> tuple[Principal, Any]:
    """The token's owner (acting in ``role`` if given) and the action's clock; refused, with
    nothing changed, for a bad token or a simulated date outside a training database."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else str(token)
    with Session(init_db()) as session:
        clock = action_clock(session, as_of)
        principal = token_principal(session, secret, clock, prefer=role or None)
        session.commit()  # the token's last use
    return principal, clock


@masked_flow(
    name="fire",
    flow_run_name=fire_run_name,
    description="Fire one trigger on one item as the owner of a personal access token (peerwatch token create).",
    **SCRUB_HOOKS,
)
def fire(
    kind: str,
    item_id: int,
    trigger: str,
    token: SecretStr,
    role: str | None = None,
    note: str | None = None,
    expected_version: int | None = None,
    params: dict[str, Any] | None = None,
    as_of: str | None = None,
) -> dict[str, Any]:
    scrub_stored_token()
    logger = _logger()
    try:
        principal, clock = _who(token, role, as_of)
    except Exception as exc:
        logger.error("fire %s on %s %s refused: %s", trigger, kind, item_id, exc)
        raise
    out, _pending = engine.fire_or_record(
        init_db(),
        kind,
        item_id,
        trigger,
        principal=principal,
        clock=clock,
        note=note,
        expected_version=expected_version,
        params=params,
    )
    result = {
        "kind": kind,
        "id": item_id,
        "from": out.event.from_state,
        "to": out.row.state,
        "version": out.event.version,
        "letters_queued": out.queued,
        "proposed": out.proposed,
        "actor": out.event.actor,
        "user_id": out.event.user_id,
        "role": out.event.role,
    }
    _rename(fire_run_name(actor=out.event.actor, role=out.event.role))
    logger.info(
        "%s %s: %s -> %s by %s (%s, account %s)",
        kind,
        item_id,
        result["from"],
        result["to"],
        out.event.actor,
        out.event.role,
        out.event.user_id,
    )
    return result
