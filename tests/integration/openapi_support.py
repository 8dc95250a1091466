"""Business API responses checked against our OpenAPI document (business_api/openapi.py).

`check_response(template, method, status, body)` validates one response body with jsonschema;
`checked_client(...)` is an httpx.AsyncClient whose every response is checked that way (its
path matched to a documented template), so a test only has to make the calls. A path, method
or status the document does not list fails the check: documenting is part of the change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema

from tidings.business_api.openapi import business_api_document

DOCUMENT = business_api_document()
_VERSION = re.compile(r"v\d+\.\d+")
_PARAM = re.compile(r"\{[^/{}]+\}")


def _template_regex(template: str) -> re.Pattern[str]:
    parts = _PARAM.split(template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + "$")


_TEMPLATES = [(template, _template_regex(template)) for template in DOCUMENT["paths"]]


def template_of(path: str) -> str:
    """The documented template a concrete path matches; an unversioned path is matched as if
    it carried a version (every route answers both ways)."""
    if path in DOCUMENT["paths"]:  # a fixed path (the media download URL)
        return path
    segments = path.strip("/").split("/")
    if not _VERSION.fullmatch(segments[0]):
        path = "/v23.0" + path
    matches = [template for template, pattern in _TEMPLATES if pattern.match(path)]
    # A fixed segment beats a parameter: prefer the template with the fewest parameters.
    matches.sort(key=lambda template: len(_PARAM.findall(template)))
    if not matches:
        raise AssertionError(f"{path} is not in the Business API's OpenAPI document")
    return matches[0]


def documented_response(template: str, method: str, status: int) -> dict[str, Any]:
    operation = DOCUMENT["paths"][template].get(method.lower())
    if operation is None:
        raise AssertionError(f"{method.upper()} {template} is not documented")
    documented = operation["responses"].get(str(status))
    if documented is None:
        raise AssertionError(
            f"{method.upper()} {template} answered {status}, which the document does not list"
            f" (it lists {sorted(operation['responses'])})"
        )
    response: dict[str, Any] = documented
    return response


def response_schema(template: str, method: str, status: int) -> dict[str, Any]:
    content = documented_response(template, method, status)["content"]
    if "application/json" not in content:
        raise AssertionError(f"{method.upper()} {template} {status} is documented as {content}")
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def check_response(template: str, method: str, status: int, body: Any) -> None:
    """Validate `body` against the documented schema of this response (AssertionError if not)."""
    schema = response_schema(template, method, status)
    # The schema's `#/components/...` references resolve against the root: put them there.
    rooted = {**schema, "components": DOCUMENT["components"]}
    validator = jsonschema.Draft202012Validator(
        rooted, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise AssertionError(
            f"{method.upper()} {template} {status}: body does not match the document at"
            f" {where}: {errors[0].message}\nbody: {json.dumps(body)[:2000]}"
        )


@dataclass
class Coverage:
    """Which (template, method, status) the checked calls saw."""

    seen: set[tuple[str, str, int]] = field(default_factory=set)

    def statuses(self, template: str, method: str) -> set[int]:
        return {s for t, m, s in self.seen if (t, m) == (template, method.upper())}


async def check_httpx_response(response: httpx.Response, coverage: Coverage | None = None) -> None:
    await response.aread()
    request = response.request
    template = template_of(request.url.path)
    if response.headers.get("content-type", "").startswith("application/json"):
        check_response(template, request.method, response.status_code, response.json())
    else:  # a file: only "any type" may be documented for it
        documented = documented_response(template, request.method, response.status_code)
        assert "*/*" in documented["content"], f"{template}: a non-JSON answer is undocumented"
    if coverage is not None:
        coverage.seen.add((template, request.method.upper(), response.status_code))


def checked_client(
    base_url: str, coverage: Coverage | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """An AsyncClient for the Business API that checks every response against the document."""

    async def check(response: httpx.Response) -> None:
        await check_httpx_response(response, coverage)

    return httpx.AsyncClient(base_url=base_url, event_hooks={"response": [check]}, **kwargs)
