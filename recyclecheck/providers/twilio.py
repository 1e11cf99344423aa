"""Twilio Lookup v2 ``reassigned_number``: was this US number disconnected since a date.

One ``GET /v2/PhoneNumbers/{number}?Fields=reassigned_number&LastVerifiedDate=YYYYMMDD``
with HTTP Basic auth; the answer is boolean-shaped (:class:`ChangedSince`).
Many numbers at once: ``POST /v2/batch/query`` (:meth:`TwilioProvider.lookup_many`),
each number with its own ``last_verified_date``, read by :func:`parse_batch`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from .._batch import Entry, Item, Result, as_result, check_items, plan, send_planned
from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse, rate_limited
from .._phone import mask
from ..exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from ._answers import Answer, ChangedSince, NoData, NotCovered
from ._wire import (
    Strict,
    basic_authorization,
    check_base_url,
    check_credential,
    check_e164,
    check_since,
    env_ca_bundle,
    env_value,
    error_code,
)

__all__ = ["DEFAULT_BASE_URL", "MAX_BATCH", "TwilioProvider", "parse_batch", "parse_lookup"]

#: Where Twilio's Lookup API lives.
DEFAULT_BASE_URL = "https://lookups.twilio.com"
#: Most numbers one ``POST /v2/batch/query`` carries.  Twilio documents no maximum
#: (its OpenAPI description sets no ``maxItems``): this is our own cap, which keeps
#: a batch answer (~0.5 KiB a number) far inside the default 256 KiB body cap.
MAX_BATCH = 100

_NAME = "twilio"
_log = logging.getLogger("recyclecheck.providers.twilio")

# Twilio error codes (https://www.twilio.com/docs/api/errors/<code>).
_RATE_LIMITED = frozenset({"20429", "60611", "60616", "60626"})  # concurrency, quota, pace
_REFUSED = frozenset({"20003"})  # bad credentials
# Account-level approval: the reassigned_number package is enabled per account only after
# Twilio approves a carrier registration (error 60606, "Lookup Package is Not Enabled").
_NEEDS_APPROVAL = frozenset({"60606"})
_NOT_COVERED = frozenset({"60607", "60610"})  # unsupported country; outside coverage
_UPSTREAM = frozenset({"60608"})  # Twilio's data source replied with an error

_VERDICTS = {"yes": True, "no": False}
_BATCH_PATH = "/v2/batch/query"
_COMPACT_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
# After these a batch sends no more requests: its other chunks get the same error.
_ENDS_BATCH = (ProviderRateLimited, ProviderAuthError)
# Stands in a result list until every item is answered (each one is, by construction).
_UNANSWERED: Result = ProviderResponseError("not answered", provider=_NAME)


class TwilioProvider:
    """Ask Twilio Lookup v2 whether a number was reassigned since a date.

    ``account_sid`` and ``auth_token`` are an Account SID and Auth Token, or
    (better, revocable) an API Key SID and secret.  ``base_url`` may point at a
    sandbox; ``ca_bundle``, ``proxies`` and ``max_body`` configure the shared
    HTTP client.  The account must be approved for the ``reassigned_number``
    package, which covers US numbers only.  :meth:`lookup_many` asks about many
    numbers through ``POST /v2/batch/query``, :data:`max_batch` a request.
    """

    name: str = _NAME
    #: Most numbers one batch request carries (see :data:`MAX_BATCH`).
    max_batch: int = MAX_BATCH

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        user = check_credential(account_sid, "account_sid", colon=False)
        secret = check_credential(auth_token, "auth_token")
        self._base_url = check_base_url(base_url)
        self._authorization = basic_authorization(user, secret)
        self._http = HttpClient(
            provider=_NAME,
            ca_bundle=ca_bundle,
            proxies=proxies,
            max_body=max_body,
            base_url=self._base_url,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TwilioProvider:
        """Build from environment variables (``environ`` defaults to ``os.environ``).

        Reads ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and the optional
        ``RECYCLECHECK_TWILIO_BASE_URL`` and ``RECYCLECHECK_CA_BUNDLE`` (a PEM
        file of the roots to trust instead of the default ones).
        """
        env = os.environ if environ is None else environ
        return cls(
            env_value(env, "TWILIO_ACCOUNT_SID", required=True) or "",
            env_value(env, "TWILIO_AUTH_TOKEN", required=True) or "",
            base_url=env_value(env, "RECYCLECHECK_TWILIO_BASE_URL", required=False)
            or DEFAULT_BASE_URL,
            ca_bundle=env_ca_bundle(env),
        )

    def __repr__(self) -> str:
        return f"<TwilioProvider base_url={self._base_url!r}>"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def _inline_ready(self, number: str) -> bool:
        # The Guard may run this lookup on the caller's thread: every step after
        # this is bounded by the deadline once a warm connection is there.
        return self._http.ready_inline()

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether the E.164 ``number`` was reassigned on or after ``since``."""
        number = check_e164(number)
        since = check_since(since)
        response = self._http.request(
            "GET",
            f"{self._base_url}/v2/PhoneNumbers/{urllib.parse.quote(number, safe='')}",
            params={
                "Fields": "reassigned_number",
                "LastVerifiedDate": f"{since.year:04d}{since.month:02d}{since.day:02d}",
            },
            headers={"Authorization": self._authorization},
        )
        if response.status != 200:
            answer: Answer = self._failed(response)
        else:
            answer = parse_lookup(self._http.json_body(response), number, since)
        if _log.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
            _log.debug("twilio answered %s for %s", type(answer).__name__, mask(number))
        return answer

    def lookup_many(self, items: Sequence[Item]) -> list[Result]:
        """Ask about every ``(number, since)`` of ``items`` through ``POST /v2/batch/query``.

        Returns one result per item, in order: the :data:`Answer`, or the
        :class:`ProviderError` standing for it.  Requests carry at most
        :attr:`max_batch` numbers and never the same number twice (Twilio
        refuses that with error 60626); an item repeating an earlier question
        shares its answer.  Numbers outside the US are sent like any other and
        answered as Twilio answers them (60607, so :class:`NotCovered`).  A
        failure of a whole request (timeout, 5xx, 429, refused credentials,
        an unreadable answer) is the result of each of its items; after a rate
        limit or refused credentials no further request is sent and the items
        left get the same error.  Everything runs under the deadline in force.
        Bad input raises :class:`InvalidInput` before any request.
        """
        asked = check_items(items)
        results: list[Result] = [_UNANSWERED] * len(asked)
        questions = [
            (index, number, (number, since)) for index, (number, since) in enumerate(asked)
        ]
        sent = send_planned(plan(questions, self.max_batch), results, self._batch)
        _log.debug("twilio batch: %d items, %d requests sent", len(asked), sent)
        return results

    def _batch(self, entries: list[Entry[str, Item]]) -> tuple[list[Result], ProviderError | None]:
        """One batch request: a result per entry, and the failure that ends the batch, if any."""
        asked = [entry.question for entry in entries]
        body = {
            "phone_numbers": [
                {
                    "correlation_id": str(position),
                    "phone_number": number,
                    "fields": ["reassigned_number"],
                    "reassigned_number": {"last_verified_date": _yyyymmdd(since)},
                }
                for position, (number, since) in enumerate(asked)
            ]
        }
        try:
            response = self._http.request(
                "POST",
                f"{self._base_url}{_BATCH_PATH}",
                headers={"Authorization": self._authorization, "Content-Type": "application/json"},
                body=json.dumps(body, separators=(",", ":")).encode("ascii"),
            )
            if response.status != 200:
                raise self._batch_failed(response)
            payload = self._http.json_body(response)
        except ProviderError as exc:
            failure = as_result(exc)
            return [failure] * len(entries), failure if isinstance(failure, _ENDS_BATCH) else None
        return parse_batch(payload, asked), None

    def _batch_failed(self, response: HttpResponse) -> ProviderError:
        """The error a non-200 batch answer stands for (a coverage code is not an answer here)."""
        try:
            self._failed(response)
        except ProviderError as exc:
            return exc
        return ProviderResponseError(
            "batch refused with a coverage code", provider=_NAME, status=response.status
        )

    def _failed(self, response: HttpResponse) -> NotCovered:
        """Map an error response: NotCovered for coverage codes, else raise."""
        try:
            body = self._http.json_body(response)
        except ProviderResponseError:
            body = None  # e.g. a proxy's HTML page: the status alone decides
        code = error_code(body.get("code")) if isinstance(body, dict) else None
        status = response.status
        if status >= 500 and code not in _RATE_LIMITED:
            self._http.raise_for_status(response, code=code)
        if code is not None or status in (401, 403, 429):
            return _map_code(code, status, response.headers.get("Retry-After"))
        self._http.raise_for_status(response)
        raise ProviderResponseError("unexpected status", provider=_NAME, status=status)


def _yyyymmdd(since: dt.date) -> str:
    return f"{since.year:04d}{since.month:02d}{since.day:02d}"


def _map_code(code: str | None, status: int, retry_after: str | None) -> NotCovered:
    """Map a Twilio error code from an error body or a package's ``error_code``.

    Coverage codes give NotCovered; every other code raises the matching ProviderError.
    """
    if status == 429 or code in _RATE_LIMITED:
        raise rate_limited(_NAME, status=status, code=code, retry_after=retry_after)
    if code in _NOT_COVERED:
        return NotCovered()
    if code in _NEEDS_APPROVAL:
        raise ProviderAuthError(
            "the account is not enabled for the reassigned_number package: "
            "it needs Twilio's approval (carrier registration) first",
            provider=_NAME,
            status=status,
            code=code,
        )
    if status in (401, 403) or code in _REFUSED:
        raise ProviderAuthError("credentials refused", provider=_NAME, status=status, code=code)
    if code in _UPSTREAM:
        raise ProviderUnavailable(
            "Twilio's data source failed", provider=_NAME, status=status, code=code
        )
    raise ProviderResponseError(
        "provider reported an error", provider=_NAME, status=status, code=code
    )


def parse_lookup(payload: object, number: str, since: dt.date) -> Answer:
    """Turn a decoded ``200`` Lookup body into an answer about ``number`` since ``since``.

    Only ``valid: true``, the same number echoed, a null ``error_code``, the
    asked date echoed and ``is_number_reassigned: "no"`` give a permissive
    ``ChangedSince(since, False)``; anything malformed raises
    :class:`ProviderResponseError`.
    """
    strict = Strict(_NAME)
    return _parse_body(strict, strict.obj(payload, "body"), number, since, compact=False)


def _parse_body(
    strict: Strict, body: dict[str, Any], number: str, since: dt.date, *, compact: bool
) -> Answer:
    """A Lookup body (or a batch item past its ``twilio_error_code``).

    ``compact``: the date may also be echoed as sent (``YYYYMMDD``), for batch items.
    """
    if not strict.boolean(strict.field(body, "valid", "valid"), "valid"):
        return NoData()  # Twilio cannot evaluate a number it holds invalid
    if strict.string(strict.field(body, "phone_number", "phone_number"), "phone_number") != number:
        raise strict.error("answer is about another number")
    package = strict.field(body, "reassigned_number", "reassigned_number")
    if package is None:
        return NotCovered()  # Twilio leaves a package null where it does not apply
    return _parse_package(strict, strict.obj(package, "reassigned_number"), since, compact=compact)


def _parse_package(
    strict: Strict, package: dict[str, Any], since: dt.date, *, compact: bool
) -> Answer:
    raw_code = strict.field(package, "error_code", "reassigned_number.error_code")
    if raw_code is not None:
        code = error_code(raw_code)
        if code is None:
            raise strict.error("reassigned_number.error_code is not an error code")
        return _map_code(code, 200, None)
    verdict = strict.string(
        strict.field(package, "is_number_reassigned", "reassigned_number.is_number_reassigned"),
        "reassigned_number.is_number_reassigned",
    )
    if verdict not in (*_VERDICTS, "no_data_available"):
        raise strict.error("reassigned_number.is_number_reassigned has an unknown value")
    raw_date = strict.field(package, "last_verified_date", "reassigned_number.last_verified_date")
    if compact and isinstance(raw_date, str) and _COMPACT_DATE.fullmatch(raw_date):
        echoed: dt.date | None = _compact_date(raw_date)
    else:
        echoed = strict.iso_date(raw_date, "reassigned_number.last_verified_date")
    if echoed != since:
        raise strict.error("answer is about another date")
    if verdict == "no_data_available":
        return NoData()
    return ChangedSince(since, _VERDICTS[verdict])


def _compact_date(text: str) -> dt.date | None:
    match = _COMPACT_DATE.fullmatch(text)
    if match is None:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def parse_batch(payload: object, asked: Sequence[Item]) -> list[Result]:
    """Turn a decoded ``200`` batch body into one result per ``(number, since)`` asked, in order.

    Request item ``i`` went out with ``correlation_id`` ``str(i)``; each answer
    item is matched by its ``correlation_id``, or, without one, by its
    ``phone_number`` (unique in a request).  Per item: a ``twilio_error_code``
    is mapped like an error code of a single Lookup (coverage codes give
    :class:`NotCovered`, others that item's :class:`ProviderError`); otherwise
    the item is read like a single Lookup body (:func:`parse_lookup`), its
    ``last_verified_date`` echoed as ``YYYY-MM-DD`` or as sent (``YYYYMMDD``).
    An item asked and not answered, answered twice, or answered about another
    number or date gets a :class:`ProviderResponseError`; a body that is not a
    list of items, or that holds an item matching nothing asked, gives one to
    every item.  Nothing here raises.
    """
    strict = Strict(_NAME)
    by_number = {number: position for position, (number, _since) in enumerate(asked)}
    try:
        found = strict.grouped(
            payload,
            "phone_numbers",
            len(asked),
            lambda item: _position(strict, item, by_number, len(asked)),
            item="phone_numbers item",
        )
    except ProviderResponseError as exc:
        return [as_result(exc)] * len(asked)
    return [
        _item_result(strict, answers, number, since)
        for answers, (number, since) in zip(found, asked, strict=True)
    ]


def _position(strict: Strict, item: dict[str, Any], by_number: dict[str, int], count: int) -> int:
    correlation = item.get("correlation_id")
    if correlation is None:
        number = item.get("phone_number")
        if isinstance(number, str) and number in by_number:
            return by_number[number]
        raise strict.error("a batch item matches no number asked")
    if isinstance(correlation, str) and correlation.isdigit() and correlation.isascii():
        position = int(correlation)
        if position < count and str(position) == correlation:
            return position
    raise strict.error("a batch item's correlation_id matches no number asked")


def _item_result(
    strict: Strict, answers: list[dict[str, Any]], number: str, since: dt.date
) -> Result:
    if not answers:
        return strict.error("no answer for this number in the batch")
    if len(answers) > 1:
        return strict.error("several answers for this number in the batch")
    item = answers[0]
    try:
        raw_code = item.get("twilio_error_code")
        if raw_code is not None:
            code = error_code(raw_code)
            if code is None:
                raise strict.error("twilio_error_code is not an error code")
            return _map_code(code, 200, None)
        return _parse_body(strict, item, number, since, compact=True)
    except ProviderError as exc:
        return as_result(exc)
