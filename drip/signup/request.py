"""What a signup may carry, validated the same way for the API form, JSON and `drip enroll`."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drip.contacts.identity import normalize_email
from drip.render.renderer import clean_header
from drip.sequences.definition import ID_PATTERN, check_timezone

#: The longest first name accepted.
NAME_MAX_LENGTH = 50

#: What a name holds besides letters and combining marks.
NAME_PUNCTUATION = frozenset(" '\u2019-.")

#: Letters, a period, letters: the shape of a domain name ("evil.example"), not of a name.
_DOMAIN_SHAPE = re.compile(r"[^\W\d_]{2,}\.[^\W\d_]{2,}")


def check_name(value: str) -> str:
    """`value` if it reads as a person's name, else ValueError saying what is wrong with it.

    Anyone can sign any address up, and the first email greets the subscriber by the name
    given, in its subject and heading: a free-text name would let a stranger make drip send
    "URGENT: verify your bank at evil.example/login" to anyone, from our domain. So a name
    holds only letters, combining marks, spaces, apostrophes, hyphens and periods (no
    digits, `@`, `/`, `:` or anything else a link or a command needs), is at most
    `NAME_MAX_LENGTH` characters, and does not contain a domain-shaped word.
    """
    for char in value:
        if unicodedata.category(char)[0] not in "LM" and char not in NAME_PUNCTUATION:
            raise ValueError(
                "a name may hold only letters, spaces, apostrophes, hyphens and periods, "
                f"not {char!r}"
            )
    if _DOMAIN_SHAPE.search(value):
        raise ValueError("a name may not contain a web address")
    return value


class SignupRequest(BaseModel):
    """A signup as the API and `drip enroll` accept it; `first_name` must pass `check_name`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    email: str = Field(max_length=320)
    first_name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    timezone: str | None = Field(default=None, max_length=64)
    sequence: str | None = Field(default=None, pattern=ID_PATTERN)
    source: str | None = Field(default=None, max_length=100)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("first_name")
    @classmethod
    def _a_name(cls, value: str | None) -> str | None:
        return check_name(value) if value else None

    @field_validator("source")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # CR/LF or control characters in a name would otherwise reach the To: header.
        cleaned = clean_header(value) if value else None
        return cleaned or None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value else None
