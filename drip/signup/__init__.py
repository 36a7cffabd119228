"""Signups: validate, upsert the contact, enroll it and plan step 1, in one transaction."""
