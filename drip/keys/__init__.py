"""API keys for other apps: `drip_<prefix>_<secret>`, shown once, stored as a SHA-256.

- `tokens`: the key's format, how it is drawn and hashed;
- `scopes`: what a key may do;
- `store`: create, list, revoke (the CLI's `drip keys ...`, audited);
- `verify`: the check behind every `/v1` request (401 for a wrong or revoked key, 403 for a
  missing scope), which also records when the key was last used.
"""
