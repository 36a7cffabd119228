"""Subject tests: which of a step's subject variants a contact gets.

The choice is a stable hash of the contact's `public_id` and the step id, modulo the number
of variants: the same contact always gets the same variant of a step (a resend, a retry or
a second worker agree), different steps split contacts independently, and no state is kept
to choose. The variant given is recorded on the delivery (`deliveries.subject_variant`),
so the statistics hold even after the file's variants change.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, Self, TypeVar


class VariantStep(Protocol):
    """What choosing reads of a step (`drip.sequences.definition.Step`)."""

    @property
    def id(self) -> str: ...
    @property
    def subject_variants(self) -> tuple[str, ...]: ...
    def variant(self, number: int) -> Self: ...


S = TypeVar("S", bound=VariantStep)


def choose_variant(public_id: str, step_id: str, count: int) -> int:
    """The 0-based variant of a `count`-variant subject test that `public_id` gets."""
    if count < 1:
        raise ValueError("a subject test needs at least one variant")
    digest = hashlib.sha256(f"{public_id}\x00{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def variant_letter(number: int) -> str:
    """How reports name variant `number`: A, B, C..."""
    return chr(ord("A") + number)


def step_for(public_id: str, step: S) -> tuple[S, int | None]:
    """`step` as `public_id` gets it, and the variant chosen (None without a subject test)."""
    if not step.subject_variants:
        return step, None
    number = choose_variant(public_id, step.id, len(step.subject_variants))
    return step.variant(number), number


def each_variant(step: S) -> list[tuple[str, S]]:
    """The step as each variant of its subject test shows it, named "A", "B"...; for a
    step with one subject, the step itself, unnamed: what `preview` and `simulate` list."""
    if not step.subject_variants:
        return [("", step)]
    return [(variant_letter(n), step.variant(n)) for n in range(len(step.subject_variants))]
