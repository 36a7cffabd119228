"""`POST /v1/enrollments`: a trusted server enrols an address (scope `enrollments:write`).

The same consent path as the signup form (`drip.signup.service.enroll_contact`): an
address that unsubscribed, left the sequence or was forgotten gets a confirmation email
and the state `pending_confirmation`; a bounced or complaining one is refused with the
state `suppressed`. Unlike the form, it is not subject to the per-IP limit, and it answers
with the enrolment's state: 201 when this request enrolled the address or asked it to
confirm, 200 when nothing changed. Idempotent by `id`: a repeat gets the first answer.
Attributes are merged into the contact (`drip.contacts.attributes`). Events other apps
posted for the address before it was known, attached by `enroll_contact`, are handed to the
events actor after commit, so their triggers apply at once.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from drip.api.deps import get_runtime
from drip.api.v1.auth import require
from drip.api.v1.idempotency import claim_request, record_answer
from drip.api.v1.reading import parse_body, read_body, unprocessable
from drip.api.v1.responses import WITH_BODY, body_schema
from drip.api.v1.schemas import EnrollmentAnswer, EnrollmentBody
from drip.contacts.attributes import AttributesTooLarge, merge_attributes
from drip.contacts.identity import email_hash
from drip.db import transaction, utcnow
from drip.events.contact_actor import enqueue_contact_events
from drip.events.contact_apply import unapplied_events_of
from drip.keys.scopes import Scope
from drip.models import Contact, Enrollment, EnrollmentStatus
from drip.runtime import Runtime
from drip.signup.service import enroll_contact

log = structlog.get_logger(__name__)
router = APIRouter(tags=["v1"])

#: The kind of request in `api_requests`.
KIND = "enrollments"

#: The contact's source when the body names none.
SOURCE = "api"

#: The state an enrolment answers with, where it is not the enrolment's status.
STATES = {EnrollmentStatus.PENDING: "pending_confirmation"}


@router.post(
    "/v1/enrollments",
    status_code=201,
    response_model=EnrollmentAnswer,
    responses={200: {"model": EnrollmentAnswer, "description": "Nothing changed"}, **WITH_BODY},
    openapi_extra=body_schema(EnrollmentBody),
    dependencies=[Depends(require(Scope.ENROLLMENTS_WRITE))],
)
async def post_enrollment(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Enrol an address in a sequence, once by `id`, under every consent rule."""
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    return await run_in_threadpool(_enroll, runtime, body)


def _enroll(runtime: Runtime, body: bytes) -> Response:
    enrollment = parse_body(body, EnrollmentBody)
    if isinstance(enrollment, Response):
        return enrollment
    if enrollment.sequence not in runtime.catalog:
        return unprocessable(
            [
                {
                    "loc": ["body", "sequence"],
                    "msg": f"unknown sequence {enrollment.sequence!r}",
                    "type": "unknown_sequence",
                }
            ]
        )
    if enrollment.source is None:
        enrollment = enrollment.model_copy(update={"source": SOURCE})
    now = utcnow()
    try:
        with transaction(runtime.sessions) as session:
            earlier = claim_request(session, KIND, enrollment.id, now=now)
            if earlier is not None:
                return JSONResponse(earlier.answer, status_code=earlier.status_code)
            result = enroll_contact(
                session,
                enrollment,
                catalog=runtime.catalog,
                default_sequence=runtime.settings.default_sequence,
                now=now,
                queue_lease=runtime.settings.queue_lease,
            )
            state, contact_id = _state(session, enrollment)
            # Events posted before the address was known, attached by `enroll_contact`
            waiting = unapplied_events_of(session, contact_id)
            status_code = 201 if result.enrolled or result.confirmation_sent else 200
            answer = EnrollmentAnswer(
                id=enrollment.id, sequence=enrollment.sequence, state=state
            ).model_dump()
            record_answer(session, KIND, enrollment.id, status_code=status_code, answer=answer)
    except AttributesTooLarge as exc:  # nothing was written
        return unprocessable(
            [{"loc": ["body", "attributes"], "msg": str(exc), "type": "value_error"}]
        )
    if result.delivery_to_enqueue is not None:
        runtime.enqueue_after_commit([result.delivery_to_enqueue])
    if waiting:
        try:
            enqueue_contact_events(runtime.broker, waiting)
        except Exception as exc:  # the scheduler's recovery applies them
            log.warning("contact_events.enqueue_failed", events=len(waiting), error=str(exc))
    return JSONResponse(answer, status_code=status_code)


def _state(session: Session, enrollment: EnrollmentBody) -> tuple[str, int]:
    """The enrolment's state after `enroll_contact`, and the contact's id; merges the
    attributes into a contact that may be mailed."""
    contact = session.scalars(
        select(Contact).where(Contact.email_hash == email_hash(enrollment.email))
    ).one()
    if contact.is_hard_suppressed:
        return "suppressed", contact.id
    if enrollment.attributes:  # too large: the caller rolls back
        contact.attributes = merge_attributes(contact.attributes or {}, enrollment.attributes)
    status = session.scalar(
        select(Enrollment.status).where(
            Enrollment.contact_id == contact.id, Enrollment.sequence_id == enrollment.sequence
        )
    )
    if status is None:  # a run a concurrent erasure removed: nothing is enrolled
        return "cancelled", contact.id
    return STATES.get(status, status.value), contact.id
