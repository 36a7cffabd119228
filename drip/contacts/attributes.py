"""A contact's attributes: what other apps set (`PATCH /v1/contacts/{email}`, an enrolment)
and what templates and step conditions read (`contact.attributes.target_role`).

Names are `ATTRIBUTE_NAME` (lower case, a letter first, at most 40 characters), values are
scalars (a string of at most `MAX_STRING` characters, a finite number, true or false);
null in a change deletes the name. A contact's attributes, serialised, stay under
`MAX_ATTRIBUTES_BYTES`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: What an attribute's name looks like.
ATTRIBUTE_NAME = r"^[a-z][a-z0-9_]{0,39}$"
#: The longest string value.
MAX_STRING = 1000
#: The largest a contact's attributes may be, as JSON.
MAX_ATTRIBUTES_BYTES = 16 * 1024

_NAME = re.compile(ATTRIBUTE_NAME)


class AttributesTooLarge(ValueError):
    """A merge would make a contact's attributes larger than `MAX_ATTRIBUTES_BYTES`."""


def check_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` if every name and value is acceptable (null allowed: it deletes), else
    ValueError naming the first bad one."""
    for name, value in changes.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"attribute name {name[:50]!r} must match {ATTRIBUTE_NAME}")
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise ValueError(f"attribute {name}: at most {MAX_STRING} characters")
            check_text(value, what=f"attribute {name}")
        elif isinstance(value, int):
            if abs(value) >= 2**63:
                raise ValueError(f"attribute {name}: the number is too large")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"attribute {name}: the number must be finite")
        else:
            raise ValueError(f"attribute {name}: a value is a string, a number, true or false")
    return changes


def merge_attributes(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`current` with `changes` applied (null deletes a name); `AttributesTooLarge` when the
    result is over `MAX_ATTRIBUTES_BYTES`. Returns a new dict: `current` is left as it is."""
    merged = {**current}
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if len(json.dumps(merged).encode()) > MAX_ATTRIBUTES_BYTES:
        raise AttributesTooLarge(
            f"a contact's attributes are at most {MAX_ATTRIBUTES_BYTES} bytes as JSON"
        )
    return merged


def check_text(value: str, *, what: str) -> str:
    """`value` unless it holds a NUL or a lone surrogate (neither can be stored)."""
    if "\x00" in value:
        raise ValueError(f"{what}: a NUL character cannot be stored")
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what}: not valid Unicode text") from exc
    return value
