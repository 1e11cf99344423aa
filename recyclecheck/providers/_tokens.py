"""A thread-safe cache for one access token, refreshed before it expires.

No lock is held while a token is fetched: the fetch is an HTTP request (and
the caller's code), so a thread needing a token meanwhile waits for that
fetch's outcome only as long as its own check's deadline allows, and
``invalidate`` never waits for it at all.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable

from .._deadline import remaining_time
from .._http import STANDALONE_TIMEOUT
from ..exceptions import ProviderError, ProviderTimeout, ProviderUnavailable

__all__ = ["TokenCache"]


class _Fetch:
    """One token request under way; every thread needing a token meanwhile shares its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: str | None = None
        self.error: BaseException | None = None


class TokenCache:
    """Hold one bearer token and fetch a new one shortly before it expires.

    ``fetch`` returns ``(token, lifetime_seconds)``; it raises a
    :class:`~recyclecheck.ProviderError` when no token can be had.  Only one
    thread fetches at a time; the others wait for and share its result (a
    failure too, each thread getting its own copy of the error), for at most
    the time left before their own check's deadline.  A failure is not kept:
    the next call fetches again.  ``refresh_margin`` seconds before expiry the
    token counts as expired, so a request never starts with a token about to
    lapse in flight.  ``provider`` names the provider in the errors raised
    here (by default the ``name`` of the object ``fetch`` is a method of).
    """

    def __init__(
        self,
        fetch: Callable[[], tuple[str, float]],
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        provider: str | None = None,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        if provider is None:
            owner_name = getattr(getattr(fetch, "__self__", None), "name", None)
            provider = owner_name if isinstance(owner_name, str) else None
        self._provider = provider
        self._lock = threading.Lock()
        # (token, expires_at), replaced whole so a reader never pairs one token
        # with another's expiry.
        self._current: tuple[str, float] | None = None
        self._fetching: _Fetch | None = None

    def get(self) -> str:
        """Return a token valid for at least ``refresh_margin`` more seconds."""
        # The clock is the caller's code: read outside the lock.
        now = self._clock()
        current = self._current
        if current is not None and now < current[1]:
            return current[0]
        with self._lock:
            current = self._current
            if current is not None and now < current[1]:
                return current[0]
            fetch = self._fetching
            leading = fetch is None
            if fetch is None:
                fetch = self._fetching = _Fetch()
        if leading:
            return self._lead(fetch)
        return self._follow(fetch)

    def _lead(self, fetch: _Fetch) -> str:
        """Fetch a token for every thread waiting on ``fetch``, outside the lock."""
        stored: tuple[str, float] | None = None
        try:
            token, lifetime = self._fetch()
            # A lifetime shorter than the margin still gets used once, for half its life.
            usable = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
            stored = (token, self._clock() + max(0.0, usable))
            fetch.token = token
            return token
        except BaseException as exc:
            fetch.error = exc
            raise
        finally:
            with self._lock:
                if stored is not None:
                    self._current = stored
                if self._fetching is fetch:
                    self._fetching = None
            fetch.done.set()

    def _follow(self, fetch: _Fetch) -> str:
        """Wait for another thread's fetch, no longer than this check's deadline allows."""
        left = remaining_time()
        if not fetch.done.wait(STANDALONE_TIMEOUT if left is None else max(0.0, left)):
            raise ProviderTimeout(
                "access token still being fetched at the deadline", provider=self._provider
            )
        if fetch.token is not None:
            return fetch.token
        error = fetch.error
        if isinstance(error, ProviderError):
            # A copy per thread: threads must not share (and rewrite) one traceback.
            raise copy.copy(error) from None
        raise ProviderUnavailable(
            f"token request failed ({type(error).__name__})",
            provider=self._provider,
            retryable=False,
        )

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (after the provider refused it), so the next call fetches anew.

        With ``token`` (the one that was refused), forget it only if it is still
        the cached one: a newer token another thread fetched meanwhile is kept.
        Never waits for a fetch under way.
        """
        with self._lock:
            if token is None or (self._current is not None and self._current[0] == token):
                self._current = None

    def __repr__(self) -> str:
        return f"<TokenCache cached={self._current is not None}>"
