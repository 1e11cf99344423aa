"""The demo in a real headless browser: Chromium driven by Selenium, screenshots of each step.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them);
nothing here downloads a browser.  Without them the test is skipped, unless
``RECYCLECHECK_REQUIRE_BROWSER=1`` (set by CI) turns that into a failure.

Screenshots go to a temporary directory, or to ``RECYCLECHECK_SCREENSHOTS``:
``RECYCLECHECK_SCREENSHOTS=docs/img pytest tests/flask/test_browser.py``
regenerates the ones ``docs/integration.md`` shows.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from .conftest import ALICE, CHEN, NEW_NUMBER, make_app

REQUIRE = os.environ.get("RECYCLECHECK_REQUIRE_BROWSER") == "1"

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the tests extra installs selenium
    webdriver = None

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
    "--window-size=1180,900",
)
WAIT = 15.0


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} and RECYCLECHECK_REQUIRE_BROWSER=1", pytrace=False)
    pytest.skip(reason)


def _binaries() -> tuple[str, str]:
    if webdriver is None:  # pragma: no cover
        _missing("selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if chromium is None or driver is None:
        _missing(
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    assert chromium is not None
    assert driver is not None
    return chromium, driver


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    """The demo on a real werkzeug server in a daemon thread; shut down and joined after."""
    app = make_app(tmp_path / "live", TESTING=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["recyclecheck"].close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile; always quit."""
    chromium, driver_path = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    # Selenium logs every command at DEBUG, typed text included: keep the numbers it
    # types out of the logs (the suite fails any test whose logs hold a number).
    selenium_log = logging.getLogger("selenium")
    level = selenium_log.level
    selenium_log.setLevel(logging.INFO)
    driver = None
    try:
        with _offline():
            driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.set_page_load_timeout(WAIT)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        selenium_log.setLevel(level)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Selenium Manager must never try to download a browser or a driver."""
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = previous


class Walk:
    """Drives the browser through the demo's pages and takes a screenshot per step."""

    def __init__(self, driver: WebDriver, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base
        self.shots = shots
        self.taken: list[Path] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait_for(self, element_id: str) -> None:
        try:
            WebDriverWait(self.driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
                expected_conditions.presence_of_element_located((By.ID, element_id))
            )
        except TimeoutException:  # pragma: no cover - the message says where it stopped
            pytest.fail(f"#{element_id} never appeared; at {self.driver.current_url}")

    def fill(self, element_id: str, text: str) -> None:
        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text)

    def click(self, element_id: str, then: str) -> None:
        """Click, then wait for the next page (its element ``then``).

        The old page carries a marker the new one lacks; commands that fail while
        the browser is between documents are retried until the deadline.
        """
        self.driver.execute_script("window.__walk_page = true;")
        self.driver.find_element(By.ID, element_id).click()
        try:
            WebDriverWait(self.driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
                lambda driver: driver.execute_script(
                    "return document.readyState === 'complete' && !window.__walk_page;"
                )
            )
        except TimeoutException:  # pragma: no cover - the message says where it stopped
            pytest.fail(f"no new page after #{element_id}; at {self.driver.current_url}")
        self.wait_for(then)

    @property
    def main(self) -> str:
        """The page's text, developer panel excluded."""
        return self.driver.find_element(By.TAG_NAME, "main").text

    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base)

    def code_from_panel(self, channel: str, recipient: str) -> str:
        """The newest code the developer panel's inbox shows for ``recipient``."""
        selector = f'#inbox li[data-channel="{channel}"][data-to="{recipient}"]'
        (code,) = [
            item.get_attribute("data-code")
            for item in self.driver.find_elements(By.CSS_SELECTOR, selector)[:1]
        ]
        assert code
        return code

    def screenshot(self, name: str) -> None:
        """Save the whole page as ``flask-demo-<name>.png`` (256 colours if Pillow is there)."""
        shot = self.driver.execute_cdp_cmd(  # type: ignore[attr-defined]  # Chromium's CDP
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path = self.shots / f"flask-demo-{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        _shrink(path)
        self.taken.append(path)

    def sms_login(self, phone: str, e164: str, shot: str | None = None) -> None:
        """Type the number, read the code from the panel, type it."""
        self.open("/login")
        self.wait_for("phone")
        self.fill("phone", phone)
        self.click("send-code", then="code")
        if shot:
            self.screenshot(shot)
        self.fill("code", self.code_from_panel("sms", e164))
        self.click("verify-code", then="dev-panel")

    def sign_out(self) -> None:
        self.click("logout", then="phone")


def _shrink(path: Path) -> None:
    """Quantize to a 128-colour palette: a third of the size, same look (flat UI colours)."""
    try:
        from PIL import Image  # noqa: PLC0415 - optional: only makes the files smaller
    except ImportError:
        return
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(
            colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    palette.save(path, optimize=True)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("RECYCLECHECK_SCREENSHOTS")
    path = Path(target) if target else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_whole_journey_in_a_real_browser(
    live_app: tuple[Flask, str], browser: WebDriver, shots: Path
) -> None:
    """New holder blocked and offered a fresh account; no-data customer steps up once; recovery."""
    started = time.monotonic()
    _app, base = live_app
    walk = Walk(browser, base, shots)

    # 1. The new holder of Alice's old number: the code arrives, the login does not.
    walk.open("/login")
    walk.wait_for("phone")
    walk.fill("phone", "+86 138 0013 8000")
    walk.screenshot("01-login")
    walk.click("send-code", then="code")
    walk.screenshot("02-sms-code")
    walk.fill("code", walk.code_from_panel("sms", ALICE))
    walk.click("verify-code", then="password")
    assert walk.path == "/login/verify"
    assert "Please confirm it's you" in walk.main
    for private in ("Alice", "Lakeside", "headphones", "alice@example.com"):
        assert private not in walk.main
    walk.fill("password", "is it 123456?")
    walk.click("verify-password", then="password")
    assert "That password is not right" in walk.main
    walk.screenshot("03-step-up")
    walk.click("cannot-verify", then="register-link")
    walk.screenshot("04-blocked")
    walk.click("register-link", then="name")
    walk.fill("name", "Mallory Ma")
    walk.fill("email", "mallory@example.com")
    walk.fill("new-password", "mallory-password")
    walk.screenshot("05-register")
    walk.click("register", then="account-name")
    assert walk.path == "/account"
    assert "Hello, Mallory Ma" in walk.main
    assert "headphones" not in walk.main
    walk.screenshot("06-new-account")
    walk.sign_out()

    # 2. The no-data customer: one step-up, then SMS codes are enough again.
    walk.sms_login("137 0013 7000", CHEN)
    assert walk.path == "/login/verify"
    walk.fill("password", "chen-demo-password")
    walk.click("verify-password", then="account-name")
    assert "Hello, Chen Jing" in walk.main
    assert "Number re-bound after a password step-up" in walk.main
    walk.screenshot("07-step-up-passed")
    walk.sign_out()
    walk.sms_login("137 0013 7000", CHEN)
    assert walk.path == "/account"
    assert "Signed in: SMS code alone (bound_at unchanged)" in walk.main
    decisions = browser.find_elements(By.CSS_SELECTOR, "#decisions li.decision")
    assert [d.get_attribute("data-reason") for d in decisions[:2]] == ["recently_bound", "no_data"]
    walk.screenshot("08-second-login")
    walk.sign_out()

    # 3. Alice recovers her account by e-mail and binds the number she uses now.
    walk.click("recover-link", then="email")
    walk.fill("email", "alice@example.com")
    walk.click("send-recovery-code", then="code")
    walk.fill("code", walk.code_from_panel("email", "alice@example.com"))
    walk.click("verify-recovery-code", then="phone")
    walk.fill("phone", "186 0018 6000")
    walk.click("send-bind-code", then="code")
    walk.fill("code", walk.code_from_panel("sms", NEW_NUMBER))
    walk.click("verify-bind-code", then="account-name")
    assert "Hello, Alice Liu" in walk.main
    assert "+86 186****6000" in walk.main
    walk.screenshot("09-recovered")

    assert [path.name for path in walk.taken] == [
        f"flask-demo-{name}.png"
        for name in (
            "01-login",
            "02-sms-code",
            "03-step-up",
            "04-blocked",
            "05-register",
            "06-new-account",
            "07-step-up-passed",
            "08-second-login",
            "09-recovered",
        )
    ]
    assert all(path.stat().st_size > 10_000 for path in walk.taken)
    assert time.monotonic() - started < 60
