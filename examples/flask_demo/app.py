"""``create_app``: configuration, storage, the recyclecheck extension and the views.

Configuration, lowest priority first: :data:`DEFAULTS`; the environment
(every ``RECYCLECHECK_*`` key the extension reads, and ``DEMO_DATABASE``,
``DEMO_DEVELOPMENT``, ``DEMO_SECRET_KEY``, ``DEMO_FRESH_BINDING_DAYS``); the
``config`` mapping passed in (tests use it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from flask import Flask, Response, render_template
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

import recyclecheck
from recyclecheck.flask import CONFIG_DEFAULTS, build_policy

from . import account, login, recovery
from .extensions import recyclecheck_ext
from .flow import current_account
from .security import DEFAULT_LIMITS, Codes, Limit, Throttle
from .seed import SEED_ACCOUNTS
from .sessions import CSRF_FIELD, ServerSessionInterface, check_csrf, csrf_token
from .state import EXTENSION_KEY, DemoState, close_store, demo, get_store
from .store import Store

__all__ = ["DEFAULTS", "create_app"]

_HERE = Path(__file__).resolve().parent

#: The demo's own settings, and the recyclecheck settings it starts from.
DEFAULTS: Mapping[str, Any] = {
    "DEMO_DATABASE": str(_HERE / "instance" / "demo.sqlite3"),
    # Local development: the developer panel, and cookies without Secure (plain
    # http://127.0.0.1).  Set it to false anywhere else: Secure __Host- cookies,
    # no panel, and DEMO_SECRET_KEY required.
    "DEMO_DEVELOPMENT": True,
    "DEMO_FRESH_BINDING_DAYS": 30,
    "DEMO_CODE_TTL": 600.0,  # one-time codes live 10 minutes
    "DEMO_CODE_ATTEMPTS": 5,  # guesses per code
    "DEMO_STEP_UP_ATTEMPTS": 5,  # failed second factors per login before it is blocked
    "DEMO_PENDING_TTL": 900.0,  # a login or recovery must finish within 15 minutes
    "DEMO_LIMITS": {},  # {"sms_per_number": Limit(5, 3600.0), ...}: see security.py
    "DEMO_CLOCK": time.time,
    "PERMANENT_SESSION_LIFETIME": dt.timedelta(hours=12),
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "MAX_CONTENT_LENGTH": 64 * 1024,  # the forms are a few hundred bytes
    "RECYCLECHECK_DEFAULT_REGION": "CN",
}
_ENVIRONMENT_KEYS = (
    *(key for key in CONFIG_DEFAULTS if key != "RECYCLECHECK_ON_DECISION"),
    "DEMO_DATABASE",
    "DEMO_DEVELOPMENT",
    "DEMO_FRESH_BINDING_DAYS",
)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def create_app(
    config: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
) -> Flask:
    """Build the demo app (``flask --app examples.flask_demo run`` calls this).

    ``environ`` defaults to ``os.environ``; tests pass ``{}`` to ignore the shell's.
    """
    app = Flask(__name__, instance_path=str(_HERE / "instance"))
    app.config.from_mapping(DEFAULTS)
    app.config.update(_from_environment(os.environ if environ is None else environ))
    app.config.update(config or {})
    _configure_cookies(app)
    state = _demo_state(app)
    app.extensions[EXTENSION_KEY] = state
    app.config["RECYCLECHECK_ON_DECISION"] = state.decisions  # the metrics hook
    _trust_recent_bindings(app)
    recyclecheck_ext.init_app(app)
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)  # decisions and sign-ins in the terminal (masked)
    app.session_interface = ServerSessionInterface()
    app.teardown_appcontext(close_store)
    app.before_request(check_csrf)
    app.after_request(_security_headers)
    for blueprint in (login.bp, recovery.bp, account.bp):
        app.register_blueprint(blueprint)
    _templates(app)
    return app


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {key: environ[key] for key in _ENVIRONMENT_KEYS if key in environ}
    if "DEMO_SECRET_KEY" in environ:
        config["SECRET_KEY"] = environ["DEMO_SECRET_KEY"]
    return config


def _flag(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise recyclecheck.ConfigurationError(f"{key} must be true or false")


def _configure_cookies(app: Flask) -> None:
    development = _flag(app.config["DEMO_DEVELOPMENT"], "DEMO_DEVELOPMENT")
    app.config["DEMO_DEVELOPMENT"] = development
    # Secure outside local development; the __Host- prefix then pins the cookie to
    # this host and path "/", over HTTPS only.
    app.config["SESSION_COOKIE_SECURE"] = not development
    app.config["SESSION_COOKIE_NAME"] = "demo_session" if development else "__Host-demo_session"


def _demo_state(app: Flask) -> DemoState:
    config = app.config
    clock = config["DEMO_CLOCK"]
    database = str(config["DEMO_DATABASE"])
    now = dt.datetime.fromtimestamp(clock(), dt.timezone.utc)
    Store.initialise(database, now=now)  # schema and seed, on first run only
    secret = _secret_key(app, database)
    limits: dict[str, Limit] = {**DEFAULT_LIMITS, **config["DEMO_LIMITS"]}
    return DemoState(
        database=database,
        clock=clock,
        codes=Codes(
            secret, ttl=float(config["DEMO_CODE_TTL"]), attempts=config["DEMO_CODE_ATTEMPTS"]
        ),
        throttle=Throttle(secret, limits),
        pending_ttl=float(config["DEMO_PENDING_TTL"]),
        step_up_attempts=int(config["DEMO_STEP_UP_ATTEMPTS"]),
        development=config["DEMO_DEVELOPMENT"],
    )


def _secret_key(app: Flask, database: str) -> bytes:
    """SECRET_KEY keys the code and throttle HMACs; in development one is made once and kept."""
    key = app.config.get("SECRET_KEY")
    if not key:
        if not app.config["DEMO_DEVELOPMENT"]:
            raise recyclecheck.ConfigurationError(
                "DEMO_SECRET_KEY (or SECRET_KEY) must be set outside local development"
            )
        store = Store(database)
        try:
            key = store.meta_default("dev_secret_key", secrets.token_hex(32))
        finally:
            store.close()
        app.config["SECRET_KEY"] = key
    return key.encode() if isinstance(key, str) else bytes(key)


def _trust_recent_bindings(app: Flask) -> None:
    """``DEMO_FRESH_BINDING_DAYS``: the Guard allows a binding proven that recently at once.

    A provider with no data on a number says so whatever the date, so without
    this its customer would step up at every login.  Carriers hold a cancelled
    number at least 45 days before anyone else gets it, so a binding younger
    than that cannot have changed hands: ``Policy(trust_recent_binding=days)``
    allows it without a lookup (reason ``recently_bound``).  Only a step-up, a
    new account or a recovery makes a binding that recent.  ``0`` turns it off.
    """
    value = app.config["DEMO_FRESH_BINDING_DAYS"]
    try:
        days = int(value) if isinstance(value, str) else value
    except ValueError:
        raise recyclecheck.ConfigurationError("DEMO_FRESH_BINDING_DAYS must be an int") from None
    if days == 0:
        return
    policy = build_policy(app.config)
    try:
        app.config["RECYCLECHECK_POLICY"] = attrs.evolve(policy, trust_recent_binding=days)
    except recyclecheck.ConfigurationError as exc:
        raise recyclecheck.ConfigurationError(
            f"DEMO_FRESH_BINDING_DAYS={days!r} (0 turns it off): {exc}"
        ) from None


#: No framing (clickjacking a step-up form), no foreign scripts, forms post only here.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _security_headers(response: Response) -> Response:
    response.headers.update(_SECURITY_HEADERS)
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"  # codes and account data stay out of caches
    return response


def _templates(app: Flask) -> None:
    app.jinja_env.globals["csrf_field"] = _csrf_field
    app.jinja_env.filters["masked"] = lambda number: recyclecheck.mask(number) if number else "—"
    app.jinja_env.filters["moment"] = _moment
    app.context_processor(_page_context)
    app.register_error_handler(HTTPException, _error_page)


def _csrf_field() -> Markup:
    """The hidden field every form carries."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def _moment(value: dt.datetime | float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, float):
        value = dt.datetime.fromtimestamp(value, dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _page_context() -> dict[str, Any]:
    context: dict[str, Any] = {"account": current_account()}
    if demo().development:
        store, passwords = get_store(), {seed.email: seed.password for seed in SEED_ACCOUNTS}
        stories = {seed.email: seed.story for seed in SEED_ACCOUNTS}
        context["dev"] = {
            "accounts": store.accounts(),
            "passwords": passwords,
            "stories": stories,
            "messages": store.messages(),
            "decisions": demo().decisions.latest(),
        }
    return context


def _error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    csrf = status == 400 and error.description == "csrf"
    return render_template("error.html", status=status, csrf=csrf), status
