"""The ways in: a Trust user finds every portal page from the pages they land on, and only the
ones they may use. An item's workspaces (states/views/item.py WORKSPACES): the risk's *respond*
link only while the Trust is asked for a response, and only for the roles that may send it (not
staff, not a commissioner); staff see the staff pages, the Trust its portal pages. The portal's
service sections link the service's action plans, and a maternity service's board reviews."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models import Risk
from states import engine
from states.clock import FixedClock
from tests.factories import MRH, person
from tests.support_perinatal import maternity  # noqa: F401 (a fixture)
from tests.support_web import signed_in


def _links(html: str) -> set[str]:
    return set(re.findall(r'href="(/[^"#?]*)', html))


def test_the_respond_link_is_for_the_trust_while_a_response_is_asked(
    db_url: str, db: Engine, session: Session, services: dict[str, int], raise_risk: Callable[..., Risk],
    clock: FixedClock,
) -> None:  # fmt: skip
    risk = raise_risk("SC", service=MRH)
    respond, responses = f"/risks/{risk.id}/respond", f"/risks/{risk.id}/responses"
    lead, _ = signed_in(db_url, db, "Lee Lead", ("service-lead",), scope="service", scope_id=services[MRH])
    staff, _ = signed_in(db_url, db, "Nina Manager", ("network-manager", "network-office"))
    commissioner, _ = signed_in(db_url, db, "Cora Commissioner", ("responsible-commissioner",), scope="service",
                                scope_id=services[MRH])  # fmt: skip
    with lead, staff, commissioner:
        before = _links(lead.get(f"/items/risk/{risk.id}").text)
        assert responses in before and respond not in before  # identified: nothing asked of the Trust yet
        engine.fire(session, "risk", risk.id, "send_formal_notification", principal=person("nm", "network-manager"),
                    clock=clock)  # fmt: skip
        session.commit()
        asked = _links(lead.get(f"/items/risk/{risk.id}").text)
        assert respond in asked and responses in asked
        assert lead.get(respond).status_code == 200
        seen = _links(staff.get(f"/items/risk/{risk.id}").text)
        assert responses in seen and respond not in seen  # staff judge; they do not answer for the Trust
        watched = _links(commissioner.get(f"/items/risk/{risk.id}").text)
        assert responses in watched and respond not in watched


def test_a_service_section_links_its_plans_and_a_maternity_services_board_reviews(
    db_url: str, db: Engine, session: Session, services: dict[str, int], maternity: int
) -> None:
    mat = maternity
    lead, _ = signed_in(db_url, db, "Mo Midwife", ("service-lead",), scope="service", scope_id=mat)
    trauma, _ = signed_in(db_url, db, "Tia Trauma", ("service-lead",), scope="service", scope_id=services[MRH])
    with lead, trauma:
        mine = _links(lead.get(f"/portal/services/{mat}").text)
        assert {f"/services/{mat}/plans", f"/portal/perinatal/{mat}"} <= mine
        assert lead.get(f"/services/{mat}/plans").status_code == 200
        assert lead.get(f"/portal/perinatal/{mat}").status_code == 200
        other = _links(trauma.get(f"/portal/services/{services[MRH]}").text)
        assert f"/services/{services[MRH]}/plans" in other
        assert not any(link.startswith("/portal/perinatal/") for link in other)  # not a maternity service


def test_staff_see_the_staff_workspaces_and_the_trust_its_portal_pages(
    db_url: str, db: Engine, session: Session, services: dict[str, int]
) -> None:
    from tests.support_reports import report_of_visit  # lazy: builds a whole visit, only this test needs it

    _, report = report_of_visit(session, services)
    session.commit()
    staff, _ = signed_in(db_url, db, "Nina Manager", ("network-manager", "network-office"))
    ceo, _ = signed_in(db_url, db, "Carl Chief", ("chief-executive",), scope="organisation",
                       scope_id=_org(session, services))  # fmt: skip
    with staff, ceo:
        seen = _links(staff.get(f"/items/report/{report.id}").text)
        assert {f"/reports/{report.id}/draft", f"/reports/{report.id}/accuracy"} <= seen
        assert f"/portal/reports/{report.id}/appeal" not in seen
        theirs = _links(ceo.get(f"/items/report/{report.id}").text)
        assert {f"/portal/reports/{report.id}/accuracy", f"/portal/reports/{report.id}/appeal"} <= theirs
        assert f"/reports/{report.id}/draft" not in theirs


def _org(session: Session, services: dict[str, int]) -> int:
    from models import Service

    svc = session.get(Service, services[MRH])
    assert svc is not None
    return svc.organisation_id
