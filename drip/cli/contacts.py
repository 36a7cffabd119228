"""`drip enroll` and `drip contacts ...`: one subscriber at a time."""

from __future__ import annotations

import json

import typer
from pydantic import ValidationError
from rich.markup import escape

from drip.audit import current_operator, record_audit
from drip.cli.common import BY, console, errors, load_settings, opened_runtime
from drip.cli.contact_import import import_file
from drip.cli.output import JSON, print_json, short_time, table
from drip.contacts.identity import normalize_email
from drip.contacts.lifecycle import stop_contact
from drip.contacts.privacy import export_contact, find_contact, forget_contact
from drip.db import transaction, utcnow
from drip.errors import UnknownSequence
from drip.models import Contact, ContactStatus
from drip.reports.timeline import Timeline, contact_timeline
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact

app = typer.Typer(
    help="Subscribers: timeline, unsubscribe, export, forget, import.", no_args_is_help=True
)

app.command("import")(import_file)

REASON = typer.Option(..., "--reason", help="Why, for the audit trail.")


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
        queued = result.delivery_to_enqueue
        if queued is not None and not runtime.enqueue_after_commit([queued]):
            console.print("Redis is unreachable: the scheduler will send it when it is back")
        if result.enrolled:
            console.print("enrolled")
        elif result.confirmation_sent:
            console.print("confirmation email sent: the sequence starts when it is confirmed")
        else:
            console.print("no change: already enrolled, unsubscribed or suppressed")


def _existing(contact: Contact | None) -> Contact:
    """The contact, or exit 1 saying there is none."""
    if contact is None:
        errors.print("no contact with that address")
        raise typer.Exit(1)
    return contact


def _address(email: str) -> str:
    try:
        return normalize_email(email)
    except ValueError as exc:
        errors.print(f"EMAIL: {exc}")
        raise typer.Exit(2) from exc


@app.command()
def export(email: str = typer.Argument(..., help="The subscriber's address.")) -> None:
    """Print everything stored about a contact as JSON."""
    address = _address(email)
    with opened_runtime(load_settings()) as runtime, runtime.sessions() as session:
        contact = _existing(find_contact(session, address))
        print(json.dumps(export_contact(session, contact), indent=2, default=str))


@app.command()
def forget(
    email: str = typer.Argument(..., help="The subscriber's address."),
    reason: str = REASON,
    by: str | None = BY,
) -> None:
    """Erase a contact's personal data; keep a hashed entry so it is never mailed again."""
    address = _address(email)
    now = utcnow()
    with opened_runtime(load_settings()) as runtime, transaction(runtime.sessions) as session:
        contact = _existing(find_contact(session, address, lock=True))
        forget_contact(session, contact, now=now)
        record_audit(
            session,
            action="contact.forget",
            operator=current_operator(by),
            now=now,
            reason=reason,
            target=contact.email_hash,
        )
    console.print("forgotten: only a hashed suppression entry remains")


@app.command()
def unsubscribe(
    email: str = typer.Argument(..., help="The subscriber's address."),
    reason: str = REASON,
    by: str | None = BY,
) -> None:
    """Unsubscribe a contact from everything, as the one-click link would."""
    address = _address(email)
    now = utcnow()
    with opened_runtime(load_settings()) as runtime, transaction(runtime.sessions) as session:
        contact = _existing(find_contact(session, address, lock=True))
        cancelled = stop_contact(
            session,
            contact,
            status=ContactStatus.UNSUBSCRIBED,
            reason=f"by an operator: {reason}",
            now=now,
        )
        record_audit(
            session,
            action="contact.unsubscribe",
            operator=current_operator(by),
            now=now,
            reason=reason,
            target=contact.public_id,
            details={"cancelled": cancelled},
        )
    console.print(f"unsubscribed; {cancelled} scheduled email(s) cancelled")


@app.command()
def show(
    email: str = typer.Argument(..., help="The subscriber's address."),
    as_json: bool = JSON,
) -> None:
    """The timeline: signup, enrollments, deliveries, provider events, unsubscribe, suppression."""
    address = _address(email)
    with opened_runtime(load_settings()) as runtime, runtime.sessions() as session:
        contact = _existing(find_contact(session, address))
        timeline = contact_timeline(session, contact)
    if as_json:
        print_json(timeline.as_dict())
        return
    print_timeline(timeline)


def print_timeline(timeline: Timeline) -> None:
    """Print a timeline for people. Everything a subscriber or a provider wrote (name,
    source, reasons, event details) is printed as literal text, never read as Rich markup,
    so `[link=...]` or `[red]` in a name stays visible as typed."""
    c = timeline.contact
    console.print(
        f"[bold]{escape(c['email'] or '(forgotten)')}[/bold]  {escape(c['first_name'] or '')}  "
        f"signed up {short_time(c['signed_up_at'])} via {escape(c['source'] or '-')}"
        f"  zone {escape(c['timezone'] or '-')}",
        highlight=False,
    )
    status = c["status"] + (f": {c['status_reason']}" if c["status_reason"] else "")
    console.print(
        f"status: {escape(status)}"
        + (f" (since {short_time(c['status_changed_at'])})" if c["status_changed_at"] else ""),
        highlight=False,
    )
    table(
        "enrollments",
        ("sequence", "status", "enrolled", "ended"),
        [
            (e["sequence"], e["status"], e["enrolled_at"], e["ended_at"])
            for e in timeline.enrollments
        ],
    )
    table(
        "deliveries",
        ("id", "step", "status", "due", "sent", "provider id", "version", "note"),
        [
            (
                d["id"],
                d["step"] + (" (resend)" if d["resend"] else ""),
                d["status"],
                d["due_at"],
                d["sent_at"],
                d["provider_message_id"],
                d["sequence_version"],
                d["note"],
            )
            for d in timeline.deliveries
        ],
    )
    table(
        "events",
        ("at", "event", "step", "detail"),
        [(e["at"], e["event"], e["step"], e["detail"]) for e in timeline.events],
    )
