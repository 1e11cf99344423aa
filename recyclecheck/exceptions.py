"""Every error recyclecheck raises, in one tree.

::

    RecycleCheckError
    ├── InvalidInput (also ValueError)        bad caller input; raised out of Guard.check
    │   └── InvalidPhoneNumber                the phone string is not a usable number
    ├── ConfigurationError (also ValueError)  a provider or Guard was set up wrongly
    ├── CacheUnavailable                      the cache failed a read or write a caller must
    │                                         know of (Guard.record_change; never Guard.check)
    └── ProviderError                         the provider could not give a usable answer;
        │                                     Guard.check turns these into a Decision
        ├── ProviderTimeout                   the deadline ran out
        ├── ProviderUnavailable               transport/TLS failure, 5xx, open circuit
        ├── ProviderRateLimited               429 or a provider's own rate-limit code
        ├── ProviderAuthError                 credentials refused or token not obtained
        └── ProviderResponseError             the answer was malformed or unexpected

No message in this tree ever contains a full phone number, a token, a secret or
a URL that embeds a number: adapters build messages from status codes and
provider error codes only.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CacheUnavailable",
    "ConfigurationError",
    "InvalidInput",
    "InvalidPhoneNumber",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RecycleCheckError",
]


class RecycleCheckError(Exception):
    """Root of every exception recyclecheck raises."""


class InvalidInput(RecycleCheckError, ValueError):
    """The caller passed something unusable, such as a naive or future ``bound_at``."""


class InvalidPhoneNumber(InvalidInput):
    """The phone input is not a string ``phonenumbers`` parses to a valid number."""


class ConfigurationError(RecycleCheckError, ValueError):
    """A Guard, cache or provider was configured with missing or contradictory options."""


class CacheUnavailable(RecycleCheckError):
    """The fact cache could not be read or written, and the caller must know.

    Raised only off the login path, by :meth:`Guard.record_change`, which
    merges what it reads with what it writes: acting on a failed read as if
    nothing were stored could replace a later change date with an earlier one.
    :meth:`Guard.check` never raises it (a login never fails for its cache).

    ``operation`` is ``"read"`` or ``"write"``; ``cause`` names what went
    wrong: the type of the backend's exception (``"TimeoutError"``),
    ``"circuit open"`` when the cache skipped the call after recent failures,
    ``"WatchError"`` when other writers kept changing the entry through every
    attempt of an atomic update (Redis), or ``"contention"`` for the same in a
    :class:`~recyclecheck.MemoryCache`.  Trying again later is safe.
    The message holds only these two, never a number or a key.
    """

    def __init__(self, operation: Literal["read", "write"], cause: str) -> None:
        super().__init__(operation, cause)  # positional, so the error pickles
        self.operation = operation
        self.cause = cause

    def __str__(self) -> str:
        return f"cache {self.operation} failed ({self.cause})"


class ProviderError(RecycleCheckError):
    """The provider could not give a usable answer.

    ``provider`` names the provider, ``status`` is the HTTP status where there
    was one, ``code`` the provider's own error code where it gave one, and
    ``retryable`` says whether one more attempt at the same request may succeed.
    """

    #: Whether a single retry of the same request may succeed.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        parts = [self.message]
        if self.provider:
            parts.append(f"provider={self.provider}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ProviderTimeout(ProviderError):
    """The provider did not answer within the check's deadline."""

    retryable = True


class ProviderUnavailable(ProviderError):
    """The provider could not be reached, failed (5xx), or its circuit is open."""

    retryable = True


class ProviderRateLimited(ProviderError):
    """The provider refused the request for rate or quota reasons.

    ``retry_after`` is the number of seconds the provider asked us to wait, or
    ``None`` when it did not say.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        provider: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status, code=code, retryable=False)
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = super().__str__()
        if self.retry_after is not None:
            text += f" retry_after={self.retry_after:g}"
        return text


class ProviderAuthError(ProviderError):
    """The provider refused our credentials, or no access token could be obtained."""


class ProviderResponseError(ProviderError):
    """The provider's answer was malformed, of the wrong type, too large or unexpected."""
