"""Clicks on tracked links: who is a person (`rule`) and how a click is stored (`recording`)."""
