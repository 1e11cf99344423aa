"""Routing by country: each number to an ordered chain of providers, with fallback.

A :class:`Router` is itself a provider, so ``Guard(provider=router)`` stays one
call.  Given to a Guard, each provider in it gets a lane of its own (breaker,
worker slots, cache namespace), and the Guard walks the chain inside the
check's one deadline.  Called directly (``router.lookup``), it walks the chain
the same way, without lanes.

The rules, pure and shared by both walkers:

- the route is chosen by the number's region (``"CN"``) first, then its country
  calling code (``"+86"``), then the default chain; a number no route covers
  gets :class:`NotCovered`, never an error;
- after each provider, the walk stops on a definite answer (changed or not) and
  moves on when the answer is one the route falls back on (``not_covered``,
  ``no_data``, ``failure`` — all three by default);
- each provider may use an equal share of the time left among the providers
  still to ask (the first of two gets half, the second all that is then left),
  so a hanging first provider leaves time for the second;
- when every provider fell back, the last one asked decides.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import phonenumbers

from ._answers import Answer, NotCovered, Provider
from ._deadline import deadline_scope, remaining_time
from ._policy import Reason, classify
from .exceptions import ConfigurationError, ProviderError

__all__ = ["Fallback", "Route", "Router", "budget"]


class Fallback(str, enum.Enum):
    """What makes a route ask its next provider."""

    NOT_COVERED = "not_covered"
    NO_DATA = "no_data"
    FAILURE = "failure"

    def __str__(self) -> str:
        return self.value


_ALL_FALLBACKS = frozenset(Fallback)
_FALLBACK_OF = {
    Reason.NOT_COVERED: Fallback.NOT_COVERED,
    Reason.NO_DATA: Fallback.NO_DATA,
    Reason.PROVIDER_UNAVAILABLE: Fallback.FAILURE,
}


def _providers(value: Iterable[Provider]) -> tuple[Provider, ...]:
    chain = tuple(value)
    for provider in chain:
        name = getattr(provider, "name", None)
        if not isinstance(name, str) or not name or not callable(getattr(provider, "lookup", None)):
            raise ConfigurationError("a route's providers need a str name and a lookup() method")
        if isinstance(provider, Router):
            raise ConfigurationError("a route cannot hold another Router")
    if len({p.name for p in chain}) != len(chain):
        raise ConfigurationError("a provider appears twice in one route")
    return chain


def _fallbacks(value: Iterable[Fallback | str]) -> frozenset[Fallback]:
    try:
        return frozenset(Fallback(item) for item in value)
    except ValueError:
        raise ConfigurationError(
            "fall_back_on takes 'not_covered', 'no_data' and 'failure'"
        ) from None


@attrs.frozen
class Route:
    """An ordered chain of providers and what makes it move to the next one."""

    providers: tuple[Provider, ...] = attrs.field(converter=_providers)
    fall_back_on: frozenset[Fallback] = attrs.field(default=_ALL_FALLBACKS, converter=_fallbacks)

    def falls_back(self, result: Answer | ProviderError, since: dt.date) -> bool:
        """Whether this result sends the walk to the next provider."""
        fallback = _FALLBACK_OF.get(classify(result, since))
        return fallback is not None and fallback in self.fall_back_on


def budget(deadline: float, providers_left: int, now: float) -> float:
    """The deadline for the next provider: an equal share of the time left."""
    return now + max(0.0, deadline - now) / max(1, providers_left)


_NOWHERE = Route(())


def _provider_by_name(name: str, environ: Mapping[str, str] | None) -> Provider:
    if name == "sandbox":
        from .providers import SandboxProvider  # noqa: PLC0415 - adapters load on demand

        return SandboxProvider.demo()
    from ._registry import provider_from_env  # noqa: PLC0415 - adapters load on demand

    return provider_from_env(name, environ)


def _as_route(value: Route | Sequence[Provider]) -> Route:
    return value if isinstance(value, Route) else Route(value)


def _route_key(key: object) -> tuple[str, str]:
    """``("cc", "86")`` for ``"+86"``, ``("region", "CN")`` for ``"CN"``."""
    if isinstance(key, str) and key.startswith("+") and key[1:].isdigit():
        if phonenumbers.region_code_for_country_code(int(key[1:])) == "ZZ":
            raise ConfigurationError(f"route {key!r} is not a country calling code")
        return "cc", key[1:]
    if isinstance(key, str) and key.upper() in phonenumbers.SUPPORTED_REGIONS:
        return "region", key.upper()
    raise ConfigurationError("route keys are country calling codes ('+86') or region codes ('CN')")


class Router:
    """Sends each number to the chain of providers that covers it.

    ``routes`` maps a country calling code (``"+1"``) or a region (``"US"``,
    more specific, checked first) to a :class:`Route` or a list of providers;
    ``default`` is the chain for every other number (none: ``not_covered``).
    A provider may appear in several routes; providers are told apart by name.
    """

    name = "router"

    def __init__(
        self,
        routes: Mapping[str, Route | Sequence[Provider]],
        *,
        default: Route | Sequence[Provider] = (),
    ) -> None:
        if not isinstance(routes, Mapping):
            raise ConfigurationError("routes must map '+86' or 'CN' to a list of providers")
        self._by_code: dict[str, Route] = {}
        self._by_region: dict[str, Route] = {}
        for key, value in routes.items():
            kind, code = _route_key(key)
            (self._by_code if kind == "cc" else self._by_region)[code] = _as_route(value)
        self.default = _as_route(default)
        seen: dict[str, Provider] = {}
        for route in (*self._by_region.values(), *self._by_code.values(), self.default):
            for provider in route.providers:
                if seen.setdefault(provider.name, provider) is not provider:
                    raise ConfigurationError(f"two different providers are named {provider.name!r}")
        #: Every distinct provider, in the order first seen.
        self.providers: tuple[Provider, ...] = tuple(seen.values())

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Router:
        """Build from a routes mapping (e.g. a JSON routes file) naming providers.

        ``{"routes": {"+86": ["aliyun"], "+1": ["rnd", "twilio"]}, "default":
        ["camara"], "fall_back_on": ["not_covered", "no_data", "failure"]}``.
        Each name is built once by its ``from_env()`` (see the provider
        registry); ``"sandbox"`` is the demo sandbox.  ``fall_back_on`` is
        optional and applies to every route.
        """
        if not isinstance(config, Mapping) or not isinstance(config.get("routes", {}), Mapping):
            raise ConfigurationError('routes config must be {"routes": {"+86": ["aliyun"]}, ...}')
        unknown = set(config) - {"routes", "default", "fall_back_on"}
        if unknown:
            raise ConfigurationError(f"unknown routes config keys: {sorted(unknown)}")
        fall_back_on = config.get("fall_back_on", list(Fallback))
        built: dict[str, Provider] = {}

        def chain(names: object) -> Route:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigurationError("each route is a list of provider names")
            providers = []
            for name in names:
                if name not in built:
                    built[name] = _provider_by_name(name, environ)
                providers.append(built[name])
            return Route(providers, fall_back_on=fall_back_on)

        routes = {key: chain(names) for key, names in config.get("routes", {}).items()}
        return cls(routes, default=chain(config.get("default", [])))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Router:
        """Build from ``RECYCLECHECK_ROUTES`` (``os.environ`` by default).

        The value lists routes separated by ``;``, each ``KEY=name,name``, where
        ``KEY`` is a calling code (``+86``), a region (``CN``) or ``*`` for the
        default chain: ``"+86=aliyun; +1=rnd,twilio; *=camara"``.  Each provider
        is built by its own ``from_env()`` from the same environment.
        """
        env = os.environ if environ is None else environ
        spec = env.get("RECYCLECHECK_ROUTES", "").strip()
        if not spec:
            raise ConfigurationError("RECYCLECHECK_ROUTES is not set")
        routes: dict[str, list[str]] = {}
        default: list[str] = []
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            key, sep, names = part.partition("=")
            chain = [n.strip() for n in names.split(",") if n.strip()]
            if not sep or not chain:
                raise ConfigurationError(
                    "RECYCLECHECK_ROUTES entries look like '+86=aliyun' or '*=camara'"
                )
            if key.strip() == "*":
                default = chain
            else:
                routes[key.strip()] = chain
        return cls.from_config({"routes": routes, "default": default}, env)

    def __repr__(self) -> str:
        codes = [f"+{code}" for code in self._by_code] + list(self._by_region)
        return f"<Router routes={codes} default={[p.name for p in self.default.providers]}>"

    def route_for(self, e164: str) -> Route:
        """The route an E.164 number takes."""
        if self._by_region:
            try:
                region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
            except phonenumbers.NumberParseException:
                region = None
            if region in self._by_region:
                return self._by_region[region]
        # Country calling codes are prefix-free: at most one of 1-3 digits matches.
        for size in (1, 2, 3):
            route = self._by_code.get(e164[1 : 1 + size])
            if route is not None:
                return route
        return self.default

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Walk the number's chain directly (no lanes); the last provider asked decides."""
        route = self.route_for(number)
        if not route.providers:
            return NotCovered()
        left = remaining_time()
        deadline = time.monotonic() + (left if left is not None else 5.0 * len(route.providers))
        result: Answer | ProviderError = NotCovered()
        for index, provider in enumerate(route.providers):
            now = time.monotonic()
            if now >= deadline:
                break
            with deadline_scope(budget(deadline, len(route.providers) - index, now)):
                try:
                    result = provider.lookup(number, since)
                except ProviderError as exc:
                    result = exc
            if not route.falls_back(result, since):
                break
        if isinstance(result, ProviderError):
            raise result
        return result

    def close(self) -> None:
        """Close every provider that has a ``close``."""
        for provider in self.providers:
            close = getattr(provider, "close", None)
            if callable(close):
                close()
