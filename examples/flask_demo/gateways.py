"""Fake SMS and e-mail gateways: what they "send" lands in the outbox the developer panel shows.

A real app sends through its SMS provider and mail server instead; nothing else
in the demo changes.  Logs name the masked number, or the account, never the
full number or address.
"""

from __future__ import annotations

from flask import current_app

import recyclecheck

from .state import demo, get_store

__all__ = ["send_email", "send_sms"]


def send_sms(e164: str, text: str, *, code: str | None = None) -> None:
    """ "Send" an SMS to ``e164``."""
    get_store().add_message(channel="sms", recipient=e164, body=text, code=code, now=demo().now())
    current_app.logger.info("sms sent to %s", recyclecheck.mask(e164))


def send_email(address: str, text: str, *, account_id: int, code: str | None = None) -> None:
    """ "Send" an e-mail to ``address`` (the account's own address)."""
    get_store().add_message(
        channel="email", recipient=address, body=text, code=code, now=demo().now()
    )
    current_app.logger.info("e-mail sent to account %d", account_id)
