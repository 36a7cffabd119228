"""Contacts: who they are (identity) and what happens to them (lifecycle, privacy)."""
