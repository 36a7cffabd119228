"""The HTTP API: signups, unsubscribe pages, health, and the signup page."""
