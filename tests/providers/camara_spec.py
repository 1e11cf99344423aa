"""The CAMARA Number Recycling request contract, read from the published OpenAPI files.

``tests/data/camara/spec/`` holds unmodified copies of the CAMARA definitions
(Apache 2.0, see the LICENSE there): ``r3.1-rc1`` is API 0.3.0-rc.1, the newest
definition at hand, and ``r2.2`` is API 0.2.0.  Requests are checked with
``jsonschema`` against the request body schema as published, plus two rules the
YAML states in prose or that a later release added:

- "This API rejects requests with JSON request bodies that contain properties
  not declared in this specification" (0.3.0-rc.1 and later): only the
  properties the schema declares may appear;
- 0.3.0-rc.2 (PR #120) fixed ``specifiedDate`` to exactly 10 characters
  (``minLength``/``maxLength`` 10), a full date.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SPEC_DIR = Path(__file__).resolve().parent.parent / "data" / "camara" / "spec"
#: The release whose definition every request is checked against (API 0.3.0-rc.1).
RELEASE = "r3.1-rc1"
_BODY = "CreateCheckNumRecycling"


@functools.cache
def spec(release: str = RELEASE) -> dict[str, Any]:
    """The OpenAPI document of ``release``, parsed."""
    loaded = yaml.safe_load((SPEC_DIR / release / "number-recycling.yaml").read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _uri(release: str) -> str:
    return f"urn:camara:number-recycling:{release}"


def _ref(release: str, name: str) -> dict[str, str]:
    """A reference to ``components/schemas/<name>`` of ``release``'s document."""
    return {"$ref": f"{_uri(release)}#/components/schemas/{name}"}


def _validator(release: str, schema: Mapping[str, Any]) -> jsonschema.Draft7Validator:
    # OpenAPI 3.0 schema objects are a JSON Schema subset; the keywords used here
    # (type, required, properties, pattern, maxLength, format) mean the same in Draft 7.
    document = Resource.from_contents(spec(release), default_specification=DRAFT7)
    registry: Registry[Any] = Registry().with_resource(_uri(release), document)
    return jsonschema.Draft7Validator(
        schema, registry=registry, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


@functools.cache
def body_validator(release: str = RELEASE) -> jsonschema.Draft7Validator:
    """Validates a check request body: the published schema plus the two rules above."""
    declared = sorted(spec(release)["components"]["schemas"][_BODY]["properties"])
    return _validator(
        release,
        {
            "allOf": [_ref(release, _BODY)],
            "propertyNames": {"enum": declared},
            "properties": {"specifiedDate": {"minLength": 10, "maxLength": 10}},
        },
    )


@functools.cache
def correlator_validator(release: str = RELEASE) -> jsonschema.Draft7Validator:
    """Validates an ``x-correlator`` header value against the spec's ``XCorrelator``."""
    return _validator(release, _ref(release, "XCorrelator"))


def check_request(
    body: bytes | str | None, headers: Mapping[str, str], *, release: str = RELEASE
) -> Any:
    """Raise ``jsonschema.ValidationError`` unless a check request keeps the contract.

    Returns the decoded body.
    """
    assert body is not None, "a check request always has a body"
    assert headers.get("Content-Type") == "application/json"
    payload = json.loads(body)
    body_validator(release).validate(payload)
    if "x-correlator" in headers:
        correlator_validator(release).validate(headers["x-correlator"])
    return payload
