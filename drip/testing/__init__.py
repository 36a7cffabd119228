"""Test doubles that speak real protocols: a fake SendGrid on loopback."""
