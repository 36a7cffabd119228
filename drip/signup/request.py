"""What a signup may carry, validated the same way for the API form, JSON and `drip enroll`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drip.contacts.identity import normalize_email
from drip.render.renderer import clean_header
from drip.sequences.definition import ID_PATTERN, check_timezone


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    email: str = Field(max_length=320)
    first_name: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    sequence: str | None = Field(default=None, pattern=ID_PATTERN)
    source: str | None = Field(default=None, max_length=100)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("first_name", "source")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # CR/LF or control characters in a name would otherwise reach the To: header.
        cleaned = clean_header(value) if value else None
        return cleaned or None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value else None
