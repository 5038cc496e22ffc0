"""The world of tests/test_portal_browser.py, built once for the module through the use cases:
a training database standing at one day (the web acts on it), the reference data, a Service Lead
invited through the outbox (the link read from the letter as a mail client would), a Chief
Executive and a Network Manager with passwords, a published report in its appeal window, an IR
formally notified, and a self-assessment circulated to the service. The server is one uvicorn
for the module; each person has one Chromium, reused across the journeys."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Risk, init_db
from models.tables import Network
from states.clock import FixedClock
from states.principal import Principal
from states.roles import NETWORK_MANAGER, REGIONAL_LEAD
from states.services import acting, intake, signin
from states.services.selfassessment import start
from states.services.standards import load_standard_sets, read_library
from states.services.trust_accounts import invite_contact
from tests import support_accounts
from tests.databases import database_for_test, release
from tests.factories import MRH, person, reference_data
from tests.support_appeals import World as AppealWorld
from tests.support_appeals import build_world
from tests.support_browser import (
    BLOCKING,
    Browsers,
    Server,
    axe,
    require_chromium,
    shot,
    start_app,
    submit_via,
    wait,
)
from tests.support_portal_forms import MRH_TRUST, chief_executive, stand_at, trust_contact

PASSWORD = "copper lantern orchard falcon 27"
TODAY = date(2027, 2, 9)  # the training day: a Tuesday, a week after the report's publication (2 Feb)
NOTIFIED = date(2027, 2, 8)  # the IR found and formally notified the day before
LIBRARY = Path(__file__).resolve().parents[1] / "docs" / "standards-example.yaml"
NM_EMAIL = "asha.patel@example.nhs.uk"
INVITATION = re.compile(r"(/invitation/pwi_[A-Za-z0-9_-]{43})\b")


@dataclass
class World:
    app: Server
    db: Engine
    tmp: Path
    browsers: Browsers
    link: str  # the invitation link, from the letter received
    lead_email: str
    lead_name: str
    ceo_email: str
    ceo_contact: int
    ceo: Principal
    nm: Principal
    risk: int  # an IR awaiting the Trust's formal response
    appeal: AppealWorld  # the published report (an IR, an SC and a GC)
    assessment: int  # the self-assessment circulated to the service
    drivers: dict[str, Any] = field(default_factory=dict)

    def driver(self, who: str) -> Any:
        """The one Chromium of ``who`` (made at first use, kept for the module)."""
        if who not in self.drivers:
            made = self.browsers.new()
            made.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)})
            self.drivers[who] = made
        return self.drivers[who]

    @property
    def downloads(self) -> Path:
        return self.tmp / "downloads"


def _invitation_link(folder: Path, to: str) -> str:
    """The link in the invitation letter written to ``folder``, read as a mail client would."""
    for eml in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        if msg["To"].addresses[0].addr_spec != to:  # type: ignore[attr-defined]
            continue
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        found = INVITATION.search(text)
        assert found is not None, text
        assert found.group(1) in html, html
        return found.group(1)
    raise AssertionError(f"no letter to {to} in {folder}: {[p.name for p in folder.iterdir()]}")


def _raise_notified_ir(db: Engine, service: int, nm: Principal) -> int:
    clock = FixedClock(NOTIFIED)
    with Session(db, expire_on_commit=False) as s:
        out = intake.raise_risk(
            s, service=service, level="IR", title="No consultant trauma team leader on site at night",
            standard=None, visit_date=NOTIFIED, identified=None, impact=5, likelihood=3,
            doctors_in_training=False, principal=nm, clock=clock, note=None,
        )  # fmt: skip
        s.commit()
        assert isinstance(out.row, Risk) and out.row.id is not None
        risk = out.row.id
    acting.fire(db, nm, clock, "risk", risk, "send_formal_notification")
    return risk


def _password(db: Engine, who: Principal) -> None:
    with Session(db) as s:
        signin.set_password(s, who, FixedClock(TODAY), None, PASSWORD)
        s.commit()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("portal-browser")
    url = database_for_test(tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEERWATCH_DATABASE_URL", url)
        mp.setenv("PEERWATCH_OUTBOX_DIR", str(tmp / "outbox"))
        mp.setenv("PEERWATCH_ANCHOR_DIR", str(tmp / "anchors"))
        db = init_db(url)
        with Session(db, expire_on_commit=False) as s:
            services = reference_data(s)
            s.commit()
            wmtn = s.exec(select(Network.id).where(Network.code == "WMTN")).one()
        support_accounts.make_training(db)
        stand_at(db, TODAY)
        app = start_app(tmp)
        browsers = Browsers(tmp)
        try:
            mp.setenv("PEERWATCH_PUBLIC_URL", app.base)  # the letters' links point at this server
            yield _build(db, tmp, app, browsers, services, wmtn)
        finally:
            browsers.quit()
            app.stop()
            release(url)


def _build(db: Engine, tmp: Path, app: Server, browsers: Browsers, services: dict[str, int], wmtn: int) -> World:
    from notifications.dispatch import dispatch  # lazy: the sending side, for the invitation's letter
    from notifications.transports import FolderTransport  # lazy: as above

    day = FixedClock(TODAY)
    office = support_accounts.account(db, "Ms Nora Office", ("network-office",), scope="network", scope_id=wmtn)
    nm = support_accounts.account(
        db, "Dr Asha Patel", (NETWORK_MANAGER, REGIONAL_LEAD), email=NM_EMAIL, scope="network", scope_id=wmtn
    )
    _password(db, nm)
    with Session(db, expire_on_commit=False) as s:
        lead = trust_contact(s, "service-lead", MRH_TRUST, MRH)
        invite_contact(s, office, lead.id or 0, day)
        s.commit()
        dispatch(s, FolderTransport(tmp / "mail"), day)  # only the invitation is queued yet
        link = app.url(_invitation_link(tmp / "mail", lead.email.lower()))
        ceo_contact = trust_contact(s, "chief-executive", MRH_TRUST)
        ceo = chief_executive(db, s)
        load_standard_sets(s, read_library(LIBRARY), principal=person("Jo Office", "network-office"), clock=day)
        s.commit()
        appeal = build_world(s, services)
        assessment = start(s, services[MRH], 2026, principal=person("Jo Office", "network-office"), clock=day)
        s.commit()
        assert assessment.row.id is not None and ceo_contact.id is not None
    _password(db, ceo)
    return World(
        app=app, db=db, tmp=tmp, browsers=browsers, link=link, lead_email=lead.email.lower(), lead_name=lead.name,
        ceo_email=ceo_contact.email.lower(), ceo_contact=ceo_contact.id, ceo=ceo, nm=nm,
        risk=_raise_notified_ir(db, services[MRH], nm), appeal=appeal, assessment=assessment.row.id,
    )  # fmt: skip


# ---------------------------------------------------------------- in the browser


class Axe:
    """axe-core on each page of a journey: the serious and critical violations, and a page that
    scrolls sideways in a desktop window, are collected (the journey goes on, so one run reports
    every page) and asserted at its end."""

    def __init__(self) -> None:
        self.bad: list[str] = []

    def check(self, driver: Any, name: str) -> None:
        shot(driver, name)
        wide, shown = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        if wide > shown:  # WCAG 1.4.10: a page of text need not scroll sideways, least of all at desktop width
            self.bad.append(f"{name} ({driver.current_url}): scrolls sideways: {wide}px wide in a {shown}px window"
                            f" (widest: {widest(driver)})")  # fmt: skip
        for v in axe(driver):
            line = f"{name} ({driver.current_url}): {v['impact']} {v['id']}: {v['help']} at {v['targets']}"
            if v["impact"] in BLOCKING:
                self.bad.append(line)
            else:
                print("axe-core (not failing):", line)

    def expect(self, ok: bool, line: str) -> None:
        """A problem a person would meet on the page, recorded like a violation (the journey goes on)."""
        if not ok:
            self.bad.append(line)

    def assert_clean(self) -> None:
        assert not self.bad, "axe-core's serious or critical violations, and other problems:\n" + "\n".join(self.bad)


def widest(driver: Any) -> str:
    """The element that sticks out furthest to the right, and its text's start (what to fix)."""
    found: str = driver.execute_script(
        """
        let best = null, right = 0;
        for (const el of document.querySelectorAll('main *')) {
          const r = el.getBoundingClientRect().right;
          if (r > right && el.children.length === 0) { right = r; best = el; }
        }
        return best ? best.tagName.toLowerCase() + ' ' + JSON.stringify(best.textContent.slice(0, 80)) : '';
        """
    )
    return found


def follow(driver: Any, element: Any) -> None:
    """Bring a link or button to the middle of the window, as a person scrolls to it, and use it."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", element)
    submit_via(driver, element)


def download(driver: Any, link: Any, folder: Path, suffix: str, timeout: float = 15) -> Path:
    """Click ``link`` and wait for the file Chromium saves in ``folder`` (downloads allowed there)."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.glob(f"*{suffix}"))
    link.click()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = [p for p in folder.glob(f"*{suffix}") if p not in before]
        if new and not list(folder.glob("*.crdownload")):
            return new[0]
        time.sleep(0.1)
    raise AssertionError(f"nothing downloaded into {folder} in {timeout}s: {list(folder.iterdir())}")


def fill_xlsx(src: Path, out: Path, answers: dict[str, tuple[Any, Any, Any, Any]]) -> Path:
    """The service's four columns filled in, as a person would in Excel."""
    wb = load_workbook(src)
    ws = wb["Self-Assessment"]
    for r in range(2, ws.max_row + 1):
        ref = ws.cell(row=r, column=1).value
        if ref in answers:
            for c, value in zip((6, 7, 8, 9), answers[ref], strict=True):
                ws.cell(row=r, column=c).value = value
    wb.save(out)
    return out


def table_rows(driver: Any, table_id: str) -> list[list[str]]:
    rows = driver.find_elements("css selector", f"#{table_id} tbody tr")
    return [[td.text.strip() for td in r.find_elements("tag name", "td")] for r in rows]


def wait_url(driver: Any, url: str) -> None:
    wait(driver, lambda d: d.current_url == url)
