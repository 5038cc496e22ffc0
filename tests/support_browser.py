"""The web application in a real browser: the app served by a real uvicorn in a subprocess on
127.0.0.1 (over the test's own database), headless Chromium driven through Debian's
chromedriver (Selenium; nothing is ever downloaded: the driver's path is given and Selenium
Manager is switched off), axe-core run in the page, and screenshots under var/screenshots/.

Chromium missing: the tests skip, unless ``PEERWATCH_REQUIRE_CHROMIUM=1`` (CI), when they fail.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--window-size=1280,1000",
)
BLOCKING = ("serious", "critical")  # axe impacts that fail a page (WCAG 2.2 AA)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def require_chromium() -> tuple[str, str]:
    """Chromium and chromedriver's paths; skip without them (fail when CI requires them)."""
    browser = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    driver = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = "chromium" if browser is None else "chromedriver"
        if os.environ.get("PEERWATCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"PEERWATCH_REQUIRE_CHROMIUM=1 but {missing} is not installed")
        pytest.skip(f"{missing} not installed (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or never does."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"{url}: the server exited with {proc.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer in {timeout}s:\n{tail(log)}")


def tail(log: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Server:
    """A process serving HTTP on 127.0.0.1:``port`` (its output in ``log``)."""

    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start(argv: list[str], port: int, log: Path, ready: str, env: dict[str, str] | None = None) -> Server:
    """Start ``argv`` (a server on ``port``) with this process's environment plus ``env``, wait for ``ready``."""
    full = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    full.update(env or {})
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_for(server.url(ready), proc, log)
    except BaseException:
        server.stop()
        raise
    return server


def start_app(tmp_path: Path, env: dict[str, str] | None = None) -> Server:
    """``web.app:create_app`` under a real uvicorn, over the database in PEERWATCH_DATABASE_URL
    (the test's ``db_url``) and the suite's environment (PREFECT_HOME, the audit key ...)."""
    assert os.environ.get("PEERWATCH_DATABASE_URL"), "start_app needs the db_url fixture"
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "web.app:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    return start(argv, port, tmp_path / f"web-{port}.log", "/healthz", env)


def start_oidc_provider(tmp_path: Path, users: list[dict[str, Any]]) -> Server:
    """oidc-provider-mock on 127.0.0.1 (its own process: its deprecation warnings stay there)."""
    port = free_port()
    argv = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for claims in users:
        argv += ["--user-claims", json.dumps(claims)]
    return start(argv, port, tmp_path / f"oidc-{port}.log", "/.well-known/openid-configuration")


# ---------------------------------------------------------------- browsers


@dataclass
class Browsers:
    """Independent headless Chromiums, each with a fresh profile (one person each)."""

    tmp: Path
    made: list[Any] = field(default_factory=list)

    def new(self) -> Any:
        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never fetches a driver or a browser
        from selenium import webdriver  # lazy: Selenium only for the browser tests
        from selenium.webdriver.chrome.service import Service  # lazy: as above

        browser, driver = require_chromium()
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in FLAGS:
            options.add_argument(flag)
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        options.add_argument(f"--user-data-dir={profile}")
        made = webdriver.Chrome(options=options, service=Service(driver))
        made.set_page_load_timeout(30)
        made.set_script_timeout(60)
        self.made.append(made)
        return made

    def quit(self) -> None:
        for made in self.made:
            with contextlib.suppress(Exception):  # a browser already gone
                made.quit()


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Browsers]:
    require_chromium()
    out = Browsers(tmp_path)
    yield out
    out.quit()


# ---------------------------------------------------------------- axe-core and screenshots


def axe_source() -> str:
    """axe.min.js as ``make assets`` unpacked it (web/assets.py names the path)."""
    from web.assets import ASSET_DIR  # lazy: the web package only for the browser tests

    found = ASSET_DIR / "axe" / "axe.min.js"
    if found.is_file():
        return found.read_text()
    pytest.fail("axe-core is not unpacked under var/assets/: run `make assets` (python -m web.assets)")


def axe(driver: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page shown (injected through WebDriver, which the page's CSP allows)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(axe_source())
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations'], runOnly: {type: 'tag', values: arguments[0]}})
          .then(r => done(r.violations.map(v => ({
              id: v.id, impact: v.impact, help: v.help,
              targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))
          .catch(e => done({error: String(e)}));
        """,
        AXE_TAGS,
    )
    if isinstance(result, dict):
        pytest.fail(f"axe-core failed on {driver.current_url}: {result['error']}")
    return list(result)


def shot(driver: Any, name: str) -> Path:
    """Save the page as var/screenshots/<name>.png (the whole page, for review)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{name}.png"
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    out.write_bytes(base64.b64decode(png["data"]))
    return out


def blocking(driver: Any, name: str) -> list[str]:
    """Screenshot the page as ``name`` and list its serious and critical axe-core violations
    (rule, impact, the elements), one line each; the moderate and minor ones are printed."""
    shot(driver, name)
    found = [
        (v["impact"], f"{name} ({driver.current_url}): {v['impact']} {v['id']}: {v['help']} at {v['targets']}")
        for v in axe(driver)
    ]
    for impact, line in found:
        if impact not in BLOCKING:
            print("axe-core (not failing):", line)  # shown with -s, or beside a failure
    return [line for impact, line in found if impact in BLOCKING]


def check_page(driver: Any, name: str) -> None:
    """Screenshot the page and fail on any serious or critical axe-core violation."""
    bad = blocking(driver, name)
    assert not bad, "axe-core:\n" + "\n".join(bad)


# ---------------------------------------------------------------- the pages, as a person uses them


def wait(driver: Any, until: Callable[[Any], Any], timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait  # lazy: Selenium only for the browser tests

    return WebDriverWait(driver, timeout).until(until)


def eventually(driver: Any, until: Callable[[Any], Any], timeout: float = 5) -> bool:
    """Whether ``until(driver)`` holds within ``timeout`` seconds."""
    from selenium.common.exceptions import TimeoutException  # lazy: Selenium only for the browser tests

    try:
        wait(driver, until, timeout)
    except TimeoutException:
        return False
    return True


def status(driver: Any) -> int:
    """The HTTP status of the page shown (Navigation Timing's responseStatus: the last response,
    after any redirects)."""
    code: int = driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")
    return code


def body_text(driver: Any) -> str:
    text: str = driver.find_element("tag name", "body").text
    return text


def submit_via(driver: Any, button: Any) -> None:
    """Click ``button`` and wait for the next page to load (the old one goes stale)."""
    html = driver.find_element("tag name", "html")
    button.click()
    wait(driver, lambda _driver: is_stale(html))


def is_stale(element: Any) -> bool:
    """Whether ``element`` has left the document. Selenium's ``staleness_of`` knows only
    StaleElementReferenceException; mid-navigation Chromium may instead answer "Node with given
    id does not belong to the document", which means the same (it failed a CI run)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # lazy: as above

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error) or "No node with given id" in str(error):
            return True
        raise
    return False


def sign_in(driver: Any, server: Server, email: str, password: str, next_path: str = "") -> None:
    """Fill in the local sign-in form and submit it."""
    driver.get(server.url("/sign-in" + (f"?next={next_path}" if next_path else "")))
    for name, value in (("email", email), ("password", password)):
        box = driver.find_element("id", name)
        box.clear()
        box.send_keys(value)
    form = driver.find_element("id", "password").find_element("xpath", "ancestor::form")
    submit_via(driver, form.find_element("css selector", "button[type=submit], button:not([type]), input[type=submit]"))
