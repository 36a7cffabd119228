"""Operator actions that write: resend, retry, dead-letter requeue. Each one is audited."""
