"""The API for other apps, under `/v1`, each route behind an API key with one scope:

- `POST /v1/events` (`events:write`): what a contact did, stored once by the client's id;
- `POST /v1/enrollments` (`enrollments:write`): enrol an address under every consent rule;
- `GET /v1/contacts/{email}` (`contacts:read`), `PATCH /v1/contacts/{email}`
  (`contacts:write`): a contact's status, attributes and enrolments; merge attributes.
"""

from __future__ import annotations

from fastapi import APIRouter

from drip.api.v1 import contacts, enrollments, events

router = APIRouter()
router.include_router(events.router)
router.include_router(enrollments.router)
router.include_router(contacts.router)
