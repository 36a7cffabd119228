"""A step's `when:` condition: an expression in the bounded sandbox, read at send time.

An expression sees:

- `contact`: `first_name`, `timezone`, `attributes` (what other apps set with
  `PATCH /v1/contacts/{email}` or an enrolment);
- `has_event(name, within=None)`: whether the contact has an event of that name (within
  a delay such as "7d" before now, when given);
- `event_count(name, within=None)`: how many;
- `downloaded()`: whether the contact fetched the sequence's file.

For example `when: "not downloaded()"`, or `when: "contact.attributes.years_experience
>= 10 and not has_event('booked-call')"`. Provider opens never drive a condition (machine
opens inflate them). An expression that does not parse, or names anything else, is
refused when the sequence is loaded, with the step's line; one that fails at send time
(an attribute of the wrong type) counts as false, with the reason on the row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from drip.render.environment import BoundedSandbox
from drip.sequences.definition import EVENT_NAME_PATTERN
from drip.sequences.delays import parse_delay

#: The names an expression may use.
NAMES = frozenset({"contact", "has_event", "event_count", "downloaded"})

#: The functions, with how many positional arguments each takes at most.
FUNCTIONS = {"has_event": 2, "event_count": 2, "downloaded": 0}

_ENVIRONMENT = BoundedSandbox()


class ConditionError(ValueError):
    """The expression is not one drip can read; the message says what is wrong."""


@dataclass(frozen=True)
class ContactView:
    """What an expression may read of the contact."""

    first_name: str | None
    timezone: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Situation:
    """Everything a condition may read at one moment: the contact, its events (name and
    when), and whether it downloaded the sequence's file."""

    contact: ContactView
    events: Sequence[tuple[str, datetime]] = ()
    downloaded: bool = False


def check_condition(source: str) -> None:
    """Raise ConditionError unless `source` parses and names only what conditions offer,
    with event names and `within` delays that are valid."""
    try:
        tree = _ENVIRONMENT.parse("{{ (" + source + ") }}")
    except TemplateSyntaxError as exc:
        raise ConditionError(f"the condition does not parse: {exc.message}") from exc
    for name in tree.find_all(nodes.Name):
        if name.name not in NAMES:
            raise ConditionError(
                f"the condition names {name.name!r}; it may use {', '.join(sorted(NAMES))}"
            )
    for attribute in tree.find_all(nodes.Getattr):
        if attribute.attr.startswith("_"):
            raise ConditionError(f"the condition reads {attribute.attr!r}: no name starts with _")
    for call in tree.find_all(nodes.Call):
        callee = call.node.name if isinstance(call.node, nodes.Name) else None
        if callee not in FUNCTIONS:
            continue  # a method of a value, such as contact.attributes.get(...)
        if len(call.args) > FUNCTIONS[callee] or call.dyn_args or call.dyn_kwargs:
            raise ConditionError(f"{callee}() takes at most {FUNCTIONS[callee]} arguments")
        if callee != "downloaded":
            _check_event_call(callee, call)


def _check_event_call(callee: str, call: nodes.Call) -> None:
    arguments = list(call.args) + [k.value for k in call.kwargs if k.key == "within"]
    if not call.args or not isinstance(call.args[0], nodes.Const):
        raise ConditionError(f"{callee}() needs an event name in quotes first")
    name = call.args[0].value
    if not isinstance(name, str) or not re.fullmatch(EVENT_NAME_PATTERN, name):
        raise ConditionError(f"{callee}(): {name!r} is not an event name")
    for extra in arguments[1:]:
        if not isinstance(extra, nodes.Const) or not isinstance(extra.value, str):
            raise ConditionError(f"{callee}(): `within` is a delay in quotes, such as '7d'")
        try:
            parse_delay(extra.value)
        except ValueError as exc:
            raise ConditionError(f"{callee}(): within {extra.value!r}: {exc}") from exc
    for keyword in call.kwargs:
        if keyword.key != "within":
            raise ConditionError(f"{callee}() has no argument {keyword.key!r}")


def evaluate(source: str, situation: Situation, *, now: datetime) -> bool:
    """The condition's value for `situation` at `now`; ConditionError when it cannot be
    computed (a missing attribute, a comparison of the wrong types, a sandbox refusal)."""

    def matching(name: str, within: str | None) -> list[datetime]:
        since = now - parse_delay(within) if within is not None else None
        return [at for n, at in situation.events if n == name and (since is None or at >= since)]

    def has_event(name: str, within: str | None = None) -> bool:
        return bool(matching(name, within))

    def event_count(name: str, within: str | None = None) -> int:
        return len(matching(name, within))

    def downloaded() -> bool:
        return situation.downloaded

    try:
        expression = _ENVIRONMENT.compile_expression(source, undefined_to_none=False)
        value = expression(
            contact=situation.contact,
            has_event=has_event,
            event_count=event_count,
            downloaded=downloaded,
        )
    except (UndefinedError, SecurityError, TypeError, ValueError, TemplateSyntaxError) as exc:
        raise ConditionError(f"{type(exc).__name__}: {exc}") from exc
    return bool(value)
