"""The Prefect flows, run for real under one prefect_test_harness per session.

The database is a training database: these runs work to dates after today (a sweep as of a
future date is refused elsewhere: tests/test_fire_flow_token.py, tests/test_training_mail.py)."""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import OutboxMessage, Risk
from states import engine
from states.clock import FixedClock, SystemClock
from states.services import accounts
from tests.factories import person
from tests.support_accounts import account

pytestmark = pytest.mark.usefixtures("prefect_harness", "training")


@pytest.fixture(autouse=True)
def anchors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the views flow anchors the audit chain (PEERWATCH_ANCHOR_DIR): this test's own."""
    monkeypatch.setenv("PEERWATCH_ANCHOR_DIR", str(tmp_path / "anchors"))
    return tmp_path / "anchors"


def token_of(db: Engine, name: str, *roles: str) -> str:
    """A personal access token of a real account holding ``roles`` (as ``peerwatch token create``)."""
    owner = account(db, name, roles)
    with Session(db) as s:
        _row, token = accounts.create_token(s, owner, SystemClock(), "prefect")
        s.commit()
    return token


def _artifact(key: str) -> list[object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return list(client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


def test_chase_flow_escalates_and_publishes_an_artifact(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    from flows.chase import chase

    risk = raise_risk("SC")
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2026, 12, 18)),
    )
    session.commit()
    result = chase(as_of="2027-01-21")
    assert (result["as_of"], result["counts"], result["skipped"], result["outbox_incidents"]) == (
        "2027-01-21",
        {"no_response": 1},
        0,
        0,
    )
    assert chase(as_of="2027-01-21")["counts"] == {}  # once per deadline
    with Session(db) as s:
        assert s.get(Risk, risk.id).state == "chased"  # type: ignore[union-attr]
    artifacts = _artifact("chase-actions")
    assert any(a.type == "table" and "no_response" in str(a.data) for a in artifacts)  # type: ignore[attr-defined]


def test_fire_flow_runs_one_manual_transition(db: Engine, raise_risk: Callable[..., Risk]) -> None:
    from flows.fire import fire

    risk = raise_risk("IR")
    out = fire(
        kind="risk",
        item_id=risk.id,
        trigger="send_formal_notification",
        token=token_of(db, "Jo Bloggs", "regional-lead"),
        note="sent by email",
        as_of="2026-12-17",
    )
    assert out["from"] == "identified" and out["to"] == "awaiting_response" and out["letters_queued"] == 1
    assert (out["actor"], out["role"]) == ("Jo Bloggs", "regional-lead")
    from states.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        fire(
            kind="risk",
            item_id=risk.id,
            trigger="response_adequate",
            token=token_of(db, "Ann Auditor", "auditor"),
            as_of="2026-12-18",
        )


def test_dispatch_flow_writes_letters_to_the_folder(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], tmp_path: Path
) -> None:
    from flows.dispatch import dispatch

    risk = raise_risk("IR", impact=5, likelihood=5)  # ASCT notice
    result = dispatch(as_of="2026-12-11")
    assert result["emails_sent"] == 1 and result["failed"] == 0
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes())
    assert "Acute Specialised Commissioning Team" in msg["Subject"] or "scored 25" in msg["Subject"]
    with Session(db) as s:
        assert s.exec(select(OutboxMessage.status).where(OutboxMessage.item_id == risk.id)).all() == ["sent"]


def _run_artifacts(flow_run_id: object) -> dict[str, object]:
    """The artifacts one flow run created, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}  # type: ignore[misc]


def test_views_flow_keeps_the_managers_views_current_and_the_chase_links_them(
    db: Engine,
    session: Session,
    raise_risk: Callable[..., Risk],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The views flow republishes the risk register per network, overdue items, the outbox and
    each network's cycle status, and writes the dashboard with its feeds; the chase run's
    summary counts what it did and links every one of those views."""
    from flows.chase import chase
    from flows.views import views
    from models import Network, Service

    monkeypatch.setenv("PEERWATCH_SITE_DIR", str(tmp_path / "site"))
    risk = raise_risk("SC")
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2026, 12, 18)),
    )
    session.commit()
    network = session.exec(
        select(Network).join(Service, Service.network_id == Network.id).where(Service.id == risk.service_id)
    ).one()
    chased = chase(as_of="2027-01-21", return_state=True)
    state = views(as_of="2027-01-21", return_state=True)
    arts = _run_artifacts(state.state_details.flow_run_id)
    codes = [n.code.lower() for n in session.exec(select(Network))]
    expected = (
        {f"risk-register-{c}" for c in codes}
        | {f"cycle-status-{c}" for c in codes}
        | {"overdue-items", "outbox", "outbox-incidents", "cycle-status"}
    )
    assert expected <= set(arts), expected - set(arts)
    register = str(arts[f"risk-register-{network.code.lower()}"].data)  # type: ignore[attr-defined]
    assert f"SC-{risk.id}" in register and "chased" in register  # the sweep's change is in it
    others = [str(arts[f"risk-register-{c}"].data) for c in codes if c != network.code.lower()]  # type: ignore[attr-defined]
    assert all(f"SC-{risk.id}" not in o for o in others)
    assert "letter" in str(arts["outbox"].data) and "queued" in str(arts["outbox"].data)  # type: ignore[attr-defined]
    (anchored,) = (tmp_path / "anchors").glob("anchor-*.json")  # the audit chain, anchored once a day
    assert state.result()["anchor"] == str(anchored) and "anchored on 2027-01-21" in arts["audit-anchor"].description  # type: ignore[attr-defined]
    assert views(as_of="2027-01-21")["anchor"] is None and len(list((tmp_path / "anchors").iterdir())) == 1
    assert (tmp_path / "site" / network.code / "index.html").is_file()
    assert (tmp_path / "site" / network.code / "calendar.ics").is_file()
    summary = str(_run_artifacts(chased.state_details.flow_run_id)["chase-run-summary"].data)  # type: ignore[attr-defined]
    assert "| no_response | risk | 1 |" in summary
    for key in expected | {"chase-actions"}:
        assert f"(/artifacts/key/{key})" in summary, key


def test_every_deployment_in_prefect_yaml_builds_with_its_london_schedule() -> None:
    """What `peerwatch serve` serves: one deployment per prefect.yaml entry, each flow found,
    each cron in Europe/London, the sweepers limited to one run at a time."""
    from flows.deployments import build, load_spec

    spec = {d["name"]: d for d in load_spec()}
    built = {d.name: d for d in build()}
    assert set(built) == set(spec) and {"chase-daily", "views-working-hours", "dispatch-every-15-min"} <= set(built)
    for name, d in built.items():
        assert [(s.schedule.cron, s.schedule.timezone) for s in d.schedules] == [
            (s["cron"], "Europe/London") for s in spec[name].get("schedules") or []
        ], name
        if "sweeper" in (spec[name].get("tags") or []):
            assert d.concurrency_limit is not None, name


def _flow_run(flow_run_id: object) -> object:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)  # type: ignore[arg-type]


def test_every_flow_run_is_named_by_what_it_did_and_every_artifact_has_a_description(
    db: Engine,
    raise_risk: Callable[..., Risk],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Prefect UI lists "chase as of 2027-01-21", not "aloof-mouse"; and no artifact shows
    "No description", including the markdown ones published when there is nothing to show
    (an empty outbox, nothing overdue, nothing due, no themes yet)."""
    from flows.chase import chase
    from flows.cycle import cycle
    from flows.dispatch import dispatch
    from flows.fire import fire
    from flows.themes import themes
    from flows.views import views

    monkeypatch.setenv("PEERWATCH_SITE_DIR", str(tmp_path / "site"))
    monkeypatch.setenv("PEERWATCH_AS_OF", "2027-03-19")
    runs = {
        "chase as of 2027-01-21": chase(as_of="2027-01-21", return_state=True),
        "dispatch as of 2027-01-22": dispatch(as_of="2027-01-22", return_state=True),
        "views as of 2027-01-23": views(as_of="2027-01-23", return_state=True),
        "themes for all networks as of 2027-03-19": themes(return_state=True),  # no as_of: PEERWATCH_AS_OF
        "chase as of 2027-03-19": chase(return_state=True),
    }
    risk = raise_risk("IR")
    runs[f"fire send_formal_notification on risk {risk.id} by Jo Bloggs (regional-lead) as of 2026-12-17"] = fire(
        kind="risk",
        item_id=risk.id,
        trigger="send_formal_notification",
        token=token_of(db, "Jo Bloggs", "regional-lead"),
        as_of="2026-12-17",
        return_state=True,
    )
    runs["cycle as of 2027-01-25"] = cycle(as_of="2027-01-25", return_state=True)
    for name, state in runs.items():
        assert state.is_completed(), (name, state)
        assert _flow_run(state.state_details.flow_run_id).name == name  # type: ignore[attr-defined]
    artifacts = {}
    for state in runs.values():
        artifacts.update(
            {
                (a.key, state.state_details.flow_run_id): a
                for a in _run_artifacts(state.state_details.flow_run_id).values()
            }
        )  # type: ignore[attr-defined]
    kinds = {a.type for a in artifacts.values()}  # type: ignore[attr-defined]
    assert kinds == {"markdown", "table"}, kinds
    keys = {k for k, _ in artifacts}
    assert {
        "chase-actions",
        "chase-run-summary",
        "outbox",
        "outbox-incidents",
        "overdue-items",
        "shared-learning-themes",
    } <= keys, keys
    undescribed = sorted(k for (k, _), a in artifacts.items() if not (a.description or "").strip())  # type: ignore[attr-defined]
    assert undescribed == []


def test_every_artifact_call_in_the_code_gives_a_description() -> None:
    """Every create_*_artifact call anywhere in the package passes description=... (the UI
    otherwise shows "No description")."""
    import ast

    root = Path(__file__).resolve().parent.parent
    calls, missing = 0, []
    for package in ("flows", "cli", "notifications", "states", "models"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if name.startswith("create_") and name.endswith("_artifact"):
                        calls += 1
                        if not any(k.arg == "description" for k in node.keywords):
                            missing.append(f"{path.relative_to(root)}:{node.lineno}")
    assert calls >= 10 and missing == []


def test_a_run_cancelled_by_the_sweepers_limit_is_reported_with_the_command_to_run_it(
    db: Engine, session: Session
) -> None:
    """A scheduled chase due while another chase was running is cancelled by the Prefect
    server (limit 1, CANCEL_NEW) and shows only as CANCELLED; the next chase run's log and
    summary say so, with when it was due and the command that runs it now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
    from prefect.flow_engine import run_flow
    from prefect.states import Cancelled, Pending, Running

    from flows.chase import chase

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(chase)
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name="chase-limit-test",
            concurrency_limit=1,
            entrypoint="flows/chase.py:chase",
            concurrency_options=ConcurrencyOptions(collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        )
        running = client.create_flow_run_from_deployment(deployment_id)
        assert client.set_flow_run_state(running.id, Pending()).state.is_pending()  # type: ignore[union-attr]
        assert client.set_flow_run_state(running.id, Running()).state.is_running()  # type: ignore[union-attr]
        late = client.create_flow_run_from_deployment(deployment_id)
        refused = client.set_flow_run_state(late.id, Pending()).state
        assert refused is not None and refused.is_cancelled() and "concurrency limit" in (refused.message or "")
        client.set_flow_run_state(
            running.id, Cancelled(message="stopped by hand"), force=True
        )  # not the limit: not reported
        nxt = client.create_flow_run_from_deployment(deployment_id, parameters={"as_of": "2027-01-21"})
    result = run_flow(chase, flow_run=nxt, parameters={"as_of": "2027-01-21"})
    (line,) = result["cancelled_runs"]  # type: ignore[index]
    assert late.name in line and "CANCELLED" in line and "prefect deployment run 'chase/chase-limit-test'" in line
    assert running.name not in line
    summary = str(_run_artifacts(nxt.id)["chase-run-summary"].data)  # type: ignore[attr-defined]
    assert late.name in summary and "prefect deployment run 'chase/chase-limit-test'" in summary


def test_a_chain_that_cannot_be_anchored_fails_the_views_run_and_says_why(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.views
    from states.services.anchors import AnchorRefused

    def refused(*_a: object, **_k: object) -> None:
        raise AnchorRefused("the audit chain is not anchored, it does not verify: event 7 was changed")

    monkeypatch.setenv("PEERWATCH_SITE_DIR", str(tmp_path / "site"))
    monkeypatch.setattr(flows.views, "anchor_once_a_day", refused)
    state = flows.views.views(as_of="2027-01-21", return_state=True)
    assert state.is_failed() and "event 7 was changed" in str(state.message)
    note = _run_artifacts(state.state_details.flow_run_id)["audit-anchor"]
    assert "NOT anchored" in note.description and "event 7 was changed" in note.description  # type: ignore[attr-defined]
    assert not (tmp_path / "anchors").exists()


def test_the_chase_run_summary_lists_every_item_it_skipped_with_why(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item the sweep could not act on is an incident on the run's summary (and in its
    result), never a silent skip."""
    import states.engine.sweep as sweep
    from flows.chase import chase

    good, bad = raise_risk("IR"), raise_risk("IR")  # both reminded Wed 16 Dec
    real = sweep.letter_for

    def poisoned(which: object, s: Session, row: Risk) -> object:
        if row.id == bad.id:
            raise ValueError("a stored value no letter can hold")
        return real(which, s, row)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep, "letter_for", poisoned)
    state = chase(as_of="2026-12-16", return_state=True)
    result = state.result()
    assert result["counts"] == {"reminded": 1} and result["skipped"] == 1 and good.id != bad.id
    (item,) = result["skipped_items"]
    assert (item["id"], item["step"], item["reason"]) == (
        bad.id,
        "reminder",
        "failed: ValueError: a stored value no letter can hold",
    )
    arts = _run_artifacts(state.state_details.flow_run_id)
    summary = str(arts["chase-run-summary"].data)  # type: ignore[attr-defined]
    assert "1 incident(s): item(s) skipped" in summary
    assert (
        f"| risk | {bad.id} | formal_notification | reminder | failed: ValueError: a stored value no letter can hold |"
        in summary
    )
    table = arts["chase-skipped"].data  # type: ignore[attr-defined]
    table = json.loads(table) if isinstance(table, str) else table
    assert [row["id"] for row in table] == [bad.id]
