"""A thread-safe cache for one access token, refreshed before it expires."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["TokenCache"]


class TokenCache:
    """Hold one bearer token and fetch a new one shortly before it expires.

    ``fetch`` returns ``(token, lifetime_seconds)``; it raises a
    :class:`~recyclecheck.ProviderError` when no token can be had.  Only one
    thread fetches at a time; the others wait for and share its result.
    ``refresh_margin`` seconds before expiry the token counts as expired, so
    a request never starts with a token about to lapse in flight.
    """

    def __init__(
        self,
        fetch: Callable[[], tuple[str, float]],
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def get(self) -> str:
        """Return a token valid for at least ``refresh_margin`` more seconds."""
        token = self._token
        if token is not None and self._clock() < self._expires_at:
            return token
        with self._lock:
            if self._token is not None and self._clock() < self._expires_at:
                return self._token
            token, lifetime = self._fetch()
            # A lifetime shorter than the margin still gets used once, for half its life.
            usable = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
            self._token = token
            self._expires_at = self._clock() + max(0.0, usable)
            return token

    def invalidate(self) -> None:
        """Forget the token (after the provider refused it), so the next call fetches anew."""
        with self._lock:
            self._token = None
            self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"<TokenCache cached={self._token is not None}>"
