"""pytest fixtures for testing an app's recycled-number handling.

Registered as the ``recyclecheck`` plugin through the ``pytest11`` entry point,
so the fixtures are there as soon as recyclecheck is installed
(``pytest -p no:recyclecheck`` turns the plugin off):

``recyclecheck_sandbox``
    a :class:`~recyclecheck.testing.ScriptedSandbox`: a provider to script
    (``.reissued(number, on=...)``, ``.never_reissued(number)``,
    ``.no_data(number)``, ``.down()``, ``.hang()``...) and re-script between checks.
``recyclecheck_guard``
    a ``Guard`` on ``recyclecheck_sandbox`` that records into
    ``recyclecheck_decisions``; closed after the test.
``recyclecheck_decisions``
    a :class:`~recyclecheck.testing.DecisionLog`; pass it as ``Guard(on_decision=...)``.
``recyclecheck_fake_server``
    a started :class:`~recyclecheck.testing.FakeProviderServer`, stopped after
    the test; options from ``@pytest.mark.recyclecheck_fake_server(numbers, tls=True, ...)``
    or from indirect parametrisation with a dict.
``recyclecheck_fake_server_env``
    the same server, with every adapter's ``from_env()`` variables pointing at
    it for the test (plain HTTP only).
``recyclecheck_responses``
    an active ``responses.RequestsMock`` for :func:`~recyclecheck.testing.mock_twilio`
    and the other ``mock_*`` helpers.

Importing this module imports neither ``responses`` nor ``trustme``; each is
imported only by the fixture (or server option) that needs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .._guard import Guard
from ._decisions import DecisionLog
from ._script import ScriptedSandbox
from ._server import FakeProviderServer

if TYPE_CHECKING:
    import responses

__all__ = [
    "recyclecheck_decisions",
    "recyclecheck_fake_server",
    "recyclecheck_fake_server_env",
    "recyclecheck_guard",
    "recyclecheck_responses",
    "recyclecheck_sandbox",
]

#: The marker that passes options to ``recyclecheck_fake_server``.
SERVER_MARKER = "recyclecheck_fake_server"


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{SERVER_MARKER}(numbers=None, *, tls=False, credentials=None, token_lifetime=3600): "
        "FakeProviderServer options for the recyclecheck_fake_server fixture",
    )


@pytest.fixture
def recyclecheck_sandbox() -> Iterator[ScriptedSandbox]:
    """A fresh :class:`ScriptedSandbox` (no numbers scripted, provider up).

    Lookups still waiting in ``slow()`` or ``hang()`` are released when the test ends.
    """
    sandbox = ScriptedSandbox()
    try:
        yield sandbox
    finally:
        sandbox.release()


@pytest.fixture
def recyclecheck_decisions() -> DecisionLog:
    """An empty :class:`DecisionLog`, recording what ``recyclecheck_guard`` decides."""
    return DecisionLog()


@pytest.fixture
def recyclecheck_guard(
    recyclecheck_sandbox: ScriptedSandbox, recyclecheck_decisions: DecisionLog
) -> Iterator[Guard]:
    """A ``Guard`` with default options on ``recyclecheck_sandbox``.

    Its decisions go to ``recyclecheck_decisions``; each script change clears
    its cache and breaker (see ``ScriptedSandbox.guard``).  For other options
    (``timeout=``, ``policy=``...) call ``recyclecheck_sandbox.guard(...)`` instead.
    """
    with recyclecheck_sandbox.guard(on_decision=recyclecheck_decisions) as guard:
        yield guard


def _server_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(SERVER_MARKER)
    if marker is not None:
        if len(marker.args) > 1:
            raise pytest.UsageError(f"@{SERVER_MARKER} takes at most one positional: numbers")
        if marker.args:
            options["numbers"] = marker.args[0]
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, Mapping):
            raise pytest.UsageError(
                "parametrize recyclecheck_fake_server indirectly with dicts of options"
            )
        options.update(param)
    return options


@pytest.fixture
def recyclecheck_fake_server(request: pytest.FixtureRequest) -> Iterator[FakeProviderServer]:
    """A started :class:`FakeProviderServer`, stopped (hung connections cut) after the test.

    Options come from ``@pytest.mark.recyclecheck_fake_server(numbers, tls=True, ...)``
    and from indirect parametrisation (``parametrize("recyclecheck_fake_server",
    [{"tls": True}], indirect=True)``).  Script it with ``server.script(...)``,
    fail it with ``server.inject(...)``, and get adapters wired to it from
    ``server.twilio()``, ``server.aliyun()``...
    """
    with FakeProviderServer(**_server_options(request)) as server:
        yield server


@pytest.fixture
def recyclecheck_fake_server_env(
    recyclecheck_fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> FakeProviderServer:
    """``recyclecheck_fake_server``, with every adapter's ``from_env()`` pointed at it.

    Sets the variables of ``server.environment()`` for the test, so app code
    that builds ``TwilioProvider.from_env()`` (or any other adapter) talks to
    the fake server.  Plain HTTP only: ``from_env()`` takes no CA bundle.
    """
    server = recyclecheck_fake_server
    if server.tls:
        pytest.fail(
            "recyclecheck_fake_server_env needs a plain-HTTP server: from_env() takes no "
            "CA bundle; with tls=True build adapters with server.twilio() etc.",
            pytrace=False,
        )
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    return server


@pytest.fixture
def recyclecheck_responses() -> Iterator[responses.RequestsMock]:
    """An active ``responses.RequestsMock`` (unfired mocks allowed), for the ``mock_*`` helpers.

    ``mock_twilio(recyclecheck_responses, {"+12015550123": date(2024, 3, 1)})``
    makes every ``TwilioProvider`` in the test answer from that script.  Any
    other HTTP request through ``requests`` fails with ``ConnectionError``.
    """
    try:
        import responses  # noqa: PLC0415 - a test-only extra, imported only when asked for
    except ImportError:  # pragma: no cover - the tests extra installs it
        pytest.fail(
            "recyclecheck_responses needs responses: pip install 'recyclecheck[testing]'",
            pytrace=False,
        )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
