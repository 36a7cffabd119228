"""What a signup may carry, validated the same way for the API form, JSON and `drip enroll`."""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drip.render.renderer import clean_header
from drip.sequences.definition import ID_PATTERN, check_timezone


def normalize_email(address: str) -> str:
    """The address as stored and compared: validated, then lower-cased as a whole."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


def email_hash(address: str) -> str:
    """The stable hash of a normalized address: what remains of a forgotten contact."""
    return hashlib.sha256(address.encode()).hexdigest()


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
