"""The answers every `/v1` route documents besides its success."""

from __future__ import annotations

from typing import Any

from drip.api.v1.reading import MAX_BODY_BYTES
from drip.api.v1.schemas import Problem, ValidationProblem

#: Refusals shared by every `/v1` route, for the OpenAPI document.
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "The API key is missing, wrong or revoked"},
    403: {"model": Problem, "description": "The API key lacks the route's scope"},
    422: {"model": ValidationProblem, "description": "A field is invalid: `loc` names it"},
    503: {"model": Problem, "description": "The database is unavailable; nothing was changed"},
}
#: And for routes that read a body.
WITH_BODY: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    413: {"model": Problem, "description": f"The body is over {MAX_BODY_BYTES} bytes"},
}


def body_schema(model: Any) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its JSON body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
