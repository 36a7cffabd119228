"""Sending: the delivery state machine, the Dramatiq actor that runs it, and the transports."""
