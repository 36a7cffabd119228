"""Unsubscribing: per-contact signed tokens and the transaction that stops every email."""
