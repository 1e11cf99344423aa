"""The US Reassigned Numbers Database (FCC RND, administered by Somos).

Was a US number permanently disconnected since a date?  A portal refresh token buys a
short-lived id token (cached, refreshed before it lapses, dropped when refused); each
lookup posts one ``tn`` + ``date`` pair, and :meth:`RndProvider.lookup_many` posts up
to :data:`MAX_BATCH` pairs a request, read by :func:`parse_batch`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import phonenumbers

from .._batch import Entry, Item, Result, as_result, check_items, plan, send_planned
from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse, finite_number
from .._phone import mask as mask_number
from ..exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
)
from ._answers import Answer, ChangedSince, NoData, NotCovered
from ._tokens import TokenCache
from ._wire import (
    Strict,
    check_base_url,
    check_credential,
    check_e164,
    check_since,
    env_ca_bundle,
    env_value,
)

__all__ = ["MAX_BATCH", "RndProvider", "parse_batch", "parse_reply"]

_log = logging.getLogger(__name__)

# Id tokens are cached this long unless their own ``exp`` claim says sooner.
_TOKEN_LIFETIME = 55 * 60.0
_MAX_TOKEN = 8192

_COMPANY_ID = re.compile(r"[A-Za-z0-9]{3,10}")
# The id token goes raw into a header: visible ASCII only, no spaces, CR or LF.
_TOKEN = re.compile(rf"[\x21-\x7e]{{1,{_MAX_TOKEN}}}")
#: NANP regions whose numbers the RND covers: the US and its territories.
_US_REGIONS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})
_VERDICTS: Mapping[str, bool | None] = {"yes": True, "no": False, "no_data": None}
# The shared client reads raw bytes and does not undo Content-Encoding: ask for none.
_JSON = {"Content-Type": "application/json"}

_ENV_REFRESH_TOKEN = "RECYCLECHECK_RND_REFRESH_TOKEN"  # noqa: S105 - a variable name
_ENV_COMPANY_ID = "RECYCLECHECK_RND_COMPANY_ID"
_ENV_BASE_URL = "RECYCLECHECK_RND_BASE_URL"
_DEFAULT_BASE_URL = "https://api.reassigned.us"
_NAME = "rnd"

#: Most ``tnList`` items one ``POST /api/tn`` carries.  No official RND API guide was
#: available (PROVIDERS.md 3.2, whose bulk limits are a gap); 100 is what TxTRIA, a
#: reseller documenting the same ``tnList`` shape, allows per call.
MAX_BATCH = 100
# After these a batch sends no more requests: its other chunks get the same error.
_ENDS_BATCH = (ProviderRateLimited, ProviderAuthError)
# Stands in a result list until every item is answered (each one is, by construction).
_UNANSWERED: Result = ProviderResponseError("not answered", provider=_NAME)


def _token_lifetime(token: str, now: float) -> float:
    """Return how long to cache ``token``: 55 minutes, or less if its JWT ``exp`` says so.

    The claim is read, not verified: it only ever shortens caching.
    """
    exp = _jwt_exp(token)
    if exp is None:
        return _TOKEN_LIFETIME
    return max(0.0, min(_TOKEN_LIFETIME, exp - now))


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > _MAX_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if exp is not None and finite_number(exp) else None


def _us_tn(number: str) -> str | None:
    """Return the 10-digit NANP number of a US or US-territory number, else None."""
    if not number.startswith("+1") or len(number) != 12:
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.region_code_for_number(parsed) not in _US_REGIONS:
        return None
    return number[2:]


class RndProvider:
    """Query the FCC Reassigned Numbers Database.

    ``refresh_token`` is the API refresh token from the RND portal and
    ``company_id`` the subscriber's Company ID (3-10 letters or digits).
    Only valid +1 numbers of the US and its territories are asked about; any
    other number is :class:`NotCovered` without a request.  Answers:
    ``disconnected`` ``yes`` -> ``ChangedSince(since, True)``, ``no`` ->
    ``ChangedSince(since, False)``, ``no_data`` -> :class:`NoData`.
    ``ca_bundle``, ``proxies`` and ``max_body`` configure the shared HTTP client.
    :meth:`lookup_many` asks about many numbers, :data:`max_batch` a request.
    """

    name: str = _NAME
    #: Most numbers one ``tnList`` carries (see :data:`MAX_BATCH`).
    max_batch: int = MAX_BATCH

    def __init__(
        self,
        refresh_token: str,
        company_id: str,
        *,
        base_url: str = _DEFAULT_BASE_URL,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(company_id, str) or not _COMPANY_ID.fullmatch(company_id):
            raise ConfigurationError("company_id must be 3-10 ASCII letters or digits")
        self._refresh_token = check_credential(refresh_token, "refresh_token")
        self._base = check_base_url(base_url)
        self._company_id = company_id
        self._http = HttpClient(
            provider=self.name, ca_bundle=ca_bundle, proxies=proxies, max_body=max_body
        )
        self._tokens = TokenCache(self._fetch_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RndProvider:
        """Build the provider from environment variables (``os.environ`` unless given).

        Required: ``RECYCLECHECK_RND_REFRESH_TOKEN`` and ``RECYCLECHECK_RND_COMPANY_ID``;
        optional: ``RECYCLECHECK_RND_BASE_URL`` and ``RECYCLECHECK_CA_BUNDLE`` (a PEM
        file of the roots to trust instead of the default ones).  A missing or empty
        required variable raises :class:`ConfigurationError` naming the variable
        (never its value).
        """
        env = os.environ if environ is None else environ
        return cls(
            env_value(env, _ENV_REFRESH_TOKEN, required=True) or "",
            env_value(env, _ENV_COMPANY_ID, required=True) or "",
            base_url=env_value(env, _ENV_BASE_URL, required=False) or _DEFAULT_BASE_URL,
            ca_bundle=env_ca_bundle(env),
        )

    def __repr__(self) -> str:
        return f"RndProvider(base_url={self._base!r}, company_id={self._company_id!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def _inline_ready(self, number: str) -> bool:
        # A number the RND does not cover is answered without I/O, so the Guard may
        # run it on the caller's thread; a covered one may wait on a token fetch.
        return isinstance(number, str) and _us_tn(number) is None

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether ``number`` (E.164) was permanently disconnected on or after ``since``."""
        number = check_e164(number)
        since = check_since(since)
        tn = _us_tn(number)
        if tn is None:
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("rnd: %s not covered, no request made", mask_number(number))
            return NotCovered()
        result = self._answer(self._query([(tn, since)]), tn, since)
        if _log.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
            _log.debug("rnd: %s -> %s", mask_number(number), type(result).__name__)
        return result

    def lookup_many(self, items: Sequence[Item]) -> list[Result]:
        """Ask about every ``(number, since)`` of ``items``, up to :attr:`max_batch` a request.

        Returns one result per item, in order: the :data:`Answer`, or the
        :class:`ProviderError` standing for it.  Numbers the RND does not cover
        are :class:`NotCovered` without a request, as in :meth:`lookup`.  A
        request never lists the same ``tn`` twice (replies are matched to
        questions by ``tn``); an item repeating an earlier question shares its
        answer.  A failure of a whole request (timeout, 5xx, 429, a refused
        token, an unreadable answer) is the result of each of its items; after
        a rate limit or a refusal no further request is sent and the items
        left get the same error (a refused id token is dropped, so the next
        call fetches a fresh one).  Everything runs under the deadline in
        force.  Bad input raises :class:`InvalidInput` before any request.
        """
        asked = check_items(items)
        results: list[Result] = [_UNANSWERED] * len(asked)
        questions: list[tuple[int, str, tuple[str, dt.date]]] = []
        for index, (number, since) in enumerate(asked):
            tn = _us_tn(number)
            if tn is None:
                results[index] = NotCovered()
            else:
                questions.append((index, tn, (tn, since)))
        sent = send_planned(plan(questions, self.max_batch), results, self._batch)
        _log.debug("rnd batch: %d items, %d requests sent", len(asked), sent)
        return results

    def _batch(
        self, entries: list[Entry[str, tuple[str, dt.date]]]
    ) -> tuple[list[Result], ProviderError | None]:
        """One ``tnList`` request: a result per entry, and the failure that ends the batch."""
        asked = [entry.question for entry in entries]
        try:
            response = self._query(asked)
            self._http.raise_for_status(response)
            payload = self._http.json_body(response)
        except ProviderError as exc:
            failure = as_result(exc)
            return [failure] * len(entries), failure if isinstance(failure, _ENDS_BATCH) else None
        return parse_batch(payload, asked, self._company_id, status=response.status), None

    def _query(self, asked: Sequence[tuple[str, dt.date]]) -> HttpResponse:
        """POST one ``tnList`` with the id token; a refused token is dropped and raised."""
        items = [
            {"tn": tn, "date": since.isoformat(), "companyId": self._company_id}
            for tn, since in asked
        ]
        response = self._http.request(
            "POST",
            f"{self._base}/api/tn",
            headers={"Authorization": self._tokens.get(), **_JSON},
            body=json.dumps({"tnList": items}, separators=(",", ":")).encode("ascii"),
        )
        if response.status in (401, 403):
            # Expired or revoked mid-life: drop it so a retry fetches a fresh one.
            self._tokens.invalidate()
            raise ProviderAuthError(
                "id token refused", provider=self.name, status=response.status, retryable=True
            )
        return response

    def _answer(self, response: HttpResponse, tn: str, since: dt.date) -> Answer:
        """Turn one single-number query response into an answer, or raise the ProviderError."""
        self._http.raise_for_status(response)
        payload = self._http.json_body(response)
        return parse_reply(payload, tn, since, self._company_id, status=response.status)

    def _fetch_token(self) -> tuple[str, float]:
        body = json.dumps({"refreshToken": self._refresh_token}).encode("ascii")
        response = self._http.request(
            "POST", f"{self._base}/b/public/api/idToken", headers=_JSON, body=body
        )
        if response.status in (400, 401, 403):
            raise ProviderAuthError(
                "refresh token refused", provider=self.name, status=response.status
            )
        self._http.raise_for_status(response)
        strict = Strict(self.name, response.status)
        answer = strict.obj(self._http.json_body(response), "token answer")
        token = strict.string(strict.field(answer, "idToken", "idToken"), "idToken")
        if not _TOKEN.fullmatch(token):
            raise strict.error("idToken is empty or not printable ASCII")
        _log.debug("rnd: obtained a new id token")
        return token, _token_lifetime(token, time.time())


def _read_reply(
    strict: Strict, reply: dict[str, Any], tn: str, since: dt.date, company_id: str
) -> Answer:
    """One ``replies[]`` item about ``tn`` for ``since``, or raise ProviderResponseError."""
    if strict.field(reply, "tn", "tn") != tn:
        raise strict.error("reply is for another number")
    date = since.isoformat()
    echoed = [reply[key] for key in ("dateProvided", "date") if key in reply]
    if not echoed or any(value != date for value in echoed):
        raise strict.error("reply is for another date")
    if reply.get("companyId", company_id) != company_id:
        raise strict.error("reply is for another company")
    verdict = strict.string(strict.field(reply, "disconnected", "disconnected"), "disconnected")
    if verdict not in _VERDICTS:
        raise strict.error("disconnected is not yes, no or no_data")
    changed = _VERDICTS[verdict]
    return NoData() if changed is None else ChangedSince(since=since, changed=changed)


def parse_reply(
    payload: object, tn: str, since: dt.date, company_id: str, *, status: int = 200
) -> Answer:
    """Turn a decoded 2xx ``/api/tn`` body asking about one ``tn`` into its answer.

    Only exactly one reply, about ``tn``, echoing the date asked (``dateProvided``,
    and ``date`` if present) and ``company_id`` (if present), with ``disconnected``
    exactly ``yes``, ``no`` or ``no_data``, is an answer; anything else raises
    :class:`ProviderResponseError`.
    """
    strict = Strict(_NAME, status)
    answer = strict.obj(payload, "answer")
    replies = strict.field(answer, "replies", "replies")
    if not isinstance(replies, list) or len(replies) != 1:
        raise strict.error("replies is not a list of exactly one reply")
    return _read_reply(strict, strict.obj(replies[0], "reply"), tn, since, company_id)


def parse_batch(
    payload: object, asked: Sequence[tuple[str, dt.date]], company_id: str, *, status: int = 200
) -> list[Result]:
    """Turn a decoded 2xx ``/api/tn`` body into one result per ``(tn, since)`` asked, in order.

    ``asked`` lists each 10-digit ``tn`` once.  Replies are matched to
    questions by ``tn`` (the RND's order is not relied on) and each is read as
    :meth:`RndProvider.lookup` reads its one reply: the echoed date and
    ``companyId`` must be the ones asked and ``disconnected`` exactly ``yes``,
    ``no`` or ``no_data``.  A question with no reply, with several, or with a
    reply about another date or company gets a :class:`ProviderResponseError`;
    a body that is not a list of replies, or that holds a reply about no
    ``tn`` asked, gives one to every question.  Nothing here raises.
    """
    strict = Strict(_NAME, status)
    by_tn = {tn: position for position, (tn, _since) in enumerate(asked)}

    def position(reply: dict[str, Any]) -> int:
        tn = reply.get("tn")
        if not isinstance(tn, str) or tn not in by_tn:
            raise strict.error("a reply is about no number asked")
        return by_tn[tn]

    try:
        found = strict.grouped(
            payload, "replies", len(asked), position, body="answer", item="reply"
        )
    except ProviderResponseError as exc:
        return [as_result(exc)] * len(asked)
    return [
        _reply_result(strict, matches, tn, since, company_id)
        for matches, (tn, since) in zip(found, asked, strict=True)
    ]


def _reply_result(
    strict: Strict, matches: list[dict[str, Any]], tn: str, since: dt.date, company_id: str
) -> Result:
    if not matches:
        return strict.error("no reply for this number")
    if len(matches) > 1:
        return strict.error("several replies for this number")
    try:
        return _read_reply(strict, matches[0], tn, since, company_id)
    except ProviderError as exc:
        return as_result(exc)
