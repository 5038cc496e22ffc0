"""The dashboard command end to end, and the page in a real browser (headless Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from flows.site import write_site
from models import Network, Service
from states.machines.spec import get_spec
from states.views import register
from tests.support_dashboard import (
    ROOT,
    TODAY,
    World,
    world,  # noqa: F401 (pytest fixtures)
)

# ---------------------------------------------------------------- (b) the command end to end


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dashboard_command_writes_a_page_per_network_matching_risk_list(
    session: Session, world: World, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    proc = _cli("--json", "--as-of", TODAY.isoformat(), "dashboard", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    pages = {p["network"]: p for p in json.loads(proc.stdout)["networks"]}
    codes = set(session.exec(select(Network.code)))
    assert set(pages) == codes
    index = (out / "index.html").read_text()
    assert all(f'href="{c}/index.html"' in index for c in codes)

    listed = _cli("--json", "risk", "list")
    assert listed.returncode == 0, listed.stderr
    risks = json.loads(listed.stdout)
    terminal = get_spec("risk").terminal
    for code in codes:
        in_net = set(
            session.exec(select(Service.id).join(Network, Network.id == Service.network_id).where(Network.code == code))
        )
        listed_open = {r["id"]: r for r in risks if r["service_id"] in in_net and r["state"] not in terminal}
        reg = {r["id"]: r for r in register.risk_register(session, TODAY, code)}
        assert pages[code]["open_risks"] == len(listed_open) == len(reg)
        assert {i: (r["state"], r["level"]) for i, r in listed_open.items()} == {
            i: (r["state"], r["level"]) for i, r in reg.items()
        }
        assert all(reg[i]["due_on"] == r["due_on"] for i, r in listed_open.items() if r["due_on"])
        figures = register.summary(session, TODAY, code)["figures"]
        assert {k: pages[code][k] for k in figures} == figures
        page = (out / code / "index.html").read_text()
        assert 'href="calendar.ics"' in page and '<script type="application/json" id="data">' in page

    refused = _cli("dashboard", "--network", "NOPE", "--out", str(out))
    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        "error: network 'NOPE' not found (peerwatch network list)",
    )


# ---------------------------------------------------------------- (c) the page in a real browser

FIGURES = {
    "open-items": "open_items",
    "open-risks": "open_risks",
    "overdue-count": "overdue",
    "upcoming-count": "upcoming",
    "escalations-count": "escalations",
}
CHARTS = ("chart-states", "chart-ages", "chart-compliance")


class _Page(HTMLParser):
    """The figures' text and the bars drawn in each chart (a chart's div holds only its SVG)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.bars: dict[str, int] = dict.fromkeys(CHARTS, 0)
        self.svgs: dict[str, int] = dict.fromkeys(CHARTS, 0)
        self._figure: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") in FIGURES:
            self._figure = a["id"]
            self.figures[self._figure] = ""  # type: ignore[index]
        elif tag == "div" and a.get("id") in CHARTS:
            self._chart = a["id"]
        elif self._chart and tag == "svg":
            self.svgs[self._chart] += 1
        elif self._chart and tag == "rect" and "bar" in (a.get("class") or "").split():
            self.bars[self._chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._figure = None
        elif tag == "div":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._figure:
            self.figures[self._figure] += data


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("PEERWATCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail("PEERWATCH_REQUIRE_CHROMIUM=1 but neither chromium nor chromium-browser is on PATH")
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    return found


def _dump_dom(browser: str, page: Path, profile: Path) -> str:
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def test_page_renders_its_figures_and_charts_in_headless_chromium(
    session: Session, world: World, tmp_path: Path
) -> None:
    browser = _chromium()
    networks = [(n.code, n.name) for n in session.exec(select(Network).order_by(col(Network.code)))]
    write_site(session, TODAY, tmp_path / "site", networks)
    for code, _ in networks:
        page = tmp_path / "site" / code / "index.html"
        static = _Page()
        static.feed(page.read_text())
        assert set(static.figures.values()) == {""} and sum(static.bars.values()) == 0  # only the JS fills them in
        data = register.summary(session, TODAY, code)
        seen = _Page()
        seen.feed(_dump_dom(browser, page, tmp_path / f"profile-{code}"))
        assert seen.figures == {i: str(data["figures"][k]) for i, k in FIGURES.items()}, code
        assert seen.svgs == dict.fromkeys(CHARTS, 1)
        assert seen.bars == {
            "chart-states": len(data["open_by_state"]),
            "chart-ages": len(register.AGE_BUCKETS),
            "chart-compliance": len(data["compliance"]),
        }, code
    assert data["figures"]["open_risks"] >= 1 and any(
        len(register.summary(session, TODAY, c)["compliance"]) for c, _ in networks
    )


def test_long_tables_are_cut_but_the_figures_count_every_row(
    session: Session,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A network with more open risks than a page lists: the table stops at ROWS_SHOWN and
    says so; the headline figures still count them all."""
    import notifications.dashboard as page_renderer

    networks = [(n.code, n.name) for n in session.exec(select(Network).order_by(col(Network.code)))]
    busiest = max(networks, key=lambda n: len(register.risk_register(session, TODAY, n[0])))
    total = len(register.risk_register(session, TODAY, busiest[0]))
    assert total >= 2
    monkeypatch.setattr(page_renderer, "ROWS_SHOWN", 1)
    (page,) = write_site(session, TODAY, tmp_path / "site", [busiest])
    html = Path(page["page"]).read_text()
    assert page["open_risks"] == total
    assert f"Showing the first 1 of {total}" in html
    register_table = html.split('id="register"')[1].split("</table>")[0]
    assert register_table.count("<tr") == 2  # the header and one row
