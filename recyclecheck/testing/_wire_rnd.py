"""Fake US Reassigned Numbers Database (Somos RND) API.

``POST /b/public/api/idToken`` trades the portal refresh token for a short-lived
JWT-shaped id token (with an ``exp`` claim); ``POST /api/tn`` takes the raw id
token in ``Authorization`` and a ``tnList`` of ``{tn, date, companyId}``; an
unknown or expired token gets 401, another company's id 403.  Scripted answers
render as ``disconnected``:

===========================================  =========================
script, asked about ``date``                 ``disconnected``
===========================================  =========================
reissued on ``D >= date``, or changed        ``"yes"``
never, ``D < date``, or unchanged            ``"no"`` (``"no_data"`` for
                                             a date before 2021-01-27,
                                             unless a disconnection from
                                             2020-07-27 on is scripted)
no data, not covered, or coverage after      ``"no_data"``
a number outside the US and its territories  ``"no"`` for a date from
                                             2021-01-27, else
                                             ``"no_data"``
===========================================  =========================

The RND has no separate "not covered" answer: "no data" is what it says for a
date before its records begin, and a number it holds no record of reads as
"no" after that, even one outside the US (which the adapter never asks about;
see :mod:`._coverage`).

A ``tnList`` of several items is a batch (recorded with endpoint ``"batch"``
and every number asked); the replies come in request order, each rendered as
above.  A ``tnList`` of more than 100 items (the per-call limit TxTRIA, a
reseller of the same API, documents) or with any malformed item is a 400 for
the whole request.  The RND has no per-item error, so a number scripted with a
``ProviderError`` fails the whole request it is listed in.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Mapping
from typing import Any

from ..providers._answers import Answer
from ..providers.rnd import RndProvider
from ._backend import Backend, Credentials
from ._coverage import rnd_verdict
from ._wire_base import Incoming, Parsed, Reply, Verdict, build_adapter
from ._wire_batch import BatchParsed

__all__ = ["DEFAULT_BASE_URL", "ID_TOKEN_PATH", "MAX_TNS", "WIRE", "RndWire", "render_reply"]

#: Where the RND API lives.
DEFAULT_BASE_URL = "https://api.reassigned.us"
#: The id-token endpoint, relative to the base URL.
ID_TOKEN_PATH = "/b/public/api/idToken"  # noqa: S105 - a path, not a secret
_QUERY_PATH = "/api/tn"
_TN = re.compile(r"[2-9][0-9]{2}[2-9][0-9]{6}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Most ``tnList`` items one query may carry.
MAX_TNS = 100


def render_reply(tn: str, date: str, company_id: str, answer: Answer) -> dict[str, object]:
    """One ``replies[]`` item: the answer about ``tn`` for the date asked (``YYYY-MM-DD``)."""
    said = rnd_verdict("+1" + tn, answer, dt.date.fromisoformat(date))
    disconnected = {Verdict.CHANGED: "yes", Verdict.UNCHANGED: "no"}.get(said, "no_data")
    return {"tn": tn, "disconnected": disconnected, "companyId": company_id, "dateProvided": date}


def _message(status: int, text: str) -> Reply:
    return Reply.json(status, {"message": text})


def _query_items(payload: object) -> list[object] | None:
    items = payload.get("tnList") if isinstance(payload, dict) else None
    return items if isinstance(items, list) else None


def _item_number(item: object) -> str | None:
    tn = item.get("tn") if isinstance(item, dict) else None
    return "+1" + tn if isinstance(tn, str) and _TN.fullmatch(tn) else None


def _item_date(item: object) -> dt.date | None:
    value = item.get("date") if isinstance(item, dict) else None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


class RndWire:
    """The RND API as the fake providers speak it."""

    name = "rnd"

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        """What this adapter's ``from_env()`` reads, pointing it at a fake at ``url``."""
        return {
            "RECYCLECHECK_RND_REFRESH_TOKEN": credentials.rnd_refresh_token,
            "RECYCLECHECK_RND_COMPANY_ID": credentials.rnd_company_id,
            "RECYCLECHECK_RND_BASE_URL": url,
        }

    def adapter(
        self, url: str, credentials: Credentials, transport: Mapping[str, Any], **overrides: Any
    ) -> RndProvider:
        """An :class:`RndProvider` pointed at ``url`` with the accepted refresh token."""
        accepted = {
            "refresh_token": credentials.rnd_refresh_token,
            "company_id": credentials.rnd_company_id,
            "base_url": url,
        }
        return build_adapter(RndProvider, accepted, transport, overrides)

    def route(self, method: str, route: str) -> str | None:
        """``POST /b/public/api/idToken`` and ``POST /api/tn``."""
        if method != "POST":
            return None
        return {ID_TOKEN_PATH: "token", _QUERY_PATH: "lookup"}.get(route)

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """The ``tnList`` item's number (as +1 E.164) and date; a batch's numbers."""
        items = _query_items(request.json()) if endpoint == "lookup" else None
        if not items:
            return Parsed(endpoint)
        if len(items) > 1:
            return BatchParsed("batch", numbers=tuple(_item_number(item) for item in items))
        return Parsed(endpoint, _item_number(items[0]), _item_date(items[0]))

    def respond(  # noqa: PLR0911 - one early return per refusal the service sends
        self, request: Incoming, parsed: Parsed, backend: Backend
    ) -> Reply:
        """Issue an id token, or check it and answer every ``tnList`` item."""
        if parsed.endpoint == "token":
            return self._token(request, backend)
        token = request.headers.get("Authorization", "")
        if not token or (backend.credentials is not None and not backend.token_valid("rnd", token)):
            return self.refused(request, parsed)
        items = _query_items(request.json())
        if not items or len(items) > MAX_TNS:
            return _message(400, "tnList must hold 1 to 100 items")
        replies = []
        today = dt.datetime.now(dt.timezone.utc).date()
        for item in items:
            tn = item.get("tn") if isinstance(item, dict) else None
            company = item.get("companyId") if isinstance(item, dict) else None
            day = _item_date(item)
            if not isinstance(tn, str) or not _TN.fullmatch(tn) or day is None or day > today:
                return _message(400, "each item needs a 10-digit tn and a past date")
            if not isinstance(company, str):
                return _message(400, "each item needs a companyId")
            credentials = backend.credentials
            if credentials is not None and company != credentials.rnd_company_id:
                return _message(403, "companyId does not belong to this subscriber")
            replies.append(render_reply(tn, day.isoformat(), company, backend.answer("+1" + tn)))
        return Reply.json(200, {"replies": replies})

    @staticmethod
    def _token(request: Incoming, backend: Backend) -> Reply:
        payload = request.json()
        refresh = payload.get("refreshToken") if isinstance(payload, dict) else None
        if not isinstance(refresh, str) or not refresh:
            return _message(400, "refreshToken is required")
        credentials = backend.credentials
        if credentials is not None and not hmac.compare_digest(
            refresh.encode(), credentials.rnd_refresh_token.encode()
        ):
            return _message(401, "refresh token is invalid or expired")
        return Reply.json(200, {"idToken": backend.issue_token("rnd", jwt=True)})

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        """401 with a JSON message."""
        return _message(401, "Unauthorized")

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        """429 with a JSON message."""
        reply = _message(429, "Too Many Requests")
        if retry_after is None:
            return reply
        return Reply(reply.status, {**reply.headers, "Retry-After": retry_after}, reply.body)

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        """5xx with a JSON message."""
        return _message(status, "Internal Server Error" if status != 503 else "Service Unavailable")


#: The one RND wire instance.
WIRE = RndWire()
