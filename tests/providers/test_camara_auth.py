"""CAMARA's OAuth client on its own: ``_camara_auth`` works without the adapter around it."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
import responses

from recyclecheck._http import HttpClient
from recyclecheck.exceptions import ConfigurationError, ProviderAuthError
from recyclecheck.providers import _camara_auth
from recyclecheck.providers._camara_auth import TokenClient, configure_auth

DATA = Path(__file__).resolve().parent.parent / "data" / "camara"
TOKEN_URL = "https://auth.operator.example/oauth2/token"
NAMES = {
    name: name
    for name in (
        "access_token",
        "token_url",
        "client_id",
        "client_secret",
        "private_key",
        "key_id",
        "three_legged",
        "scope",
    )
}


def auth(**options: object) -> _camara_auth.CamaraAuth:
    given: dict[str, object] = {
        "access_token": None,
        "token_url": None,
        "client_id": None,
        "client_secret": None,
        "private_key": None,
        "key_id": None,
        "three_legged": False,
        "scope": "number-recycling:check",
    }
    given.update(options)
    return configure_auth(NAMES, **given)  # type: ignore[arg-type]


def test_client_secret_grant_on_its_own() -> None:
    """TokenClient runs the grant over any HttpClient and reads the token strictly."""
    config = auth(token_url=TOKEN_URL, client_id="app", client_secret="s3cret")
    assert config.mode == "client_secret"
    http = HttpClient(provider="camara")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, json=json.loads((DATA / "token.json").read_text()))
        token, lifetime = TokenClient(config, http, provider="camara").fetch()
        body = mock.calls[0].request.body
    assert isinstance(body, bytes)
    sent = dict(urllib.parse.parse_qsl(body.decode("ascii")))
    assert token == json.loads((DATA / "token.json").read_text())["access_token"]
    assert lifetime > 0
    assert sent == {"grant_type": "client_credentials", "scope": "number-recycling:check"}


def test_refusal_names_the_provider_and_oauth_code() -> None:
    """A refused grant is ProviderAuthError carrying the OAuth error code only."""
    config = auth(token_url=TOKEN_URL, client_id="app", client_secret="s3cret")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
        with pytest.raises(ProviderAuthError) as info:
            TokenClient(config, HttpClient(provider="camara"), provider="camara").fetch()
    assert (info.value.provider, info.value.code) == ("camara", "invalid_client")
    assert "s3cret" not in str(info.value)


def test_static_token_needs_no_token_client() -> None:
    """A static token is its own mode; a TokenClient cannot be built from it."""
    config = auth(access_token="static-token.0123456789")
    assert config.mode == "access_token"
    with pytest.raises(ConfigurationError):
        TokenClient(config, HttpClient(provider="camara"), provider="camara")


def test_repr_shows_no_secret() -> None:
    """The validated options hide the secret and the token."""
    assert "s3cret" not in repr(auth(token_url=TOKEN_URL, client_id="app", client_secret="s3cret"))
    assert "tok.en" not in repr(auth(access_token="tok.en"))


def test_token_url_follows_the_shared_base_url_rule() -> None:
    """The token URL obeys the same https/loopback rule as every base URL."""
    assert auth(token_url="http://127.0.0.2:9/t", client_id="a", client_secret="b").token_url
    with pytest.raises(ConfigurationError, match="token_url"):
        auth(token_url="http://127.0.0.1.example/t", client_id="a", client_secret="b")
