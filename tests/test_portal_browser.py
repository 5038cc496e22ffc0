"""The Trust portal's main journeys in real Chromium (issue 16, "Tests"), served by one real
uvicorn over a training database standing at Tue 9 Feb 2027, with axe-core on every page (no
serious or critical violation) and a screenshot of each under var/screenshots/portal-*.png:

(a) an invited Service Lead opens the link from the invitation letter, chooses a password, sees
    what is asked of the service (/portal) and sends the formal response to an IR with a file;
(b) the Chief Executive appeals against the published report; the Service Lead is told why not;
(c) the service downloads its self-assessment spreadsheet and uploads it with errors (each shown
    against its row and column, nothing stored), then without;
(d) the Network Manager sees the response waiting to be judged in My work and judges it adequate.

The world is built once through the use cases (tests/support_portal_browser.py); each journey
also stands alone (run on its own, it makes what an earlier one would have)."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from models import Risk
from models.accounts import User
from models.portal import RiskResponse, Upload
from models.selfassessment import SelfAssessment, SelfAssessmentItem
from models.tables import Appeal, RefusedAttempt
from states.clock import FixedClock
from states.services import responses, signin
from tests.support_browser import body_text, sign_in, status
from tests.support_portal_browser import (
    MRH_TRUST,
    NM_EMAIL,
    PASSWORD,
    TODAY,
    Axe,
    World,
    download,
    fill_xlsx,
    follow,
    table_rows,
    wait_url,
    world,  # noqa: F401 (a pytest fixture)
)
from tests.support_portal_forms import PDF

RESPONSE = (
    "The risk is on the Trust and Division risk registers.\n"
    "Interim actions: a second consultant is resident on call from tonight."
)
STATEMENT = "The panel misread the CT reporting rota: a consultant radiologist reported every scan within the hour."
# The example Major Trauma Centre set (docs/standards-example.yaml): (status, figure, comments, evidence).
GOOD = {
    "1.1": ("Met", None, "A consultant trauma team leader on the rota 24/7", "Trauma rota 2026"),
    "1.2": (None, 93, "", "TARN dashboard Q3"),
    "1.3": ("Partially Met", 85, "Audited monthly", "Rehabilitation audit"),
    "2.1": ("Met", None, "", "Registry submissions log"),
}
BAD = {**GOOD, "1.2": ("Unmet", 93, "", "TARN dashboard Q3"), "2.1": ("Met", None, "", None)}


def _button(driver: Any, text: str) -> Any:
    return driver.find_element("xpath", f"//main//button[normalize-space()={text!r}]")


def _summary_target(driver: Any) -> Any:
    """The element the error summary's (first) link points at."""
    href = driver.find_element("css selector", ".nhsuk-error-summary a").get_attribute("href")
    found = driver.find_elements("id", href.partition("#")[2])
    assert found, f"the error summary links to {href}: no such element on the page"
    return found[0]


def _lead(w: World) -> Any:
    """The Service Lead's browser, signed in: by the invitation in (a); otherwise (run alone)
    the password is set as the invitation would have and the lead signs in."""
    driver = w.driver("lead")
    driver.get(w.app.url("/portal"))
    if "/sign-in" in driver.current_url:
        with Session(w.db) as s:
            user = s.exec(select(User).where(User.email == w.lead_email)).one()
            if user.password_hash is None:
                from states.services.accounts import principal_for  # lazy: only when (a) did not run first

                signin.set_password(s, principal_for(s, user, "test"), FixedClock(TODAY), None, PASSWORD)
                s.commit()
        sign_in(driver, w.app, w.lead_email, PASSWORD)
        wait_url(driver, w.app.url("/portal"))
    return driver


def _risk(w: World) -> Risk:
    with Session(w.db) as s:
        row = s.get(Risk, w.risk)
        assert row is not None
        return row


def test_a_an_invited_service_lead_chooses_a_password_sees_what_is_asked_and_responds_with_a_file(
    world: World,
) -> None:
    w, seen = world, Axe()
    driver = w.driver("lead")
    driver.get(w.link)
    assert status(driver) == 200 and "Choose your password" in body_text(driver)
    assert w.lead_email in body_text(driver)
    seen.check(driver, "portal-invitation")
    # Two different passwords: told so beside the form, nothing set.
    driver.find_element("id", "password").send_keys(PASSWORD)
    driver.find_element("id", "confirm").send_keys(PASSWORD + " again")
    follow(driver, driver.find_element("id", "password").find_element("xpath", "ancestor::form//button"))
    assert status(driver) == 422 and "not the same" in body_text(driver)
    seen.check(driver, "portal-invitation-mismatch")
    with Session(w.db) as s:
        assert s.exec(select(User.password_hash).where(User.email == w.lead_email)).one() is None
    for box in ("password", "confirm"):
        driver.find_element("id", box).clear()
        driver.find_element("id", box).send_keys(PASSWORD)
    follow(driver, driver.find_element("id", "password").find_element("xpath", "ancestor::form//button"))
    # Signed in, and sent to what is asked of the service.
    assert driver.current_url == w.app.url("/portal"), body_text(driver)[:300]
    assert w.lead_name in body_text(driver) and "What is asked of us" in driver.find_element("tag name", "h1").text
    seen.check(driver, "portal-what-is-asked")
    row = driver.find_element("css selector", f"main a[href='/items/risk/{w.risk}']").find_element(
        "xpath", "ancestor::tr"
    )
    assert "No consultant trauma team leader" in row.text and "response" in row.text.lower(), row.text
    # The link works once: opened again, it is the one "not valid" page.
    other = w.driver("stranger")
    other.get(w.link)
    assert status(other) == 404 and "This invitation link is not valid" in body_text(other)
    seen.check(other, "portal-invitation-used")

    follow(driver, row.find_element("css selector", f"a[href='/items/risk/{w.risk}']"))
    assert driver.current_url == w.app.url(f"/items/risk/{w.risk}")
    seen.check(driver, "portal-risk")
    respond = driver.find_element("css selector", f"#workspaces a[href='/risks/{w.risk}/respond']")
    follow(driver, respond)
    assert "The Trust's formal response" in driver.find_element("tag name", "h1").text
    seen.check(driver, "portal-respond")
    # Sent with no text: the form says why, beside the box; nothing stored.
    follow(driver, _button(driver, "Send the response"))
    assert status(driver) in (400, 422) and "There is a problem" in body_text(driver)
    assert driver.find_elements("id", "field-text-error"), body_text(driver)[:600]
    assert _summary_target(driver) == driver.find_element("id", "field-text")
    seen.check(driver, "portal-respond-error")
    assert _risk(w).state == "awaiting_response"

    plan = w.tmp / "interim-plan.pdf"
    plan.write_bytes(PDF)
    driver.find_element("id", "field-text").send_keys(RESPONSE)
    driver.find_element("id", "field-files").send_keys(str(plan))
    follow(driver, _button(driver, "Send the response"))
    assert driver.current_url == w.app.url(f"/items/risk/{w.risk}?done=submit_response"), body_text(driver)[:600]
    assert "Submit response: done" in driver.find_element("css selector", "[role=status]").text
    seen.check(driver, "portal-risk-responded")
    assert _risk(w).state == "response_received"
    with Session(w.db) as s:
        (sent,) = s.exec(select(RiskResponse).where(RiskResponse.risk_id == w.risk)).all()
        lead = s.exec(select(User).where(User.email == w.lead_email)).one()
        assert (sent.submitted_by, sent.submitted_role, sent.text) == (lead.id, "service-lead", RESPONSE)
        (upload,) = s.exec(select(Upload).where(Upload.item_kind == "risk", Upload.item_id == w.risk)).all()
        assert (upload.filename, upload.content_type, upload.data) == ("interim-plan.pdf", "application/pdf", PDF)

    follow(driver, driver.find_element("css selector", f"#workspaces a[href='/risks/{w.risk}/responses']"))
    text = body_text(driver)
    assert "Interim actions: a second consultant is resident on call" in text and w.lead_name in text
    assert driver.find_elements("css selector", f"main a[href='/uploads/{upload.id}']"), text[:600]
    seen.check(driver, "portal-responses")
    seen.assert_clean()


def test_b_the_chief_executive_appeals_and_the_service_lead_is_told_why_not(world: World) -> None:
    w, seen = world, Axe()
    report, sc = w.appeal.report_id, w.appeal.sc
    ceo = w.driver("ceo")
    sign_in(ceo, w.app, w.ceo_email, PASSWORD)
    assert ceo.current_url == w.app.url("/portal"), body_text(ceo)[:300]
    follow(ceo, ceo.find_element("css selector", f"main a[href='/items/report/{report}']"))
    seen.check(ceo, "portal-report")
    follow(ceo, ceo.find_element("css selector", f"#workspaces a[href='/portal/reports/{report}/appeal']"))
    assert ceo.current_url == w.app.url(f"/portal/reports/{report}/appeal")
    assert "Tue 02 Mar 2027" in ceo.find_element("id", "closes-on").text  # 4 weeks after publication
    boxes = [b.get_attribute("value") for b in ceo.find_elements("css selector", "input[name=grounds]")]
    assert boxes == [f"risk-{w.appeal.ir}", f"risk-{sc}", "compliance"], boxes  # not the general concern
    seen.check(ceo, "portal-appeal")
    # No grounds chosen: refused on the page, the statement kept; nothing stored.
    ceo.find_element("id", "statement").send_keys(STATEMENT)
    follow(ceo, _button(ceo, "Submit the appeal"))
    assert status(ceo) in (400, 422) and "There is a problem" in body_text(ceo)
    assert "no grounds" in body_text(ceo), body_text(ceo)[:600]
    assert ceo.find_element("id", "statement").get_attribute("value") == STATEMENT
    # The summary's link takes the Chief Executive to what is wrong: the grounds, not the statement.
    target = _summary_target(ceo)
    seen.expect(
        bool(target.find_elements("xpath", "ancestor-or-self::fieldset[.//input[@name='grounds']]")),
        f"portal-appeal-error: the error summary links to #{target.get_attribute('id')}, not to the grounds",
    )
    seen.check(ceo, "portal-appeal-error")

    evidence = w.tmp / "ct-reporting-rota.pdf"
    evidence.write_bytes(PDF)
    ceo.find_element("css selector", f"label[for='ground-risk-{sc}']").click()
    ceo.find_element("css selector", "input[type=file][name=files]").send_keys(str(evidence))
    follow(ceo, _button(ceo, "Submit the appeal"))
    assert ceo.current_url == w.app.url(f"/portal/reports/{report}/appeal?done=1"), body_text(ceo)[:600]
    assert "Your appeal is submitted" in body_text(ceo)
    appeals = ceo.find_element("id", "appeals").text
    assert "ct-reporting-rota.pdf" in appeals and "submitted" in appeals, appeals
    seen.check(ceo, "portal-appeal-submitted")
    with Session(w.db) as s:
        (appeal,) = s.exec(select(Appeal).where(Appeal.report_id == report)).all()
        assert (appeal.state, appeal.appellant_contact_id, appeal.grounds) == (
            "submitted",
            w.ceo_contact,
            [{"risk_id": sc}],
        )
        refusals_before = len(s.exec(select(RefusedAttempt).where(RefusedAttempt.kind == "appeal")).all())

    # The Service Lead may read the page, sees why they cannot appeal, and gets no form.
    lead = _lead(w)
    lead.get(w.app.url(f"/portal/reports/{report}/appeal"))
    assert status(lead) == 200
    why = lead.find_element("id", "why-not").text
    assert "You cannot appeal" in why and f"Only the Chief Executive of {MRH_TRUST} may appeal" in why, why
    assert not lead.find_elements("css selector", "input[name=grounds]")
    assert "ct-reporting-rota.pdf" in lead.find_element("id", "appeals").text  # the Trust's appeal, shown
    seen.check(lead, "portal-appeal-why-not")
    with Session(w.db) as s:
        assert len(s.exec(select(Appeal)).all()) == 1
        assert len(s.exec(select(RefusedAttempt).where(RefusedAttempt.kind == "appeal")).all()) == refusals_before
    seen.assert_clean()


def test_c_the_service_uploads_its_self_assessment_with_errors_then_without(world: World) -> None:
    w, seen = world, Axe()
    page = w.app.url(f"/portal/selfassessments/{w.assessment}")
    driver = _lead(w)
    driver.get(page)
    assert status(driver) == 200 and "Self-assessment 2026" in driver.find_element("tag name", "h1").text
    assert "working days left" in driver.find_element("id", "due").text
    seen.check(driver, "portal-selfassessment")
    blank = download(driver, driver.find_element("id", "download"), w.downloads, ".xlsx")

    def upload(answers: dict[str, tuple[Any, Any, Any, Any]], name: str) -> None:
        driver.find_element("id", "field-upload").send_keys(str(fill_xlsx(blank, w.tmp / name, answers)))
        follow(driver, _button(driver, "Upload the spreadsheet"))

    def stored() -> tuple[str, int, int]:
        with Session(w.db) as s:
            row = s.get(SelfAssessment, w.assessment)
            assert row is not None
            items = s.exec(select(SelfAssessmentItem).where(SelfAssessmentItem.assessment_id == w.assessment))
            return row.state, row.version, sum(1 for i in items if i.self_status is not None)

    before = stored()
    upload(BAD, "return-with-errors.xlsx")
    assert status(driver) == 422 and "There is a problem" in body_text(driver)
    problems = table_rows(driver, "problems")
    assert ["3", "Self-Assessment"] in [p[:2] for p in problems], problems
    assert ["5", "Evidence location"] in [p[:2] for p in problems], problems
    assert any(p[0] == "3" and "contradicts the figure 93" in p[2] for p in problems), problems
    assert any(p[0] == "5" and "missing" in p[2] for p in problems), problems
    summary = driver.find_element("css selector", ".nhsuk-error-summary")
    assert "Row 3" in summary.text and "Row 5" in summary.text, summary.text
    target = summary.find_element("css selector", "a").get_attribute("href")
    assert target.endswith("#field-upload") and driver.find_elements("id", "field-upload"), target
    seen.check(driver, "portal-selfassessment-errors")
    assert stored() == before  # nothing from the refused file

    upload(GOOD, "return.xlsx")
    assert driver.current_url == page + "?done=upload", body_text(driver)[:600]
    assert "Your spreadsheet was received" in driver.find_element("id", "banner").text
    answers = {r[0]: r[3] for r in table_rows(driver, "standards")}
    assert answers == {"1.1": "Met", "1.2": "Met (93)", "1.3": "Partially Met (85)", "2.1": "Met"}, answers
    seen.check(driver, "portal-selfassessment-received")
    state, version, answered = stored()
    assert (state, answered) == ("received", 4) and version > before[1]
    seen.assert_clean()


def test_d_the_network_manager_sees_the_response_waiting_and_judges_it_adequate(world: World) -> None:
    w, seen = world, Axe()
    if _risk(w).state == "awaiting_response":  # run on its own: the response (a) would have sent
        with Session(w.db) as s:
            lead = s.exec(select(User).where(User.email == w.lead_email)).one()
            from states.services.accounts import principal_for  # lazy: only when (a) did not run first

            who = principal_for(s, lead, "test")
        responses.submit(w.db, who, w.risk, RESPONSE, [("interim-plan.pdf", PDF)], FixedClock(TODAY), _risk(w).version)
    driver = w.driver("nm")
    sign_in(driver, w.app, NM_EMAIL, PASSWORD)
    assert driver.current_url == w.app.url("/"), body_text(driver)[:300]
    row = _my_work_row(driver, w)
    assert "judge" in row.text.lower() and "Midland Royal" in row.text, row.text
    assert re.search(r"\b5\s*$", row.text), row.text  # 5 working days to judge it, from today
    seen.check(driver, "portal-nm-my-work")

    follow(driver, row.find_element("css selector", f"a[href='/items/risk/{w.risk}']"))
    seen.check(driver, "portal-nm-risk")
    responses_link = driver.find_element("css selector", f"#workspaces a[href='/risks/{w.risk}/responses']")
    assert not driver.find_elements("css selector", f"#workspaces a[href='/risks/{w.risk}/respond']")
    follow(driver, responses_link)
    assert "Interim actions: a second consultant is resident on call" in body_text(driver)
    seen.check(driver, "portal-nm-responses")
    driver.back()
    follow(
        driver, driver.find_element("css selector", f"#triggers a[href='/items/risk/{w.risk}/act/response_adequate']")
    )
    seen.check(driver, "portal-nm-act-adequate")
    driver.find_element("id", "field-note").send_keys("Registers updated; interim cover in place.")
    follow(driver, driver.find_element("css selector", "main form button[type=submit]"))
    if driver.find_elements("id", "confirm"):  # check your answers first
        seen.check(driver, "portal-nm-check-adequate")
        follow(driver, driver.find_element("id", "confirm"))
    assert driver.current_url == w.app.url(f"/items/risk/{w.risk}?done=response_adequate"), body_text(driver)[:600]
    assert "monitoring" in driver.find_element("css selector", "[role=status]").text
    seen.check(driver, "portal-nm-judged")
    assert _risk(w).state == "monitoring"
    with Session(w.db) as s:
        judged = s.exec(
            select(RiskResponse).where(RiskResponse.risk_id == w.risk).order_by(col(RiskResponse.id).desc())
        ).first()
        assert judged is not None and (judged.judgement, judged.judged_by) == ("adequate", w.nm.user_id)
    driver.get(w.app.url("/"))
    left = [a.find_element("xpath", "ancestor::tr").text for a in
            driver.find_elements("css selector", f"#deadlines a[href='/items/risk/{w.risk}']")]  # fmt: skip
    assert not [t for t in left if "judge" in t.lower()], left  # judged: no longer waiting in My work
    seen.assert_clean()


def _my_work_row(driver: Any, w: World) -> Any:
    """The row of My work (any of its pages) that links to the risk."""
    while True:
        found = driver.find_elements("css selector", f"#deadlines a[href='/items/risk/{w.risk}']")
        if found:
            return found[0].find_element("xpath", "ancestor::tr")
        more = driver.find_elements("css selector", "a[rel=next], .nhsuk-pagination__link--next")
        assert more, f"the response to judge is not in My work: {body_text(driver)[:1500]}"
        follow(driver, more[0])
