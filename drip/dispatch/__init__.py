"""Dispatch: the scheduler that turns due rows into Dramatiq messages, and recovers lost work."""
