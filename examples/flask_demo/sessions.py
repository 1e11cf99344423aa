"""Server-side sessions and CSRF tokens.

Flask's default session is a *signed* cookie: tamper-proof but readable by
anyone holding it, so no code, account id or step-up flag may live there.
Here the cookie holds only an opaque random token (256 bits); the session's
data lives in SQLite under the SHA-256 of that token, so a copy of the
database holds no usable cookie either.

- :meth:`ServerSession.regenerate` re-issues the session under a new token and
  deletes the old row: called when a login completes, so a cookie planted
  before login (session fixation) is worth nothing after it.
- Cookies are ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` (with the
  ``__Host-`` name prefix) outside local development.
- Every state-changing request must carry the session's CSRF token in a form
  field; it is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask, Request, Response, abort, current_app, request, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from .security import session_digest
from .state import demo, get_store

__all__ = ["CSRF_FIELD", "ServerSession", "ServerSessionInterface", "check_csrf", "csrf_token"]

CSRF_FIELD = "csrf_token"
_CSRF_KEY = "_csrf"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """Session data held server-side; the cookie carries only ``token``."""

    def __init__(self, initial: dict[str, Any] | None = None, token: str | None = None) -> None:
        def on_update(this: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial, on_update)
        self.token = token
        self.modified = False
        self.rotate = False

    def regenerate(self) -> None:
        """Re-issue the session under a new token when the response is sent (no fixation)."""
        self.rotate = True
        self.modified = True


class ServerSessionInterface(SessionInterface):
    """Loads and saves :class:`ServerSession` from the demo's SQLite store."""

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        """The session named by the cookie, or a new empty one."""
        token = request.cookies.get(self.get_cookie_name(app))
        if token:
            data = get_store().load_session(session_digest(token), demo().now())
            if data is not None:
                return ServerSession(data, token)
        return ServerSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Write the session row and set, re-issue or delete the cookie."""
        if not isinstance(session, ServerSession):  # pragma: no cover - always ours
            return
        store, now = get_store(), demo().now()
        name = self.get_cookie_name(app)
        if session.token is not None and (session.rotate or not session):
            store.delete_session(session_digest(session.token))
            session.token = None
            if not session:
                response.delete_cookie(
                    name,
                    path=self.get_cookie_path(app),
                    secure=self.get_cookie_secure(app),
                    httponly=True,
                    samesite=self.get_cookie_samesite(app),
                )
        if not session:
            return
        response.vary.add("Cookie")
        lifetime = app.permanent_session_lifetime.total_seconds()
        if session.token is None:
            session.token = secrets.token_urlsafe(32)
            store.save_session(session_digest(session.token), session, now + lifetime)
            self._set_cookie(app, response, session.token)
        elif session.modified or self._due_for_refresh(session.token, now, lifetime):
            store.save_session(session_digest(session.token), session, now + lifetime)

    @staticmethod
    def _due_for_refresh(token: str, now: float, lifetime: float) -> bool:
        expires_at = get_store().session_expires_at(session_digest(token))
        return expires_at is None or expires_at - now < lifetime / 2

    def _set_cookie(self, app: Flask, response: Response, token: str) -> None:
        response.set_cookie(
            self.get_cookie_name(app),
            token,
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            httponly=self.get_cookie_httponly(app),
            samesite=self.get_cookie_samesite(app),
        )


def csrf_token() -> str:
    """The session's CSRF token (created on first use); every form embeds it."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def check_csrf() -> None:
    """``before_request``: refuse a state-changing request without the session's token."""
    if request.method not in _UNSAFE_METHODS:
        return
    expected = session.get(_CSRF_KEY)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(
        sent.encode("utf-8"), expected.encode("utf-8")
    ):
        current_app.logger.warning("refused a %s to %s: CSRF token", request.method, request.path)
        abort(400, description="csrf")
