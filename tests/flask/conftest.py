"""Fixtures for the Flask extension and the demo: an app on its own tmp database, a client."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from examples.flask_demo import create_app
from examples.flask_demo.state import DemoState

ALICE = "+8613800138000"  # reissued in 2024, bound 2022: step up
BO = "+8613900139000"  # never reissued: allow
CHEN = "+8613700137000"  # no data: step up
DANA = "+8615800158000"  # tracked since 2025, bound 2023: not covered
ELI = "+8613600136000"  # reissued 2019, bound 2021: allow
NEW_NUMBER = "+8618600186000"  # on no account, unknown to the sandbox

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    """A settable clock for the demo (codes, pending logins, throttles); the Guard keeps real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Demo:
    """One browser's view of the demo: a test client with its own address and CSRF token."""

    def __init__(self, app: Flask, address: str = "198.51.100.7") -> None:
        self.app = app
        self.http: FlaskClient = app.test_client()
        self.http.environ_base["REMOTE_ADDR"] = address
        self.token: str | None = None

    # -- HTTP ---------------------------------------------------------------------------

    def _remember_token(self, response: TestResponse) -> TestResponse:
        if any(
            header.startswith(self.app.config["SESSION_COOKIE_NAME"] + "=")
            for header in response.headers.getlist("Set-Cookie")
        ):
            self.token = None  # a new session: a new CSRF token
        if response.mimetype == "text/html":
            match = _CSRF.search(response.get_data(as_text=True))
            if match:
                self.token = match.group(1)
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self._remember_token(self.http.get(path, **kwargs))

    def post(self, path: str, data: Mapping[str, str] | None = None, **kwargs: Any) -> TestResponse:
        form = dict(data or {})
        if "csrf_token" not in form:
            if self.token is None:
                self.get("/", follow_redirects=True)
            form["csrf_token"] = self.token or ""
        return self._remember_token(self.http.post(path, data=form, **kwargs))

    @property
    def cookie(self) -> str | None:
        cookie = self.http.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        return None if cookie is None else cookie.value

    # -- the journey's steps --------------------------------------------------------------

    def send_code(self, phone: str) -> TestResponse:
        return self.post("/login", {"phone": phone})

    def enter_code(self, code: str) -> TestResponse:
        return self.post("/login/code", {"code": code})

    def sms_login(self, phone: str) -> TestResponse:
        """Ask for a code, read it from the fake gateway's outbox and enter it."""
        response = self.send_code(phone)
        assert response.status_code == 302, response.get_data(as_text=True)
        return self.enter_code(last_code(self.app, "sms", phone))

    def logout(self) -> TestResponse:
        return self.post("/logout")


def _db(app: Flask) -> sqlite3.Connection:
    db = sqlite3.connect(app.config["DEMO_DATABASE"])
    db.row_factory = sqlite3.Row
    return db


def last_code(app: Flask, channel: str, recipient: str) -> str:
    """The newest code the fake SMS or e-mail gateway sent to ``recipient``."""
    db = _db(app)
    try:
        row = db.execute(
            "SELECT code FROM outbox WHERE channel = ? AND recipient = ? AND code IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (channel, recipient),
        ).fetchone()
    finally:
        db.close()
    assert row is not None, f"no {channel} code sent"
    return str(row["code"])


def query(app: Flask, sql: str, *args: object) -> list[sqlite3.Row]:
    """Rows from the demo database, read behind the app's back."""
    db = _db(app)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def account_row(app: Flask, email: str) -> sqlite3.Row:
    (row,) = query(app, "SELECT * FROM accounts WHERE email = ?", email)
    return row


def demo_state(app: Flask) -> DemoState:
    state = app.extensions["flask_demo"]
    assert isinstance(state, DemoState)
    return state


def make_app(tmp_path: Path, **config: Any) -> Flask:
    """The demo on a fresh database in ``tmp_path``, ignoring the shell's environment."""
    settings: dict[str, Any] = {
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "TESTING": True,
    }
    settings.update(config)
    return create_app(settings, environ={})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[Flask]:
    app = make_app(tmp_path, DEMO_CLOCK=clock)
    yield app
    app.extensions["recyclecheck"].close()


@pytest.fixture
def demo(app: Flask) -> Demo:
    return Demo(app)
