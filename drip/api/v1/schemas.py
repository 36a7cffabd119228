"""The bodies `/v1` accepts and the answers it gives, validated with pydantic.

Every bad body gets 422 naming the field (`loc`), never a 500: text that PostgreSQL cannot
store (a NUL, a lone surrogate), numbers JSON cannot carry back (NaN, infinities) and
oversized properties or attributes are refused here, before anything is written.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from drip.contacts.attributes import check_changes, check_text
from drip.contacts.identity import normalize_email
from drip.sequences.definition import EVENT_NAME_PATTERN, ID_PATTERN
from drip.signup.request import SignupRequest

#: The largest an event's properties may be, as JSON.
MAX_PROPERTIES_BYTES = 16 * 1024
#: How deeply an event's properties may nest.
MAX_PROPERTIES_DEPTH = 8
#: How far in the future an event may say it occurred (clocks drift; a day does not).
MAX_FUTURE = timedelta(days=1)
#: The earliest time an event may say it occurred.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: The client's id of a write: what makes a repeat of it do nothing.
CLIENT_ID = Field(
    min_length=1,
    max_length=200,
    description="The client's unique id of this write: a repeat with the same id does nothing",
)

#: An address, checked as signups check it (`drip.contacts.identity.normalize_email`).
EMAIL = Field(max_length=320, json_schema_extra={"format": "email"})


def check_client_id(value: str) -> str:
    """A client id of printable characters only."""
    if not value.isprintable():
        raise ValueError("an id holds printable characters only")
    return check_text(value, what="id")


def check_json(value: Any, *, what: str, depth: int = 0) -> None:
    """ValueError unless `value` is JSON drip can store and give back: finite numbers,
    storable text, at most `MAX_PROPERTIES_DEPTH` levels."""
    if depth > MAX_PROPERTIES_DEPTH:
        raise ValueError(f"{what}: nested more than {MAX_PROPERTIES_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, what=what)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what}: numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, what=what)
            check_json(item, what=what, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, what=what, depth=depth + 1)


class EventBody(BaseModel):
    """`POST /v1/events`: something a contact did in another app."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = CLIENT_ID
    email: str = EMAIL
    name: str = Field(pattern=EVENT_NAME_PATTERN, description="For example `purchased`")
    properties: dict[str, Any] = Field(
        default_factory=dict, description=f"Any JSON object, at most {MAX_PROPERTIES_BYTES} bytes"
    )
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When it happened (default: when drip received it)"
    )

    @field_validator("id")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        return check_client_id(value)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("properties")
    @classmethod
    def _small_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json(value, what="properties")
        if len(json.dumps(value).encode()) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties are at most {MAX_PROPERTIES_BYTES} bytes as JSON")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _plausible(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        try:
            value = value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("occurred_at is out of range") from exc
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value > now + MAX_FUTURE:
            raise ValueError("occurred_at is more than a day in the future")
        if value < EARLIEST:
            raise ValueError("occurred_at is before 2000")
        return value


class EnrollmentBody(SignupRequest):
    """`POST /v1/enrollments`: a signup from a trusted server, with attributes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = CLIENT_ID
    email: str = EMAIL
    sequence: str = Field(pattern=ID_PATTERN)
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into the contact's attributes (null deletes a name)",
    )

    @field_validator("id")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        return check_client_id(value)

    @field_validator("attributes")
    @classmethod
    def _scalar_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_changes(value)


class ContactPatch(BaseModel):
    """`PATCH /v1/contacts/{email}`: attributes to merge (null deletes a name)."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any]
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Optional: a repeat with the same id does nothing, even after a later change",
    )

    @field_validator("id")
    @classmethod
    def _printable_id(cls, value: str | None) -> str | None:
        return check_client_id(value) if value is not None else None

    @field_validator("attributes")
    @classmethod
    def _scalar_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_changes(value)


class EventAccepted(BaseModel):
    """The answer to an event, the same for a repeat."""

    id: str
    status: Literal["accepted"] = "accepted"


class EnrollmentAnswer(BaseModel):
    """The answer to an enrolment: its state, the same for a repeat."""

    id: str
    sequence: str
    state: str = Field(
        description="The enrolment's status (active, completed, cancelled, converted), "
        "pending_confirmation, or suppressed (refused: the address bounced or complained)"
    )


class EnrollmentView(BaseModel):
    """One enrolment of a contact."""

    sequence: str
    status: str
    enrolled_at: datetime
    ended_at: datetime | None


class ContactView(BaseModel):
    """What `/v1/contacts/{email}` shows: status, attributes, enrolments (nothing more)."""

    email: str
    status: str
    attributes: dict[str, Any]
    enrollments: list[EnrollmentView]


class Problem(BaseModel):
    """A refusal, said in a sentence."""

    detail: str


class FieldProblem(BaseModel):
    """One invalid field: where (`loc`), what is wrong, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """A 422: every invalid field."""

    detail: list[FieldProblem]
