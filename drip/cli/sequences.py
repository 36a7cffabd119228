"""`drip sequences ...`: what a marketer runs before a change ships."""

from __future__ import annotations

import json
import sys
import webbrowser
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.text import Text

from drip.audit import current_operator
from drip.cli.common import console, errors, load_settings, opened_runtime, report_sequence_error
from drip.cli.progress_bar import progress_bar
from drip.config import MAX_DAILY_CAP
from drip.db import create_db_engine, session_factory, transaction, utcnow
from drip.errors import DripError, Problem, RenderError, SendError, SequenceError, UnknownSequence
from drip.render.preview import screenshot, write_preview
from drip.render.renderer import TemplateContact
from drip.render.variants import each_variant
from drip.runtime import build_transport
from drip.schedule.impact import SequenceImpact, plan_changes
from drip.schedule.pauses import pause_sequence, resume_sequence
from drip.schedule.simulation import simulate as simulate_sends
from drip.schedule.simulation import subscriber_from_options
from drip.sequences.catalog import LoadedSequence, SequenceCatalog
from drip.sequences.definition import Step, check_timezone
from drip.sequences.review import Placed, review_sequence
from drip.sequences.samples import SAMPLES_FILE, Sample, find_sample, load_samples, read_samples
from drip.sequences.specimen import compose_specimen, subject_for
from drip.sequences.trial import compose_test_message
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner

app = typer.Typer(
    help="Sequence files: validate, preview, simulate and plan before they ship.",
    no_args_is_help=True,
)

#: The contact `simulate` renders subjects for.
SAMPLE_CONTACT = TemplateContact(email="alex@example.com", first_name="Alex")


def _catalog(files: list[Path] | None = None, *, require_https: bool = False) -> SequenceCatalog:
    settings = load_settings()
    try:
        return SequenceCatalog.load(
            settings.sequences_dir,
            postal_address=settings.resolved_postal_address(),
            files=files or None,
            require_https=require_https,
        )
    except SequenceError as exc:
        report_sequence_error(exc)
        raise typer.Exit(1) from exc


def _sequence(catalog: SequenceCatalog, sequence_id: str) -> LoadedSequence:
    try:
        return catalog.get(sequence_id)
    except UnknownSequence as exc:
        errors.print(f"{exc}; known: {', '.join(s.definition.id for s in catalog) or 'none'}")
        raise typer.Exit(2) from exc


@app.command()
def validate(
    paths: list[Path] = typer.Argument(
        None, help="Files or folders (default: DRIP_SEQUENCES_DIR)."
    ),
    production: bool = typer.Option(
        False,
        "--production",
        help="Also require every link to be https (implied by DRIP_ENV=production).",
    ),
) -> None:
    """Check every file and template, then every email for each sample contact with the
    inbox checks; exit 1 with `file:line: field: message` lines on any problem or error,
    and print warnings.

    A folder is checked with its own `templates/` and `samples.yaml`; a file with those
    beside it.
    """
    settings = load_settings()
    postal_address = settings.resolved_postal_address()
    require_https = production or settings.is_production
    problems: list[Problem] = []
    checked: list[LoadedSequence] = []
    findings: list[Placed] = []
    for path in paths or [settings.sequences_dir]:
        folder, files = (path, None) if path.is_dir() else (path.parent, [path])
        if files is not None and path.name == SAMPLES_FILE:
            try:
                read_samples(path)
            except SequenceError as exc:
                problems.extend(exc.problems)
            continue
        try:
            catalog = SequenceCatalog.load(
                folder, postal_address=postal_address, files=files, require_https=require_https
            )
            samples = load_samples(folder)
        except SequenceError as exc:
            problems.extend(exc.problems)
            continue
        for loaded in catalog:
            checked.append(loaded)
            findings.extend(
                review_sequence(loaded, catalog.renderer, samples, postal_address=postal_address)
            )
    if problems:
        report_sequence_error(SequenceError(problems))
        raise typer.Exit(1)
    # Plain lines, never wrapped, as for problems: editors annotate from `file:line:`.
    for placed in sorted(findings, key=lambda p: (not p.is_error, p.file, p.line or 0)):
        print(placed, file=sys.stderr)
    failed = sum(p.is_error for p in findings)
    if failed:
        errors.print(
            f"[red]{failed} error(s) and {len(findings) - failed} warning(s) in the emails[/red]"
        )
        raise typer.Exit(1)
    for loaded in checked:
        console.print(
            f"ok  {loaded.path}  {loaded.definition.id}  "
            f"{len(loaded.definition.steps)} steps  version {loaded.version}",
            highlight=False,
        )
    if findings:
        console.print(f"{len(findings)} warning(s), no error", highlight=False)


@app.command()
def preview(
    sequence_id: str = typer.Argument(..., metavar="ID"),
    step: str | None = typer.Argument(None, help="One step id (default: every step)."),
    contact: str | None = typer.Option(
        None, help='Fields over the sample\'s, as JSON, e.g. \'{"first_name": "Ann"}\'.'
    ),
    sample: str | None = typer.Option(
        None, help="Label of a contact in samples.yaml (default: its first)."
    ),
    out: Path = typer.Option(Path("preview"), help="Folder to write into."),
    open_browser: bool = typer.Option(False, "--open", help="Open the first email in a browser."),
    png: bool = typer.Option(False, "--png", help="Also write a screenshot by headless Chromium."),
) -> None:
    """Write each email's HTML and text as a subscriber gets them."""
    settings = load_settings()
    catalog = _catalog()
    loaded = _sequence(catalog, sequence_id)
    person = _contact(contact, _sample(settings.sequences_dir, sample))
    links = Links(signer=TokenSigner("preview"), base_url=settings.base_url)
    steps = [s for s in loaded.definition.steps if step in (None, s.id)]
    if not steps:
        errors.print(f"sequence {sequence_id!r} has no step {step!r}")
        raise typer.Exit(2)
    written: list[Path] = []
    # A step with a subject test is written once per variant: 02-reminder-A, 02-reminder-B.
    shown = [(s, letter, v) for s in steps for letter, v in each_variant(s)]
    for original, letter, step_def in shown:
        number = loaded.definition.steps.index(original) + 1
        try:
            email = compose_specimen(
                catalog.renderer, loaded.definition, step_def, person, links=links
            ).rendered
        except RenderError as exc:
            errors.print(str(exc), markup=False)
            raise typer.Exit(1) from exc
        stem = f"{number:02d}-{step_def.id}" + (f"-{letter}" if letter else "")
        html, text = write_preview(email, out / sequence_id, stem)
        written.append(html)
        console.print(f"{html}  {text}", highlight=False)
        if png:
            try:
                console.print(str(screenshot(html, html.with_suffix(".png"))), highlight=False)
            except DripError as exc:
                errors.print(str(exc), markup=False)
                raise typer.Exit(1) from exc
    if open_browser:
        webbrowser.open(written[0].resolve().as_uri())


def _sample(sequences_dir: Path, label: str | None) -> Sample:
    """The sample contact labelled `label` in the folder's samples (the first when None)."""
    try:
        return find_sample(load_samples(sequences_dir), label)
    except SequenceError as exc:
        report_sequence_error(exc)
        raise typer.Exit(1) from exc
    except KeyError as exc:
        errors.print(str(exc.args[0]), markup=False)
        raise typer.Exit(2) from exc


def _contact(raw: str | None, sample: Sample) -> TemplateContact:
    base = sample.contact
    data: dict[str, Any] = {
        "email": base.email,
        "first_name": base.first_name,
        "timezone": base.timezone,
        "attributes": dict(base.attributes),
    }
    if raw:
        try:
            given = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.print(f"--contact is not JSON: {exc}")
            raise typer.Exit(2) from exc
        if not isinstance(given, dict):
            errors.print("--contact must be a JSON object")
            raise typer.Exit(2)
        data.update(given)
    return TemplateContact(
        email=str(data["email"]),
        first_name=data.get("first_name"),
        timezone=data.get("timezone"),
        attributes=dict(data.get("attributes") or {}),
    )


@app.command()
def simulate(
    sequence_id: str = typer.Argument(..., metavar="ID"),
    signup_at: datetime | None = typer.Option(
        None, help="ISO time of the signup (default: now, UTC)."
    ),
    timezone: str | None = typer.Option(
        None, help="Subscriber's IANA zone (default: the sequence's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    event: list[str] = typer.Option(
        [], "--event", help="NAME@OFFSET: an event after the signup, e.g. purchased@5d."
    ),
    attribute: list[str] = typer.Option(
        [], "--attribute", help="KEY=VALUE: a contact attribute conditions read (JSON value)."
    ),
    downloaded: str | None = typer.Option(
        None, "--downloaded", help="OFFSET: when the subscriber fetches the file, e.g. 1h."
    ),
    max_per_day: int | None = typer.Option(
        None,
        "--max-per-day",
        min=0,
        max=MAX_DAILY_CAP,
        help="The daily cap (default: DRIP_MAX_EMAILS_PER_DAY).",
    ),
) -> None:
    """Every step's send time in UTC and the subscriber's local time, windows and DST
    applied; with events, a download and attributes, which steps are skipped and where a
    goal ends the run."""
    loaded = _sequence(_catalog(), sequence_id)
    try:
        zone = ZoneInfo(check_timezone(timezone or loaded.definition.timezone))
    except ValueError as exc:
        errors.print(str(exc))
        raise typer.Exit(2) from exc
    start = signup_at or utcnow()
    start = start if start.tzinfo else start.replace(tzinfo=zone)
    try:
        subscriber = subscriber_from_options(start, event, attribute, downloaded)
    except ValueError as exc:
        errors.print(str(exc))
        raise typer.Exit(2) from exc
    sends = simulate_sends(
        loaded.definition,
        signup_at=start,
        zone=zone,
        subject=_sample_subject(_catalog(), loaded),
        subscriber=subscriber,
        daily_cap=load_settings().max_emails_per_day if max_per_day is None else max_per_day,
    )
    if as_json:
        print(
            json.dumps(
                {
                    "sequence": sequence_id,
                    "timezone": str(zone),
                    "signup_at": start.isoformat(),
                    "sends": [s.as_dict() for s in sends],
                },
                indent=2,
            )
        )
        return
    table = Table(
        title=f"{sequence_id}: signup {start.astimezone(zone):%a %Y-%m-%d %H:%M %Z} ({zone})"
    )
    for column in ("#", "step", "delay", "window", "UTC", "local", "subject", "outcome"):
        table.add_column(column)
    for s in sends:
        table.add_row(
            str(s.number),
            s.step_id,
            s.delay,
            s.window,
            f"{s.due_utc:%Y-%m-%d %H:%M}",
            f"{s.due_local:%a %Y-%m-%d %H:%M %Z}",
            "\n".join(s.subject_variants) or s.subject,
            Text(s.outcome + (f": {s.note}" if s.note else "")),
        )
    console.print(table)


def _sample_subject(catalog: SequenceCatalog, loaded: LoadedSequence) -> Callable[[Step], str]:
    """The subject each step renders to for the sample contact."""
    return subject_for(catalog.renderer, loaded.definition, SAMPLE_CONTACT)


@app.command()
def plan(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    max_per_day: int | None = typer.Option(
        None,
        "--max-per-day",
        min=0,
        max=MAX_DAILY_CAP,
        help="The daily cap (default: DRIP_MAX_EMAILS_PER_DAY).",
    ),
) -> None:
    """What the files as they are now do to everyone in flight, per sequence, and which of
    their next emails the daily cap would postpone."""
    settings = load_settings()
    catalog = _catalog()
    cap = settings.max_emails_per_day if max_per_day is None else max_per_day
    engine = create_db_engine(settings.database_url, pool_size=1)
    quiet = as_json or not console.writes_to_terminal()
    try:
        with (
            session_factory(engine)() as session,
            progress_bar(label="planning sequences", quiet=quiet) as show,
        ):
            impacts = plan_changes(session, catalog, now=utcnow(), daily_cap=cap, progress=show)
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps([i.as_dict() for i in impacts], indent=2))
        return
    for impact in impacts:
        _print_impact(impact, cap)


def _print_impact(impact: SequenceImpact, cap: int) -> None:
    """One sequence's effect: its versions, the steps nobody reached or that went, and a
    table of its groups."""
    state = "CHANGED" if impact.changed else "unchanged"
    console.print(
        f"[bold]{impact.sequence_id}[/bold] {state}: "
        f"version {impact.version or '(file removed)'}"
        f", live {', '.join(sorted(impact.live_versions)) or '-'}; {impact.active} in flight"
    )
    if impact.unreached_steps:
        reached = ", ".join(impact.unreached_steps)
        console.print(f"  not reached by anyone yet (new, or ahead of everyone): {reached}")
    if impact.removed_steps:
        console.print(f"  steps no longer in the file: {', '.join(impact.removed_steps)}")
    if not impact.groups:
        return
    table = Table(show_edge=False)
    for column in (
        "last received",
        "scheduled now",
        "next under the files",
        "people",
        "when",
        "effect",
    ):
        table.add_column(column)
    for g in impact.groups:
        when = (
            "-"
            if g.first_due is None
            else (
                f"{g.first_due:%Y-%m-%d %H:%M}"
                + (f" .. {g.last_due:%Y-%m-%d %H:%M}" if g.last_due != g.first_due else "")
            )
        )
        effect = g.change
        if g.postponed and g.postponed_to is not None:
            effect += (
                f"; postponed by the daily cap of {cap}: {g.postponed} people, "
                f"to {g.postponed_to:%Y-%m-%d %H:%M} UTC at the earliest"
            )
        table.add_row(
            g.position, g.pending or "-", g.next_step or "-", str(g.people), when, Text(effect)
        )
    console.print(table)


@app.command("test-send")
def send_test(
    sequence_id: str = typer.Argument(..., metavar="ID"),
    to: str = typer.Option(..., help="Where to send the test."),
    step: str | None = typer.Option(None, help="One step id (default: every step)."),
    first_name: str = typer.Option("Alex", help="First name to render with."),
) -> None:
    """Send through the configured transport with a [TEST] subject, touching no subscriber state."""
    settings = load_settings()
    catalog = _catalog()
    loaded = _sequence(catalog, sequence_id)
    links = Links(signer=TokenSigner(settings.resolved_secret_key()), base_url=settings.base_url)
    try:
        from drip.contacts.identity import normalize_email

        address = normalize_email(to)
    except ValueError as exc:
        errors.print(f"--to: {exc}")
        raise typer.Exit(2) from exc
    transport = build_transport(settings)
    try:
        for step_def in (s for s in loaded.definition.steps if step in (None, s.id)):
            person = TemplateContact(email=address, first_name=first_name)
            email = compose_test_message(
                catalog.renderer, loaded.definition, step_def, person, links=links, to=address
            )
            message_id = transport.send(email)
            console.print(f"sent {step_def.id} to {address}: {message_id}", highlight=False)
    except (RenderError, SendError) as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(1) from exc
    finally:
        transport.close()


def studio(
    port: int = typer.Option(8025, help="Port on 127.0.0.1 (the studio listens nowhere else)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the studio in a browser."),
) -> None:
    """A live preview of every email while you edit the files: both widths, light and dark,
    the checks, the timeline and the effect on people in flight. Never in production."""
    from drip.studio.server import StudioRefused, run_studio

    settings = load_settings()
    try:
        run_studio(settings, port=port, open_browser=open_browser)
    except StudioRefused as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(2) from exc


@app.command()
def pause(
    sequence_id: str = typer.Argument(..., metavar="ID"),
    reason: str | None = typer.Option(None, help="Why, for the audit trail."),
    by: str | None = typer.Option(None, help="Operator name (default: $USER)."),
) -> None:
    """Stop sending a sequence: nothing of it leaves until it is resumed."""
    _set_paused(sequence_id, paused=True, reason=reason, by=by)


@app.command()
def resume(
    sequence_id: str = typer.Argument(..., metavar="ID"),
    reason: str | None = typer.Option(None, help="Why, for the audit trail."),
    by: str | None = typer.Option(None, help="Operator name (default: $USER)."),
) -> None:
    """Resume a paused sequence: due steps are sent, or skipped past their max_lateness."""
    _set_paused(sequence_id, paused=False, reason=reason, by=by)


def _set_paused(sequence_id: str, *, paused: bool, reason: str | None, by: str | None) -> None:
    settings = load_settings()
    with opened_runtime(settings) as runtime:
        _sequence(runtime.catalog, sequence_id)
        change = pause_sequence if paused else resume_sequence
        with transaction(runtime.sessions) as session:
            changed = change(
                session, sequence_id, by=current_operator(by), reason=reason, now=utcnow()
            )
    word = "paused" if paused else "resumed"
    console.print(f"{sequence_id} {word}" if changed else f"{sequence_id} was already {word}")
