"""schemathesis against the API's own OpenAPI document: no 5xx, and every answer as documented."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from drip.api.app import create_app
from drip.runtime import Runtime

#: Valid by the schema is not valid by drip: "x@y" is a string but not an address, so
#: checks that expect any schema-valid body to succeed do not apply to /signups.
CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_api_never_fails_and_answers_as_documented(runtime: Runtime) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /signups",
        "GET /unsubscribe/{token}",
        "POST /unsubscribe/{token}",
        "POST /webhooks/sendgrid",
        "GET /healthz",
        "GET /metrics",
        "GET /download/{sequence_id}/{token}",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
