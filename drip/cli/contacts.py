"""`drip enroll`: what `POST /signups` does, from the command line."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from drip.cli.common import console, errors, load_settings, opened_runtime
from drip.db import transaction, utcnow
from drip.errors import UnknownSequence
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact


def enroll(
    email: str = typer.Argument(..., help="The subscriber's address."),
    sequence: str | None = typer.Option(None, help="Sequence id (default: DRIP_DEFAULT_SEQUENCE)."),
    first_name: str | None = typer.Option(None, help="First name, used in greetings."),
    timezone: str | None = typer.Option(None, help="IANA zone such as Europe/London."),
) -> None:
    """Enroll a contact in a sequence, as a signup would."""
    try:
        request = SignupRequest(
            email=email, sequence=sequence, first_name=first_name, timezone=timezone, source="cli"
        )
    except ValidationError as exc:
        for error in exc.errors():
            errors.print(f"{'.'.join(map(str, error['loc']))}: {error['msg']}", markup=False)
        raise typer.Exit(2) from exc
    settings = load_settings()
    with opened_runtime(settings) as runtime:
        try:
            with transaction(runtime.sessions) as session:
                result = enroll_contact(
                    session,
                    request,
                    catalog=runtime.catalog,
                    default_sequence=settings.default_sequence,
                    now=utcnow(),
                    queue_lease=settings.queue_lease,
                )
        except UnknownSequence as exc:
            errors.print(str(exc))
            raise typer.Exit(2) from exc
        if result.delivery_to_enqueue is not None:
            try:
                runtime.enqueue([result.delivery_to_enqueue])
            except Exception:
                console.print(
                    "Redis is unreachable: the scheduler will send step 1 when it is back"
                )
        console.print(
            "enrolled" if result.enrolled else "no change: already enrolled or unsubscribed"
        )
