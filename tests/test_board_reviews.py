"""The Trust board's monthly perinatal review in the portal (issue 16 item 9; seed 004 Appendix 2):
recorded by the Trust, versioned per month, seen as a trend by the Trust and the LMS; a measure
outside its configured threshold proposes a concern the network raises or dismisses."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Service
from models.perinatal import PerinatalConcern
from models.portal import BoardReview, MeasureAlert
from states.clock import FixedClock, SystemClock, local_date
from states.errors import InvalidInput, NotFound, PermissionDenied
from states.measures import MEASURES, thresholds
from states.principal import Principal
from states.services import board_reviews as br
from states.views import board_reviews as view
from tests.factories import MRH
from tests.support_accounts import account
from tests.support_perinatal import maternity  # noqa: F401 (pytest fixture)
from tests.support_web import csrf_of, signed_in

DEC = date(2026, 12, 1)  # the conftest clock's month (Fri 11 Dec 2026)
NOV = date(2026, 11, 1)
MONTH: dict[str, Any] = {
    "training_compliance_pct": "95",
    "midwife_staffing_fill_pct": "93.5%",
    "incidents_moderate_or_above": "2",
    "in_mssp": "no",
    "cqc_overall": "good",
    "incidents_actions": "two reviews under way",
}


def _where(session: Session, service_id: int) -> dict[str, int]:
    svc = session.get(Service, service_id)
    assert svc is not None
    return {"organisation": svc.organisation_id, "network": svc.network_id}


def _lead(db: Engine, maternity: int, name: str = "Mae Lead") -> Principal:
    return account(db, name, ("service-lead",), scope="service", scope_id=maternity)


def _staff(db: Engine, session: Session, maternity: int) -> Principal:
    return account(db, "Nina NM", ("network-manager",), scope="network", scope_id=_where(session, maternity)["network"])


def _count(session: Session, model: Any) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(model)).one()


def test_a_month_recorded_again_is_its_next_version_and_the_trend_shows_the_latest(
    db: Engine, session: Session, maternity: int, clock: FixedClock
) -> None:
    lead = _lead(db, maternity)
    first = br.record_board_review(session, lead, maternity, NOV, date(2026, 12, 3), MONTH, clock)
    session.commit()
    again = br.record_board_review(
        session,
        lead,
        maternity,
        date(2026, 11, 17),
        date(2026, 12, 10),
        {**MONTH, "training_compliance_pct": 97},
        clock,
    )
    session.commit()
    assert (first.version, again.version, again.month) == (1, 2, NOV)
    assert first.measures["midwife_staffing_fill_pct"] == 93.5 and first.measures["in_mssp"] is False
    assert first.measures["cqc_overall"] == "Good" and first.measures["incidents_moderate_or_above"] == 2
    t = view.trend(session, lead, maternity, 3, clock=clock)
    assert [m["month"] for m in t["months"]] == [date(2026, 10, 1), NOV, DEC]
    assert t["months"][1]["version"] == 2
    row = next(r for r in t["measures"] if r["key"] == "training_compliance_pct")
    assert [c["display"] for c in row["cells"]] == ["", "97%", ""]
    assert row["threshold"] == "< 90"
    events = session.exec(select(AuditEvent).where(AuditEvent.kind == "board_review")).all()
    assert [(e.trigger, e.role, e.user_id, e.data["version"]) for e in events] == [
        ("record_board_review", "service-lead", lead.user_id, 1),
        ("record_board_review", "service-lead", lead.user_id, 2),
    ]
    assert {m.key for m in MEASURES} >= {
        "cqc_overall", "cqc_safe", "cqc_effective", "cqc_caring", "cqc_well_led", "cqc_responsive", "in_mssp",
        "perinatal_deaths_reviewed", "hsib_eligible_cases", "incidents_moderate_or_above", "training_compliance_pct",
        "obstetric_cover_hours", "rota_gaps", "midwife_staffing_fill_pct", "service_user_feedback", "staff_feedback",
        "external_concerns", "coroner_reg28_reports", "cnst_safety_actions_met", "midwives_recommend_pct",
        "og_trainees_supervision_pct",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("measures", "month", "reviewed", "says"),
    [
        ({"training_compliance_pct": "150"}, NOV, date(2026, 12, 1), "outside 0 to 100"),
        ({"training_compliance_pct": "nan"}, NOV, date(2026, 12, 1), "is not a number"),
        ({"training_compliance_pct": "1e400"}, NOV, date(2026, 12, 1), "is not a number"),
        ({"rota_gaps": "-1"}, NOV, date(2026, 12, 1), "outside 0 to"),
        ({"rota_gaps": "2.5"}, NOV, date(2026, 12, 1), "not a whole number"),
        ({"rota_gaps": True}, NOV, date(2026, 12, 1), "give a number"),
        ({"rota_gaps": 10**40}, NOV, date(2026, 12, 1), "far too large"),
        ({"cnst_safety_actions_met": "11"}, NOV, date(2026, 12, 1), "outside 0 to 10"),
        ({"in_mssp": "perhaps"}, NOV, date(2026, 12, 1), "answer yes or no"),
        ({"cqc_safe": "Excellent"}, NOV, date(2026, 12, 1), "use one of Outstanding"),
        ({"staff_feedback": "a\x00b"}, NOV, date(2026, 12, 1), "control character"),
        ({"staff_feedback": "x" * 5000}, NOV, date(2026, 12, 1), "over the limit"),
        ({"bogus": "1"}, NOV, date(2026, 12, 1), "unknown measure"),
        ({}, NOV, date(2026, 12, 1), "no measure given"),
        ({"rota_gaps": "1"}, date(2027, 1, 1), date(2026, 12, 1), "has not begun"),
        ({"rota_gaps": "1"}, date(1999, 12, 1), date(2026, 12, 1), "before 2000"),
        ({"rota_gaps": "1"}, NOV, date(2026, 10, 31), "before the month reviewed began"),
        ({"rota_gaps": "1"}, NOV, date(2026, 12, 12), "after today"),
    ],
)
def test_hostile_values_are_refused_and_nothing_is_stored(
    db: Engine, session: Session, maternity: int, clock: FixedClock, measures: dict[str, Any], month: date,
    reviewed: date, says: str,
) -> None:  # fmt: skip
    lead = _lead(db, maternity)
    with pytest.raises(InvalidInput, match=says):
        br.record_board_review(session, lead, maternity, month, reviewed, measures, clock)
    session.rollback()
    assert _count(session, BoardReview) == 0
    assert _count(session, AuditEvent) == 0


def test_who_records_and_who_sees(
    db: Engine, session: Session, maternity: int, services: dict[str, int], clock: FixedClock
) -> None:
    where = _where(session, maternity)
    ceo = account(db, "Chris Exec", ("chief-executive",), scope="organisation", scope_id=where["organisation"])
    assert br.record_board_review(session, ceo, maternity, NOV, date(2026, 12, 1), MONTH, clock).version == 1
    session.commit()
    nurse = account(db, "Lee Nurse", ("lead-nurse",), scope="service", scope_id=maternity)
    with pytest.raises(PermissionDenied):
        br.record_board_review(session, nurse, maternity, NOV, date(2026, 12, 1), MONTH, clock)
    office = account(db, "Olly Office", ("network-office",), scope="network", scope_id=where["network"])
    with pytest.raises(PermissionDenied):  # the Trust records its board's review, not the network
        br.record_board_review(session, office, maternity, NOV, date(2026, 12, 1), MONTH, clock)
    other = account(db, "Other Exec", ("chief-executive",), scope="service", scope_id=services["Valley Burns Service"])
    for act in (
        lambda: br.record_board_review(session, other, maternity, NOV, date(2026, 12, 1), MONTH, clock),
        lambda: view.trend(session, other, maternity, clock=clock),
        lambda: view.review_form(session, other, maternity, NOV),
        lambda: br.record_board_review(session, other, 2**40, NOV, date(2026, 12, 1), MONTH, clock),
    ):
        with pytest.raises(NotFound):
            act()
    lms = account(db, "Lyn LMS", ("lms-lead",), scope="service", scope_id=maternity)
    assert view.trend(session, lms, maternity, clock=clock)["months"][-2]["version"] == 1
    lms_elsewhere = account(db, "Lou LMS", ("lms-lead",), scope="service", scope_id=services[MRH])
    with pytest.raises(NotFound):
        view.trend(session, lms_elsewhere, maternity, clock=clock)
    mrh_lead = account(db, "Mo Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    with pytest.raises(InvalidInput, match="board reviews are recorded for a service whose kind"):
        br.record_board_review(session, mrh_lead, services[MRH], NOV, date(2026, 12, 1), MONTH, clock)


def test_a_measure_outside_its_threshold_proposes_a_concern_raised_or_dismissed_by_the_network(
    db: Engine, session: Session, maternity: int, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "thresholds.json"
    config.write_text(json.dumps({"rota_gaps": ">= 3", "in_mssp": "= yes", "incidents_moderate_or_above": None}))
    monkeypatch.setenv("PEERWATCH_PERINATAL_THRESHOLDS", str(config))
    assert set(thresholds()) == {"training_compliance_pct", "midwife_staffing_fill_pct", "rota_gaps", "in_mssp"}
    lead, staff = _lead(db, maternity), _staff(db, session, maternity)
    measures = {
        **MONTH,
        "training_compliance_pct": "85",
        "rota_gaps": "3",
        "in_mssp": "yes",
        "incidents_moderate_or_above": "9",
    }
    br.record_board_review(session, lead, maternity, NOV, date(2026, 12, 1), measures, clock)
    session.commit()
    alerts = {a["measure"]: a for a in view.open_alerts(session, staff)}
    assert set(alerts) == {"training_compliance_pct", "rota_gaps", "in_mssp"}  # incidents: default dropped
    assert (
        alerts["training_compliance_pct"]["value"] == "85%" and alerts["training_compliance_pct"]["threshold"] == "< 90"
    )
    assert alerts["in_mssp"]["value"] == "Yes"
    assert view.open_alerts(session, lead) == []  # the network's list, not the Trust's
    t = view.trend(session, lead, maternity, 2, clock=clock)
    assert t["outside"] == 3

    # version 2: training back within its threshold; the proposal stands until the network decides
    br.record_board_review(
        session, lead, maternity, NOV, date(2026, 12, 2), {**measures, "training_compliance_pct": "91"}, clock
    )
    session.commit()
    assert {a["measure"] for a in view.open_alerts(session, staff)} == {
        "training_compliance_pct",
        "rota_gaps",
        "in_mssp",
    }

    raised = br.raise_alert(session, staff, alerts["rota_gaps"]["id"], clock)
    session.commit()
    concern = session.get(PerinatalConcern, raised.concern_id)
    assert concern is not None and concern.state == "provider" and concern.service_id == maternity
    assert concern.title.startswith("Obstetric and midwifery rota gaps: 3 in November 2026")
    with pytest.raises(InvalidInput, match="give the reason"):
        br.dismiss_alert(session, staff, alerts["in_mssp"]["id"], "  ", clock)
    with pytest.raises(PermissionDenied):
        br.dismiss_alert(session, lead, alerts["in_mssp"]["id"], "not ours to judge", clock)
    session.rollback()
    dismissed = br.dismiss_alert(session, staff, alerts["in_mssp"]["id"], "already known: in MSSP since 2025", clock)
    session.commit()
    assert (dismissed.status, dismissed.reason, dismissed.decided_by) == (
        "dismissed",
        "already known: in MSSP since 2025",
        staff.user_id,
    )
    assert [a["measure"] for a in view.open_alerts(session, staff)] == ["training_compliance_pct"]
    with pytest.raises(InvalidInput, match="only a proposed one"):
        br.raise_alert(session, staff, alerts["in_mssp"]["id"], clock)
    # a decided alert stands when the month is recorded again; training (85 again) is still the one proposal
    br.record_board_review(session, lead, maternity, NOV, date(2026, 12, 3), {**measures, "rota_gaps": "0"}, clock)
    session.commit()
    session.expire_all()
    assert session.get(MeasureAlert, raised.id).status == "raised"  # type: ignore[union-attr]
    trail = session.exec(select(AuditEvent.trigger).where(AuditEvent.kind == "measure_alert")).all()
    assert sorted(trail) == sorted(["propose_concern"] * 3 + ["raise_concern", "dismiss"])


@pytest.mark.parametrize(
    "setting",
    [
        '{"training_compliance_pct": "about 90"}',
        '{"staff_feedback": "< 3"}',
        '{"nope": "< 3"}',
        "[1]",
        "{",
        "/no/such/file",
    ],
)
def test_a_malformed_threshold_setting_is_refused(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv("PEERWATCH_PERINATAL_THRESHOLDS", setting)
    with pytest.raises(InvalidInput, match="PEERWATCH_PERINATAL_THRESHOLDS"):
        thresholds()


# ------------------------------------------------------------------ the pages


def test_the_pages_record_a_review_show_the_trend_and_let_the_network_raise_or_dismiss(
    db_url: str, db: Engine, session: Session, maternity: int, services: dict[str, int]
) -> None:
    today = local_date(SystemClock().now())
    this_month = today.strftime("%Y-%m")
    client, _ = signed_in(db_url, db, "Mae Lead", ("service-lead",), scope="service", scope_id=maternity)
    form = client.get(f"/portal/perinatal/{maternity}/review")
    assert form.status_code == 200 and 'name="m-training_compliance_pct"' in form.text
    csrf = csrf_of(form.text)
    bad = client.post(
        f"/portal/perinatal/{maternity}/review",
        data={
            "csrf_token": csrf,
            "month": this_month,
            "reviewed_on": today.isoformat(),
            "m-training_compliance_pct": "120",
            "m-rota_gaps": "x",
        },
    )
    assert bad.status_code == 422
    assert "outside 0 to 100" in bad.text and 'href="#field-m-rota_gaps"' in bad.text and 'value="120"' in bad.text
    assert _count(session, BoardReview) == 0
    done = client.post(
        f"/portal/perinatal/{maternity}/review",
        data={
            "csrf_token": csrf,
            "month": this_month,
            "reviewed_on": today.isoformat(),
            "m-training_compliance_pct": "80",
            "m-in_mssp": "no",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/portal/perinatal/{maternity}?done=review"
    trend = client.get(done.headers["location"])
    assert trend.status_code == 200 and "The board review was recorded" in trend.text
    assert "80%" in trend.text and ">outside</strong>" in trend.text  # marked in text, not only colour
    again = client.get(f"/portal/perinatal/{maternity}/review?month={this_month}")
    assert 'value="80"' in again.text and "version 2" in again.text

    staff, _ = signed_in(
        db_url, db, "Nina NM", ("network-manager",), scope="network", scope_id=_where(session, maternity)["network"]
    )
    page = staff.get("/perinatal/alerts")
    assert page.status_code == 200 and "Training compliance" in page.text and "80%" in page.text
    alert_id = session.exec(select(MeasureAlert.id)).one()
    assert (
        staff.post(
            f"/perinatal/alerts/{alert_id}/dismiss", data={"csrf_token": csrf_of(page.text), "reason": ""}
        ).status_code
        == 422
    )
    raised = staff.post(
        f"/perinatal/alerts/{alert_id}/raise",
        data={"csrf_token": csrf_of(page.text), "title": ""},
        follow_redirects=False,
    )
    assert raised.status_code == 303
    assert "A perinatal concern was raised" in staff.get(raised.headers["location"]).text
    session.expire_all()
    assert session.get(MeasureAlert, alert_id).concern_id is not None  # type: ignore[union-attr]

    assert client.get("/perinatal/alerts").status_code == 403  # the Trust does not judge its own alerts
    other, _ = signed_in(db_url, db, "Other Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    other_csrf = csrf_of(other.get("/account/tokens").text)
    for path in (
        f"/portal/perinatal/{maternity}",
        f"/portal/perinatal/{maternity}/review",
        "/portal/perinatal/99999999",
        "/portal/perinatal/abc",
    ):
        assert other.get(path).status_code == 404
    assert other.post(f"/portal/perinatal/{maternity}/review", data={"csrf_token": other_csrf, "month": this_month,
                      "reviewed_on": today.isoformat(), "m-rota_gaps": "1"}).status_code == 404  # fmt: skip
    assert (
        staff.post(
            f"/perinatal/alerts/{2**40}/dismiss", data={"csrf_token": csrf_of(page.text), "reason": "x"}
        ).status_code
        == 404
    )
    assert _count(session, BoardReview) == 1
