"""The one table of providers the SDK can build by name.

Each entry knows the adapter class (imported only when used) and the
environment variables its ``from_env()`` reads.  The CLI, the Flask extension
and routed configurations (:meth:`Router.from_env`, routes files) all read this
table, so a new adapter is added in one place (plus, for the testing kit, its
``_wire_<name>`` fake, which ``FakeProviderServer.provider(name)`` finds by the
same name).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import attrs

from ._answers import Provider
from .exceptions import ConfigurationError

__all__ = ["PROVIDERS", "ProviderEntry", "provider_from_env"]


@attrs.frozen
class ProviderEntry:
    """One buildable provider.

    ``name`` as users type it (and as ``FakeProviderServer.provider(name)``
    takes it), where its class lives, and the variables ``from_env()`` reads
    (required first).
    """

    name: str
    module: str
    cls: str
    variables: tuple[str, ...]

    def load(self) -> Any:
        """The adapter class (its module is imported on first use)."""
        return getattr(importlib.import_module(self.module), self.cls)

    def from_env(self, environ: Mapping[str, str] | None = None) -> Provider:
        """Build the adapter from environment variables (``os.environ`` by default)."""
        provider: Provider = self.load().from_env(environ)
        return provider


_COMMON = ("RECYCLECHECK_CA_BUNDLE",)

PROVIDERS: Mapping[str, ProviderEntry] = {
    entry.name: entry
    for entry in (
        ProviderEntry(
            "aliyun",
            "recyclecheck.providers.aliyun",
            "AliyunProvider",
            (
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                "RECYCLECHECK_ALIYUN_AUTH_CODE",
                "RECYCLECHECK_ALIYUN_ENDPOINT",
                "RECYCLECHECK_ALIYUN_MASK",
                *_COMMON,
            ),
        ),
        ProviderEntry(
            "camara",
            "recyclecheck.providers.camara",
            "CamaraProvider",
            (
                "RECYCLECHECK_CAMARA_API_ROOT",
                "RECYCLECHECK_CAMARA_ACCESS_TOKEN",
                "RECYCLECHECK_CAMARA_TOKEN_URL",
                "RECYCLECHECK_CAMARA_CLIENT_ID",
                "RECYCLECHECK_CAMARA_CLIENT_SECRET",
                "RECYCLECHECK_CAMARA_PRIVATE_KEY_FILE",
                "RECYCLECHECK_CAMARA_KEY_ID",
                "RECYCLECHECK_CAMARA_API_VERSION",
                "RECYCLECHECK_CAMARA_THREE_LEGGED",
                *_COMMON,
            ),
        ),
        ProviderEntry(
            "rnd",
            "recyclecheck.providers.rnd",
            "RndProvider",
            (
                "RECYCLECHECK_RND_REFRESH_TOKEN",
                "RECYCLECHECK_RND_COMPANY_ID",
                "RECYCLECHECK_RND_BASE_URL",
                *_COMMON,
            ),
        ),
        ProviderEntry(
            "telesign",
            "recyclecheck.providers.telesign",
            "TelesignProvider",
            (
                "RECYCLECHECK_TELESIGN_CUSTOMER_ID",
                "RECYCLECHECK_TELESIGN_API_KEY",
                "RECYCLECHECK_TELESIGN_BASE_URL",
                "RECYCLECHECK_TELESIGN_AUTH",
                *_COMMON,
            ),
        ),
        ProviderEntry(
            "twilio",
            "recyclecheck.providers.twilio",
            "TwilioProvider",
            (
                "TWILIO_ACCOUNT_SID",
                "TWILIO_AUTH_TOKEN",
                "RECYCLECHECK_TWILIO_BASE_URL",
                *_COMMON,
            ),
        ),
    )
}


def provider_from_env(name: str, environ: Mapping[str, str] | None = None) -> Provider:
    """Build the provider called ``name`` from environment variables.

    Raises :class:`ConfigurationError` for an unknown name (listing the known
    ones) or missing variables (naming them, never their values).
    """
    entry = PROVIDERS.get(name) if isinstance(name, str) else None
    if entry is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigurationError(f"unknown provider {name!r}: one of {known}")
    return entry.from_env(environ)
