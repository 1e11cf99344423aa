"""The CAMARA adapter's requests against the published Number Recycling 0.3 definition.

Every body is checked with ``jsonschema`` against ``CreateCheckNumRecycling`` as the
OpenAPI file publishes it (see ``camara_spec``), not against rules restated here.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recyclecheck.providers._answers import ChangedSince, NotCovered
from recyclecheck.providers.camara import API_VERSIONS, CamaraProvider, check_body

from . import camara_spec

ROOT = "https://api.operator.example/camara"
TOKEN = "static-token.0123456789"
TODAY = dt.date(2026, 6, 15)
ANCHORS = Path(__file__).resolve().parents[3] / "shared" / "anchors" / "camara" / "NumberRecycling"

#: Every E.164 number the shared rule accepts: '+', a non-zero digit, 6 to 14 more.
e164 = st.builds(
    lambda first, rest: f"+{first}{rest}",
    st.integers(1, 9),
    st.text(alphabet="0123456789", min_size=6, max_size=14),
)
dates = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))


def provider(version: str, three_legged: bool) -> CamaraProvider:
    built = CamaraProvider(ROOT, access_token=TOKEN, api_version=version, three_legged=three_legged)
    built._today = lambda: TODAY
    return built


def answer_false(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-correlator": request.headers["x-correlator"]}
    return 200, headers, b'{"phoneNumberRecycled": false}'


@pytest.mark.parametrize("release", ["r3.1-rc1", "r2.2"])
def test_the_spec_copies_are_the_published_files(release: str) -> None:
    """tests/data/camara/spec holds byte copies of the anchors (where the anchors are at hand)."""
    anchor = ANCHORS / release / "number-recycling.yaml"
    if not anchor.is_file():
        pytest.skip("the shared anchors are not beside this checkout")
    copy = camara_spec.SPEC_DIR / release / "number-recycling.yaml"
    assert copy.read_bytes() == anchor.read_bytes()


def test_the_definition_read_is_0_3() -> None:
    """The contract is the 0.3 definition: version 0.3.0-rc.1, body CreateCheckNumRecycling."""
    document = camara_spec.spec()
    assert document["info"]["version"] == "0.3.0-rc.1"
    body = document["paths"]["/check"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/CreateCheckNumRecycling"}


@pytest.mark.parametrize(
    ("body", "broken"),
    [
        ({"phoneNumber": "+8613800138000", "specifiedDate": "2024-10-31", "x": 1}, "extra field"),
        ({"phoneNumber": "+8613800138000"}, "no specifiedDate"),
        ({"specifiedDate": "2024-10-31T00:00:00Z"}, "a timestamp"),
        ({"specifiedDate": "20241031"}, "no dashes"),
        ({"specifiedDate": "2024-1-31"}, "9 characters"),
        ({"specifiedDate": "2024-02-30"}, "no such day"),
        ({"specifiedDate": 20241031}, "a number"),
        ({"phoneNumber": "8613800138000", "specifiedDate": "2024-10-31"}, "no plus"),
        ({"phoneNumber": "+0123456", "specifiedDate": "2024-10-31"}, "leading zero"),
        ({"phoneNumber": "+1234567890123456", "specifiedDate": "2024-10-31"}, "16 digits"),
    ],
)
def test_the_validator_refuses_what_the_spec_refuses(body: dict[str, Any], broken: str) -> None:
    """A control: the schema as loaded catches each kind of bad body (so passing means something)."""
    with pytest.raises(jsonschema.ValidationError):
        camara_spec.body_validator().validate(body)


def test_the_spec_example_passes() -> None:
    """The spec's own examples are a valid body."""
    schemas = camara_spec.spec()["components"]["schemas"]
    example = {
        "phoneNumber": schemas["PhoneNumber"]["example"],
        "specifiedDate": schemas["CreateCheckNumRecycling"]["properties"]["specifiedDate"][
            "example"
        ],
    }
    camara_spec.body_validator().validate(example)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number=e164,
    since=dates,
    version=st.sampled_from(API_VERSIONS),
    three_legged=st.booleans(),
)
def test_every_request_keeps_the_0_3_contract(
    number: str, since: dt.date, version: str, three_legged: bool
) -> None:
    """Whatever is asked, what goes on the wire is a valid 0.3 body (and a valid 0.2 one):
    only phoneNumber (two-legged only) and specifiedDate = since - 1 day as YYYY-MM-DD,
    never later than yesterday; a since it cannot ask about sends nothing."""
    url = f"{ROOT}/number-recycling/{version}/check"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, url, callback=answer_false)
        answer = provider(version, three_legged).lookup(number, since)
        calls = list(mock.calls)
    if since > TODAY or since == dt.date.min:
        assert answer == NotCovered()
        assert not calls
        return
    assert answer == ChangedSince(since, False)
    (call,) = calls
    for release in ("r3.1-rc1", "r2.2"):
        payload = camara_spec.check_request(
            call.request.body, call.request.headers, release=release
        )
    specified = dt.date.fromisoformat(payload["specifiedDate"])
    assert specified == since - dt.timedelta(days=1)
    assert specified < TODAY
    assert ("phoneNumber" in payload) is not three_legged
    if not three_legged:
        assert payload["phoneNumber"] == number


@given(number=e164, specified=dates, three_legged=st.booleans())
def test_check_body_is_valid_for_every_date(
    number: str, specified: dt.date, three_legged: bool
) -> None:
    """The body builder alone: any date (years 1 to 9999) gives exactly 10 characters."""
    body = check_body(None if three_legged else number, specified)
    camara_spec.body_validator().validate(json.loads(body))


@pytest.mark.parametrize("specified", [dt.datetime(2024, 1, 1), "2024-01-01", None])
def test_check_body_takes_only_a_date(specified: Any) -> None:
    """A datetime (whose isoformat has a time) or a string never becomes specifiedDate."""
    with pytest.raises(TypeError):
        check_body("+8613800138000", specified)
