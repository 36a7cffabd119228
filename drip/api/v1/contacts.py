"""`GET /v1/contacts/{email}` (scope `contacts:read`) and `PATCH /v1/contacts/{email}`
(scope `contacts:write`): a contact's status, attributes and enrolments, and merging
attributes into it.

An address drip does not know, or a forgotten contact, is 404 to both. PATCH merges
(null deletes a name) under the contact's row lock; with an `id`, a repeat of it changes
nothing (a late retry never undoes a newer change) and answers the contact as it is now.
Nothing else personal is shown: no name, zone or source.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from drip.api.deps import get_runtime
from drip.api.v1.auth import require
from drip.api.v1.idempotency import claim_request, record_answer
from drip.api.v1.reading import parse_body, read_body, unprocessable
from drip.api.v1.responses import REFUSALS, WITH_BODY, body_schema
from drip.api.v1.schemas import ContactPatch, ContactView, EnrollmentView
from drip.contacts.attributes import AttributesTooLarge, merge_attributes
from drip.contacts.identity import normalize_email
from drip.contacts.privacy import find_contact
from drip.db import transaction, utcnow
from drip.keys.scopes import Scope
from drip.models import Contact, ContactStatus, Enrollment
from drip.runtime import Runtime

router = APIRouter(tags=["v1"])

#: The kind of request in `api_requests`.
KIND = "contacts.patch"
#: The address in the path.
EMAIL = Path(
    max_length=320, description="The contact's address", json_schema_extra={"format": "email"}
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No contact has this address, or it was forgotten"}
}


@router.get(
    "/v1/contacts/{email}",
    response_model=ContactView,
    responses={**REFUSALS, **NOT_FOUND},
    dependencies=[Depends(require(Scope.CONTACTS_READ))],
)
def get_contact(email: str = EMAIL, runtime: Runtime = Depends(get_runtime)) -> Response:
    """The contact's status, attributes and enrolments."""
    address = _address(email)
    if isinstance(address, Response):
        return address
    with runtime.sessions() as session:
        contact = find_contact(session, address)
        if not _known(contact):
            return _not_found()
        assert contact is not None
        return JSONResponse(_view(session, contact))


@router.patch(
    "/v1/contacts/{email}",
    response_model=ContactView,
    responses={**WITH_BODY, **NOT_FOUND},
    openapi_extra=body_schema(ContactPatch),
    dependencies=[Depends(require(Scope.CONTACTS_WRITE))],
)
async def patch_contact(
    request: Request, email: str = EMAIL, runtime: Runtime = Depends(get_runtime)
) -> Response:
    """Merge attributes into the contact (null deletes a name)."""
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    return await run_in_threadpool(_patch, runtime, email, body)


def _patch(runtime: Runtime, email: str, body: bytes) -> Response:
    address = _address(email)
    if isinstance(address, Response):
        return address
    patch = parse_body(body, ContactPatch)
    if isinstance(patch, Response):
        return patch
    try:
        with transaction(runtime.sessions) as session:
            contact = find_contact(session, address, lock=True)
            if not _known(contact):
                return _not_found()
            assert contact is not None
            repeat = patch.id is not None and (
                claim_request(session, KIND, patch.id, now=utcnow()) is not None
            )
            if not repeat:
                contact.attributes = merge_attributes(contact.attributes or {}, patch.attributes)
                if patch.id is not None:
                    record_answer(session, KIND, patch.id, status_code=200, answer={})
            return JSONResponse(_view(session, contact))
    except AttributesTooLarge as exc:  # nothing was written
        return _too_large(exc)


def _too_large(exc: AttributesTooLarge) -> Response:
    return unprocessable([{"loc": ["body", "attributes"], "msg": str(exc), "type": "value_error"}])


def _address(email: str) -> str | Response:
    try:
        return normalize_email(email)
    except ValueError as exc:
        return unprocessable([{"loc": ["path", "email"], "msg": str(exc), "type": "value_error"}])


def _known(contact: Contact | None) -> bool:
    return (
        contact is not None
        and contact.email is not None
        and contact.status is not ContactStatus.FORGOTTEN
    )


def _not_found() -> Response:
    return JSONResponse({"detail": "no contact has this address"}, status_code=404)


def _view(session: Session, contact: Contact) -> dict[str, object]:
    enrollments = session.scalars(
        select(Enrollment).where(Enrollment.contact_id == contact.id).order_by(Enrollment.id)
    )
    view = ContactView(
        email=contact.email or "",
        status=contact.status.value,
        attributes=contact.attributes or {},
        enrollments=[
            EnrollmentView(
                sequence=e.sequence_id,
                status=e.status.value,
                enrolled_at=e.enrolled_at,
                ended_at=e.ended_at,
            )
            for e in enrollments
        ],
    )
    return view.model_dump(mode="json")
