"""The logged-in account's page, logging out, and the developer panel's reset."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from werkzeug.wrappers import Response

from .flow import end_pending, login_required
from .state import demo, get_store
from .store import Account

__all__ = ["bp"]

bp = Blueprint("account", __name__)


@bp.get("/account")
@login_required
def home(account: Account) -> str:
    """The owner's private data: what a recycled number must never reach."""
    store = get_store()
    return render_template(
        "account.html",
        account=account,
        orders=store.orders(account.id),
        events=store.events(account.id),
    )


@bp.post("/logout")
def logout() -> Response:
    """End the session: its row is deleted and a new, empty one is issued."""
    end_pending()
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]  # a ServerSession
    flash("You are signed out.", "info")
    return redirect(url_for("login.start"))


@bp.post("/dev/reset")
def reset() -> Response:
    """Developer panel: forget everything and seed the demo accounts again."""
    if not demo().development:
        abort(404)
    get_store().reset(now=demo().now_dt())
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]  # the old row went with the reset
    current_app.logger.info("demo data reset")
    flash("Demo data reset: the seeded accounts are as new.", "info")
    return redirect(url_for("login.start"))
