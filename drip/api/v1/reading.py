"""Reading a `/v1` body: at most `MAX_BODY_BYTES` (413 beyond, counted as it arrives), JSON
only, one object, validated into a model; every refusal names the field (422)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

#: The largest `/v1` body read; an event's properties are capped well below it.
MAX_BODY_BYTES = 64 * 1024

Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: Request) -> bytes | JSONResponse:
    """The raw body, or a 413 answer as soon as it (declared or received) is too large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _too_large()
    return bytes(body)


def parse_body(
    body: bytes, model: type[Model], *, context: dict[str, Any] | None = None
) -> Model | JSONResponse:
    """`body` as `model`, or a 422 answer naming each bad field."""
    try:
        fields = json.loads(body or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: a body of nothing but "[[[[..."
        return unprocessable(
            [{"loc": ["body"], "msg": "the body is not valid JSON", "type": "json_invalid"}]
        )
    if not isinstance(fields, dict):
        return unprocessable(
            [{"loc": ["body"], "msg": "the body must be a JSON object", "type": "object_type"}]
        )
    try:
        return model.model_validate(fields, context=context)
    except ValidationError as exc:
        return unprocessable(field_errors(exc, "body"))


def field_errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """pydantic's errors as `{loc, msg, type}` entries, `loc` starting with `where`."""
    return [
        {
            "loc": [where, *e["loc"]],
            "msg": e["msg"].removeprefix("Value error, "),
            "type": e["type"],
        }
        for e in exc.errors()
    ]


def unprocessable(detail: list[dict[str, Any]]) -> JSONResponse:
    """A 422 answer with `detail` as FastAPI gives it."""
    return JSONResponse({"detail": detail}, status_code=422)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_large() -> JSONResponse:
    return JSONResponse({"detail": f"the body is over {MAX_BODY_BYTES} bytes"}, status_code=413)
