"""Sequences that react to what subscribers do: goals that end a run and triggers that
start one, applied to the events other apps send (`POST /v1/events`). A step's `when:`
condition is part of the sequence file's language: `drip.sequences.conditions`."""

from drip.reactions.apply import apply_contact_event

__all__ = ["apply_contact_event"]
