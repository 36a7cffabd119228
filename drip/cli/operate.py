"""`drip resend`, `drip retry`, `drip deliveries list`, `drip stats`, `drip dead-letters`."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import Progress
from sqlalchemy import select

from drip.audit import current_operator, record_audit
from drip.cli.common import BY, console, errors, load_settings, opened_runtime
from drip.cli.output import JSON, print_json, since, table
from drip.contacts.privacy import find_contact
from drip.db import transaction, utcnow
from drip.errors import OperationRefused
from drip.models import Delivery, DeliveryStatus
from drip.operations.deadletters import dead_letters, requeue
from drip.operations.resend import resend_step
from drip.operations.retry import RETRYABLE, RetryFilter, count_matching, requeue_chunks
from drip.reports.funnel import COLUMNS, OPENS_NOTE, funnel, link_funnel, scheduler_lag
from drip.reports.variants import MIN_SENT, SubjectTest, subject_tests
from drip.runtime import QUEUES

deliveries_app = typer.Typer(
    help="Deliveries: the schedule and what was sent.", no_args_is_help=True
)

REASON = typer.Option(..., "--reason", help="Why, for the audit trail.")


def resend(
    email: str = typer.Argument(..., help="The subscriber's address."),
    step: str = typer.Option(..., "--step", help="The step to send again."),
    sequence: str | None = typer.Option(
        None, "--sequence", help="Sequence id (default: DRIP_DEFAULT_SEQUENCE)."
    ),
    reason: str = REASON,
    by: str | None = BY,
) -> None:
    """Send a step again as a new delivery marked as a resend (refused after an unsubscribe)."""
    settings = load_settings()
    with opened_runtime(settings) as runtime:
        sequence_id = sequence or settings.default_sequence
        if sequence_id not in runtime.catalog:
            errors.print(f"unknown sequence {sequence_id!r}")
            raise typer.Exit(2)
        try:
            with transaction(runtime.sessions) as session:
                contact = find_contact(session, email, lock=True)
                if contact is None:
                    raise OperationRefused("no contact with that address")
                delivery_id = resend_step(
                    session,
                    contact,
                    runtime.catalog.get(sequence_id).definition,
                    step,
                    reason=reason,
                    operator=current_operator(by),
                    now=utcnow(),
                    queue_lease=settings.queue_lease,
                )
        except (OperationRefused, ValueError) as exc:
            errors.print(f"refused: {exc}")
            raise typer.Exit(1) from exc
        if not runtime.enqueue_after_commit([delivery_id]):
            console.print("Redis is unreachable: the scheduler will send it when it is back")
        console.print(f"resend queued as delivery {delivery_id}")


def retry(
    status: DeliveryStatus = typer.Option(DeliveryStatus.FAILED, help="failed or skipped."),
    since_text: str | None = typer.Option(
        None, "--since", help="Only rows changed in this window, e.g. 24h."
    ),
    sequence: str | None = typer.Option(None, help="Only this sequence."),
    step: str | None = typer.Option(None, help="Only this step."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count what would be retried; change nothing."
    ),
    reason: str = REASON,
    by: str | None = BY,
) -> None:
    """Re-queue matching failed deliveries (idempotent), with a progress bar."""
    if status not in RETRYABLE:
        errors.print(f"--status must be one of {', '.join(s.value for s in RETRYABLE)}")
        raise typer.Exit(2)
    selection = RetryFilter(status=status, since=since(since_text), sequence=sequence, step=step)
    settings = load_settings()
    with opened_runtime(settings) as runtime:
        with runtime.sessions() as session:
            total = count_matching(session, selection)
        if dry_run or total == 0:
            console.print(
                f"{total} deliver{'y' if total == 1 else 'ies'} would be retried"
                if dry_run
                else "nothing to retry"
            )
            return
        done = 0
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("re-queueing", total=total)
            for ids in requeue_chunks(
                runtime.sessions,
                selection,
                reason=reason,
                operator=current_operator(by),
                now=utcnow(),
                queue_lease=settings.queue_lease,
            ):
                if not runtime.enqueue_after_commit(ids):
                    console.print(
                        "Redis is unreachable: the scheduler will send them when it is back"
                    )
                done += len(ids)
                progress.advance(task, len(ids))
        console.print(f"{done} deliver{'y' if done == 1 else 'ies'} re-queued")


@deliveries_app.command("list")
def list_deliveries(
    status: DeliveryStatus | None = typer.Option(None, help="Only this status."),
    sequence: str | None = typer.Option(None, help="Only this sequence."),
    step: str | None = typer.Option(None, help="Only this step."),
    since_text: str | None = typer.Option(
        None, "--since", help="Only rows changed in this window, e.g. 2h."
    ),
    limit: int = typer.Option(50, min=1, help="At most this many rows, newest first."),
    as_json: bool = JSON,
) -> None:
    """Deliveries, newest first."""
    query = select(Delivery).order_by(Delivery.updated_at.desc()).limit(limit)
    for column, value in (
        (Delivery.status, status),
        (Delivery.sequence_id, sequence),
        (Delivery.step_id, step),
    ):
        if value is not None:
            query = query.where(column == value)
    window = since(since_text)
    if window is not None:
        query = query.where(Delivery.updated_at >= window)
    with opened_runtime(load_settings()) as runtime, runtime.sessions() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": d.id,
                "sequence": d.sequence_id,
                "step": d.step_id,
                "status": d.status.value,
                "resend": d.resend,
                "due_at": d.due_at.isoformat(),
                "sent_at": d.sent_at.isoformat() if d.sent_at else None,
                "attempts": d.attempts,
                "provider_message_id": d.provider_message_id,
                "note": d.error,
            }
            for d in session.scalars(query)
        ]
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ("id", "sequence", "step", "status", "due", "sent", "tries", "note"),
        [
            (
                r["id"],
                r["sequence"],
                r["step"] + (" (resend)" if r["resend"] else ""),
                r["status"],
                r["due_at"],
                r["sent_at"],
                r["attempts"],
                r["note"],
            )
            for r in rows
        ],
    )


def stats(
    sequence: str | None = typer.Option(None, help="Only this sequence."),
    since_text: str | None = typer.Option(
        None, "--since", help="Deliveries created in this window, e.g. 7d."
    ),
    links: bool = typer.Option(
        False, "--links", help="Also each tracked link: unique human clicks and click rate."
    ),
    variants: bool = typer.Option(
        False, "--variants", help="Also each subject test: per variant, with a verdict."
    ),
    as_json: bool = JSON,
) -> None:
    """The funnel per step (every step, in file order), with rates over sent, and the
    scheduler's lag; --links per tracked link, --variants per subject-test variant."""
    window = since(since_text)
    with opened_runtime(load_settings()) as runtime, runtime.sessions() as session:
        steps = funnel(session, runtime.catalog, since=window, sequence=sequence)
        lag = scheduler_lag(session, now=utcnow())
        link_lines = (
            link_funnel(session, runtime.catalog, since=window, sequence=sequence) if links else []
        )
        tests = (
            subject_tests(session, runtime.catalog, since=window, sequence=sequence)
            if variants
            else []
        )
    if as_json:
        report: dict[str, Any] = {
            "steps": [s.as_dict() for s in steps],
            "scheduler": lag.as_dict(),
        }
        if links:
            report["links"] = [line.as_dict() for line in link_lines]
        if variants:
            report["subject_tests"] = [test.as_dict() for test in tests]
        print_json(report)
        return
    rows = []
    for s in steps:
        rate = {c: s.rate(c) for c in COLUMNS}
        rows.append(
            [s.sequence, s.step, s.counts["scheduled"], s.counts["sent"]]
            + [
                f"{s.counts[c]} ({rate[c]:.0%})" if rate[c] is not None else str(s.counts[c])
                for c in COLUMNS[2:]
            ]
        )
    table("funnel", ("sequence", "step", *COLUMNS), rows)
    machine = sum(s.machine_opened for s in steps)
    console.print(OPENS_NOTE.format(machine=machine), highlight=False)
    if links:
        table(
            "tracked links",
            ("sequence", "step", "link", "url", "sent", "human clicks", "rate", "machine"),
            [
                (
                    line.sequence,
                    line.step,
                    line.link_index,
                    line.url,
                    line.sent,
                    line.human_clicks,
                    f"{line.rate:.1%}" if line.rate is not None else "-",
                    line.machine_clicks,
                )
                for line in link_lines
            ],
        )
    if variants:
        _print_subject_tests(tests)
    oldest = (
        f", oldest due: delivery {lag.oldest_due_id} at {lag.oldest_due_at:%Y-%m-%d %H:%M:%S}"
        if (lag.oldest_due_at)
        else ""
    )
    console.print(f"scheduler lag: {lag.seconds:.1f}s{oldest}", highlight=False)


def _print_subject_tests(tests: list[SubjectTest]) -> None:
    """One table per subject test, with its verdict under it."""
    if not tests:
        console.print("no subject tests: no step has subject: {variants: [...]}", highlight=False)
    for test in tests:
        table(
            f"subject test {test.sequence}/{test.step} (by {test.metric})",
            ("variant", "subject", "sent", "human clicks", "conversions", "rate"),
            [
                (
                    arm.letter,
                    arm.subject or "(no longer in the file)",
                    arm.sent,
                    arm.clicks,
                    arm.conversions,
                    f"{arm.rate(test.metric):.1%}",
                )
                for arm in test.arms
            ],
        )
        console.print(f"verdict: {test.verdict.text}", highlight=False)
    if tests:
        console.print(
            f"(a verdict needs {MIN_SENT} sent per variant; see README, Subject tests)",
            highlight=False,
        )


def dead_letters_command(
    requeue_all: bool = typer.Option(
        False, "--requeue", help="Put every dead-lettered message back."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="Why, for the audit trail (with --requeue)."
    ),
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Inspect Dramatiq's dead-letter queues, and put the messages back."""
    with opened_runtime(load_settings()) as runtime:
        letters = dead_letters(runtime.broker, QUEUES)  # type: ignore[arg-type]
        if requeue_all:
            if not reason:
                errors.print("--requeue needs --reason")
                raise typer.Exit(2)
            count = requeue(runtime.broker, letters)  # type: ignore[arg-type]
            with transaction(runtime.sessions) as session:
                record_audit(
                    session,
                    action="deadletters.requeue",
                    operator=current_operator(by),
                    now=utcnow(),
                    reason=reason,
                    details={"messages": [d.message_id for d in letters]},
                )
            console.print(f"{count} message(s) re-queued")
            return
    rows = [
        {
            "queue": d.queue,
            "message_id": d.message_id,
            "actor": d.actor,
            "args": list(d.args),
            "dead_at": d.dead_at.isoformat(),
        }
        for d in letters
    ]
    if as_json:
        print_json(rows)
        return
    table(
        "dead letters",
        ("queue", "message", "actor", "args", "dead since"),
        [(r["queue"], r["message_id"], r["actor"], r["args"], r["dead_at"]) for r in rows],
    )
