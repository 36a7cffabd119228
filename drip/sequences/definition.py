"""The sequence file format as pydantic models (see the README's "A sequence file")."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.functional_validators import BeforeValidator

from drip.sequences.delays import parse_delay
from drip.sequences.files import check_offer_name

#: Subjects longer than this are cut off by most inboxes.
MAX_SUBJECT_LENGTH = 120

#: Ids appear in URLs, logs and custom_args: keep them to a safe alphabet.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"

#: Event names, as other apps send them (`POST /v1/events`) and sequences name them.
EVENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"

#: The longest `when:` expression a step may carry.
MAX_CONDITION_LENGTH = 500

#: How many subjects a step's subject test may try (`subject: {variants: [...]}`).
MIN_VARIANTS, MAX_VARIANTS = 2, 5


class Weekday(StrEnum):
    """A day of a send window, as the sequence file names it."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """Monday is 0, as in `date.weekday()`."""
        return _WEEKDAY_NUMBERS[self]


_WEEKDAY_NUMBERS = {day: number for number, day in enumerate(Weekday)}


def _delay(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_delay(value)


Delay = Annotated[timedelta, BeforeValidator(_delay)]


def check_timezone(name: str) -> str:
    """Return `name` if it is a known IANA zone, else raise ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone such as 'America/New_York'") from exc
    return name


class Strict(BaseModel):
    """A part of a sequence file: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Address(Strict):
    """An email address with an optional display name (`from:`, `reply_to:`)."""

    email: str
    name: str | None = None

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(str(exc)) from exc


class SendWindow(Strict):
    """Local hours in which emails may arrive: a due time outside moves to the next opening."""

    days: tuple[Weekday, ...] = tuple(Weekday)
    start: time = time(0, 0)
    end: time = time(23, 59, 59)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML reads an unquoted 08:00 as a sexagesimal number
            raise ValueError('write the time in quotes, such as "08:00"')
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.days:
            raise ValueError("a send window needs at least one day")
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


class Download(Strict):
    """A file the sequence offers through a signed per-contact link (`links.download`)."""

    file: str = Field(min_length=1)
    filename: str | None = None

    @field_validator("file")
    @classmethod
    def _inside_files(cls, value: str) -> str:
        return check_offer_name(value)

    @property
    def download_name(self) -> str:
        """The file name a subscriber's browser saves the download as."""
        return self.filename or self.file.rsplit("/", 1)[-1]


#: The step id of confirmation emails; real step ids cannot start with an underscore.
CONFIRM_STEP = "_confirm"


class Confirmation(Strict):
    """The email asking a subscriber to confirm (double opt-in, or a signup after unsubscribing)."""

    subject: str = "Please confirm: {{ sequence.name }}"
    template: str = "drip/confirm.html"
    preheader: str = "One click and it is on its way."


class EventRef(Strict):
    """An event another app sends, by name: `{event: purchased}`."""

    event: str = Field(pattern=EVENT_NAME_PATTERN)


class ReentryMode(StrEnum):
    """The kinds of `reentry:`."""

    NEVER = "never"
    ALWAYS = "always"
    AFTER = "after"


class Reentry(Strict):
    """Whether a contact whose run of the sequence ended (completed, or converted at a
    goal) may start it again when its trigger fires: `never` (the default: one run per
    contact, as before triggers), `always`, or `{after: 90d}` (once that long has passed
    since the last run began). A run in progress is never restarted, and neither is one the
    contact left (unsubscribed from the sequence): only a confirmed signup brings them back."""

    mode: ReentryMode = ReentryMode.NEVER
    after: Delay | None = None

    def allows(self, *, last_began: datetime, now: datetime) -> bool:
        """Whether a finished run that began at `last_began` may start again at `now`."""
        if self.mode is ReentryMode.ALWAYS:
            return True
        if self.mode is ReentryMode.AFTER and self.after is not None:
            return now - last_began >= self.after
        return False

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in (ReentryMode.NEVER, ReentryMode.ALWAYS):
                raise ValueError("reentry is never, always, or {after: DELAY}")
            return {"mode": value}
        if isinstance(value, dict) and set(value) == {"after"}:
            return {"mode": ReentryMode.AFTER, "after": value["after"]}
        if isinstance(value, dict) and (not value or "mode" in value):
            return value
        raise ValueError("reentry is never, always, or {after: DELAY}")


def check_subject(value: str) -> str:
    """`value` if it is a usable subject line (one line, not blank, short enough)."""
    if not value.strip():
        raise ValueError("the subject is empty")
    if len(value) > MAX_SUBJECT_LENGTH:
        raise ValueError(f"the subject is {len(value)} characters; at most {MAX_SUBJECT_LENGTH}")
    if "\n" in value or "\r" in value:
        raise ValueError("the subject must be one line")
    return value


def _subject_variants(value: Any) -> tuple[str, ...]:
    """The subjects of `subject: {variants: [...]}`, each checked like a subject."""
    if not isinstance(value, dict) or set(value) != {"variants"}:
        raise ValueError("subject is a string, or {variants: [2 to 5 strings]}")
    variants = value["variants"]
    if not isinstance(variants, list) or not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise ValueError(f"subject variants: give {MIN_VARIANTS} to {MAX_VARIANTS} subjects")
    checked = []
    for number, variant in enumerate(variants, 1):
        if not isinstance(variant, str):
            raise ValueError(f"subject variant {number} is not a string")
        try:
            checked.append(check_subject(variant))
        except ValueError as exc:
            raise ValueError(f"subject variant {number}: {exc}") from None
    if len(set(checked)) != len(checked):
        raise ValueError("subject variants must differ from each other")
    return tuple(checked)


class Step(Strict):
    """One email of a sequence. A subject test (`subject: {variants: [...]}`) keeps the
    first variant in `subject` and all of them in `subject_variants`; `variant(n)` is the
    step as contacts given variant `n` get it (`drip.render.variants`)."""

    id: str = Field(pattern=ID_PATTERN)
    delay: Delay
    subject: str = Field(min_length=1)
    #: The subjects of a subject test, in file order; empty for a step with one subject.
    subject_variants: tuple[str, ...] = ()
    template: str = Field(min_length=1)
    preheader: str | None = None
    send_window: SendWindow | None = None
    max_lateness: Delay | None = None
    #: A condition read at send time; false skips the step (see `drip.sequences.conditions`).
    when: str | None = Field(default=None, min_length=1, max_length=MAX_CONDITION_LENGTH)

    @model_validator(mode="before")
    @classmethod
    def _variants(cls, data: Any) -> Any:
        if isinstance(data, dict) and "subject_variants" in data:
            raise ValueError("write a subject test as subject: {variants: [...]}")
        if isinstance(data, dict) and isinstance(data.get("subject"), dict):
            variants = _subject_variants(data["subject"])
            return {**data, "subject": variants[0], "subject_variants": variants}
        return data

    @field_validator("subject")
    @classmethod
    def _subject_fits(cls, value: str) -> str:
        return check_subject(value)

    def variant(self, number: int) -> Step:
        """This step with the subject of variant `number` (0-based) of its subject test."""
        return self.model_copy(update={"subject": self.subject_variants[number]})

    @property
    def overrides_window(self) -> bool:
        """Whether the step sets its own window (`send_window: null` means any time)."""
        return "send_window" in self.model_fields_set


class Utm(Strict):
    """`utm:` of a sequence: each value a template that sees `sequence` and `step` (never
    the contact: analytics get no personal data), e.g. `content: "{{ step.id }}"`."""

    source: str | None = Field(default=None, min_length=1, max_length=200)
    medium: str | None = Field(default=None, min_length=1, max_length=200)
    campaign: str | None = Field(default=None, min_length=1, max_length=200)
    content: str | None = Field(default=None, min_length=1, max_length=200)
    term: str | None = Field(default=None, min_length=1, max_length=200)

    def templates(self) -> dict[str, str]:
        """`{"utm_source": template, ...}` for the parameters given, in a fixed order."""
        return {
            f"utm_{name}": value
            for name in ("source", "medium", "campaign", "content", "term")
            if (value := getattr(self, name)) is not None
        }

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.templates():
            raise ValueError("utm needs at least one of source, medium, campaign, content, term")
        return self


class Sequence(Strict):
    """One sequence file: its steps, sender, windows, reactions and tracking."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    from_: Address = Field(alias="from")
    reply_to: Address | None = None
    timezone: str = "UTC"
    send_window: SendWindow | None = None
    layout: str = Field(min_length=1)
    double_opt_in: bool = False
    confirmation: Confirmation = Confirmation()
    download: Download | None = None
    #: An event that enrols a contact, besides the signup form.
    trigger: EventRef | None = None
    #: Goals: any of these events ends the enrolment as converted.
    exit: tuple[EventRef, ...] = ()
    reentry: Reentry = Reentry()
    #: Send every http(s) link of the steps through `/l/{token}` (`drip.render.tracking`).
    track_clicks: bool = False
    #: UTM parameters added to outbound links that carry none (`drip.render.tracking`).
    utm: Utm | None = None
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @property
    def goals(self) -> frozenset[str]:
        """The names of the events that end an enrolment as converted."""
        return frozenset(e.event for e in self.exit)

    def step(self, step_id: str) -> Step | None:
        """The step with `step_id`, or None when the file no longer has it."""
        return next((s for s in self.steps if s.id == step_id), None)

    def confirmation_step(self) -> Step:
        """The confirmation email as a step, to render through the same layout."""
        return Step.model_construct(
            id=CONFIRM_STEP,
            delay=timedelta(0),
            subject=self.confirmation.subject,
            template=self.confirmation.template,
            preheader=self.confirmation.preheader,
            max_lateness=None,
        )

    def window_for(self, step: Step) -> SendWindow | None:
        """The window that applies to `step`: its own when it sets one, else the sequence's."""
        return step.send_window if step.overrides_window else self.send_window
