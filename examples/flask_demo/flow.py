"""The pending login (or recovery): server-side, with an expiry, checked by every step.

The session holds only the pending row's random id.  Each later URL names the
stages it accepts; a request at any other stage (a skipped step-up, a replayed
form, a URL typed ahead) is sent back to the start, whatever the browser
claims.  Nothing here trusts a flag the browser could replay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, flash, redirect, session, url_for
from werkzeug.wrappers import Response

from .state import demo, get_store
from .store import Account, Pending

__all__ = [
    "complete_login",
    "current_account",
    "end_pending",
    "login_required",
    "requires",
    "start_pending",
]

_PENDING_KEY = "pending"
_ACCOUNT_KEY = "account_id"

View = TypeVar("View", bound=Callable[..., Any])


def start_pending(
    flow: str, stage: str, *, phone: str | None = None, account_id: int | None = None
) -> str:
    """Start a login or recovery, replacing any other one this session had."""
    end_pending()
    state, store = demo(), get_store()
    store.purge_sessions(state.now())
    pending_id = store.create_pending(
        flow=flow,
        stage=stage,
        phone=phone,
        account_id=account_id,
        expires_at=state.now() + state.pending_ttl,
    )
    session[_PENDING_KEY] = pending_id
    return pending_id


def current_pending(flow: str, stages: tuple[str, ...]) -> Pending | None:
    """This session's live pending ``flow``, if it is at one of ``stages``."""
    pending_id = session.get(_PENDING_KEY)
    if not isinstance(pending_id, str):
        return None
    pending = get_store().pending(pending_id, demo().now())
    if pending is None or pending.flow != flow or pending.stage not in stages:
        return None
    return pending


def end_pending() -> None:
    """Forget this session's pending login or recovery (and its codes)."""
    pending_id = session.pop(_PENDING_KEY, None)
    if isinstance(pending_id, str):
        get_store().delete_pending(pending_id)


def requires(flow: str, *stages: str) -> Callable[[View], View]:
    """Run the view only at these stages of a live pending ``flow``; pass it as ``pending``.

    Anything else (no pending state, expired, another stage) goes back to the
    start of the flow.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            pending = current_pending(flow, stages)
            if pending is None:
                current_app.logger.info(
                    "refused %s: no pending %s at %s", view.__name__, flow, stages
                )
                flash("That step has expired or was not reached. Please start again.", "error")
                return redirect(url_for("login.start" if flow == "login" else "recovery.start"))
            return view(*args, pending=pending, **kwargs)

        return cast(View, wrapper)

    return decorate


def complete_login(account_id: int, *, via: str) -> Response:
    """Log the account in: end the pending flow and re-issue the session (no fixation)."""
    end_pending()
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]  # a ServerSession
    session[_ACCOUNT_KEY] = account_id
    get_store().add_event(account_id, demo().now_dt(), "login", f"Signed in: {via}")
    current_app.logger.info("account %d logged in (%s)", account_id, via)
    return redirect(url_for("account.home"))


def current_account() -> Account | None:
    """The logged-in account, if any."""
    account_id = session.get(_ACCOUNT_KEY)
    if not isinstance(account_id, int):
        return None
    return get_store().account(account_id)


def login_required(view: View) -> View:
    """Run the view only for a logged-in account; pass it as ``account``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        account = current_account()
        if account is None:
            return redirect(url_for("login.start"))
        return view(*args, account=account, **kwargs)

    return cast(View, wrapper)
