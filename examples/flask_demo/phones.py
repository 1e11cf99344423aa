"""Phone input, and what happens to an account when its number goes to someone else."""

from __future__ import annotations

import datetime as dt

import phonenumbers
from flask import current_app

import recyclecheck

from .gateways import send_email
from .store import Account, Store

__all__ = ["notify_released", "parse_phone", "release_number"]

_MAX_INPUT = 64


def parse_phone(text: str) -> str | None:
    """The number typed, in E.164, or ``None`` if it is not a valid number.

    National formats use ``RECYCLECHECK_DEFAULT_REGION`` (``CN`` in the demo).
    """
    if not text or len(text) > _MAX_INPUT or not text.isprintable():
        return None
    region = current_app.config.get("RECYCLECHECK_DEFAULT_REGION")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def release_number(
    store: Store, e164: str, now: dt.datetime, *, keep: int | None
) -> Account | None:
    """Take ``e164`` off the account holding it (unless that is account ``keep``).

    Called inside a transaction, when someone who proved by SMS that they hold
    the number today creates an account with it or binds it to theirs.  Returns
    the account that lost it, to notify.
    """
    holder = store.account_by_phone(e164)
    if holder is None or holder.id == keep:
        return None
    store.set_phone(holder.id, None, None)
    store.add_event(
        holder.id,
        now,
        "released",
        f"Number {recyclecheck.mask(e164)} removed: its current holder proved it by SMS "
        "and bound it elsewhere",
    )
    current_app.logger.info(
        "number %s released from account %d", recyclecheck.mask(e164), holder.id
    )
    return holder


def notify_released(account: Account | None, e164: str) -> None:
    """Tell the account that lost its number, at its e-mail address."""
    if account is None:
        return
    send_email(
        account.email,
        f"The phone number {recyclecheck.mask(e164)} was removed from your account because "
        "its current holder proved by SMS that they hold it. You can still sign in by "
        "recovering your account with this e-mail address, and bind your new number.",
        account_id=account.id,
    )
