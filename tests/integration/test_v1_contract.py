"""The `/v1` routes in the OpenAPI document, run by schemathesis with a key holding every
scope: no 5xx, every answer as documented. And the bodies a fuzzer rarely finds: NaN and
infinities, deep nesting, not JSON, not an object, and a body over the cap (413)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from drip.api.app import create_app
from drip.api.v1.reading import MAX_BODY_BYTES
from drip.runtime import Runtime
from tests.integration.api_keys import bearer, new_key
from tests.integration.helpers import api_client

#: As in test_api_contract: a schema-valid body need not be valid to drip.
CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
V1 = {
    "POST /v1/events",
    "POST /v1/enrollments",
    "GET /v1/contacts/{email}",
    "PATCH /v1/contacts/{email}",
}


def test_every_v1_route_is_documented_behind_a_bearer_key(runtime: Runtime) -> None:
    document = api_client(runtime).get("/openapi.json").json()
    found = {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    }
    assert set(found) == V1
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for name, operation in found.items():
        assert operation["security"] == [{"HTTPBearer": []}], name
        assert {"401", "403", "422"} <= set(operation["responses"]), name


def test_the_v1_routes_never_fail_and_answer_as_documented(runtime: Runtime) -> None:
    headers = bearer(new_key(runtime))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path.startswith("/v1/")
    ]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == V1
    for operation in operations:
        strategy = operation.as_strategy()
        if operation.path == "/v1/enrollments":  # a sequence that exists, so some succeed
            strategy = strategy.map(_in_the_test_sequence)

        @given(case=strategy)
        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()


def _in_the_test_sequence(case: Any) -> Any:
    if isinstance(case.body, dict) and "sequence" in case.body:
        case.body["sequence"] = "quick"
    return case


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"id": "a", "email": "a@example.com", "name": "x", "properties": {"n": NaN}}', ["body"]),
        (
            b'{"id": "a", "email": "a@example.com", "name": "x", "properties": {"n": 1e400}}',
            ["body", "properties"],
        ),
        (
            b'{"id": "a", "email": "a@example.com", "name": "x", "properties": '
            + b'{"a":' * 12
            + b"1"
            + b"}" * 13,
            ["body", "properties"],
        ),
        (b"[" * 100_000, ["body"]),
        (b"not json", ["body"]),
        (b'["a list"]', ["body"]),
        (b"", ["body"]),
    ],
)
def test_a_body_that_cannot_be_stored_gets_422(
    runtime: Runtime, body: bytes, loc: list[str]
) -> None:
    headers = {**bearer(new_key(runtime)), "Content-Type": "application/json"}
    response = api_client(runtime).post(
        "/v1/events", content=body[:MAX_BODY_BYTES], headers=headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize("path", ["/v1/events", "/v1/enrollments"])
def test_a_body_over_the_cap_gets_413(runtime: Runtime, path: str) -> None:
    headers = {**bearer(new_key(runtime)), "Content-Type": "application/json"}
    body = b'{"id": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = api_client(runtime).post(path, content=body, headers=headers)
    assert response.status_code == 413


def test_a_streamed_body_over_the_cap_gets_413(runtime: Runtime) -> None:
    headers = {**bearer(new_key(runtime)), "Content-Type": "application/json"}

    def chunks() -> Any:  # no Content-Length: the cap is counted as the body arrives
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = api_client(runtime).post("/v1/events", content=chunks(), headers=headers)
    assert response.status_code == 413
