# ruff: noqa: S608 - every statement here is built from this module's constants, never input.
"""What the funnel counts, written once, as the SQL of the triggers that keep the counts.

Every counted row contributes +1 under its key (day the delivery was created, UTC;
sequence; step; measure), so a change is "-1 under the old key, +1 under the new one",
appended to `delivery_count_deltas` in the transaction of the change:

- a delivery of the planned line (`resend = false`; confirmations included) counts under
  its status, every pending one (scheduled, queued, sending) under `scheduled`, the
  funnel's column (`pending_as_scheduled`; migration 0015), so moves within pending net
  to nothing;
- a `funnel_attributions` row counts under its measure. Its rows say which delivery an
  enrolment's end is attributed to, recomputed (taken back and added again) for the
  enrolments and deliveries a change may have moved:
  - `unsubscribed`: the enrolment's last sent planned delivery (latest `sent_at`, then
    highest id), while its contact's status is `unsubscribed` (a contact who subscribes
    again, or is forgotten, is no longer counted);
  - `converted`: the last sent planned delivery of the enrolment's current run, while the
    enrolment's status is `converted`;
  - `human_click`: a planned delivery with at least one person's click (`link_clicks`).
- a stored provider event counts under its measure (`EVENT_MEASURES`: delivered, opened,
  clicked, bounced) when it is its planned delivery's first of its name (`first_of_kind`),
  and under `machine_opened` when it is the delivery's first open SendGrid flagged as a
  machine's (`first_machine_open`); the key is its delivery's. `drip.events.store` sets
  both marks when it inserts the row, and nothing changes them, so only inserts are
  counted: a prune removing raw events (a dropped partition, deleted rows) takes nothing
  back, and the counts outlive the rows. An event whose delivery is unknown when it is
  stored counts nowhere.

The same rules generate the triggers of both databases and the migrations' backfills.
`row_triggers` (migration 0015) are row-level on PostgreSQL and SQLite alike, each with a
WHEN clause over `NEW`/`OLD` (PostgreSQL evaluates it without calling the function) so a
row whose counted key, sent-ness, unsubscribed-ness or converted-ness did not move fires
nothing; their statements read a one-row table made of `NEW`/`OLD`. `triggers` and
`event_triggers` are those of migrations 0013 and 0014 (statement-level on PostgreSQL,
over transition tables); the provider events' one is still in use. Changing a rule means
a migration that re-creates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from drip.models.delivery import PENDING

#: Attributed measures, counted beside the delivery statuses.
UNSUBSCRIBED, CONVERTED, HUMAN_CLICK = "unsubscribed", "converted", "human_click"

#: The measure of every pending delivery (migration 0015), the funnel's column of them.
PENDING_MEASURE = "scheduled"

#: The transition tables' names inside a trigger.
NEW, OLD = "new_rows", "old_rows"


#: The provider events the funnel counts (SendGrid's names), and the measure of each.
EVENT_MEASURES = {
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
}
#: The measure of a delivery's first open SendGrid flagged `sg_machine_open`.
MACHINE_OPENED = "machine_opened"


@dataclass(frozen=True)
class Counted:
    """A table whose rows (alias `r`) are counted: which rows count, and the key each counts
    under, read from the row or from what `join` adds (as SQL expressions)."""

    table: str
    #: The columns the rules read (SQLite's one-row tables are made of these).
    columns: tuple[str, ...]
    #: A timestamp (counted by its UTC day) or, with `is_date`, a date.
    day: str
    measure: str
    where: str = "true"
    join: str = ""
    owner: str = "r"
    is_date: bool = False


DELIVERIES = Counted(
    "deliveries",
    ("id", "enrollment_id", "created_at", "sequence_id", "step_id", "status", "resend", "sent_at"),
    day="r.created_at",
    measure="r.status",
    where="NOT r.resend",
)
ATTRIBUTIONS = Counted(
    "funnel_attributions",
    ("delivery_id", "enrollment_id", "day", "sequence_id", "step_id", "measure"),
    day="r.day",
    measure="r.measure",
    is_date=True,
)
_EVENT_COLUMNS = ("delivery_id", "event", "first_of_kind", "first_machine_open")


def case_of(column: str, mapping: dict[str, str]) -> str:
    """SQL: `mapping`'s value for the value of `column` (NULL for any other)."""
    return (
        f"CASE {column} " + " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in mapping.items()) + " END"
    )


def listed(values: Iterable[str]) -> str:
    """SQL: `values` as a list of literals, for IN (...)."""
    return ", ".join(f"'{value}'" for value in values)


_OF_PLANNED = "JOIN deliveries p ON p.id = r.delivery_id"
FIRST_EVENTS = Counted(
    "provider_events",
    _EVENT_COLUMNS,
    day="p.created_at",
    measure=case_of("r.event", EVENT_MEASURES),
    where=f"r.first_of_kind AND NOT p.resend AND r.event IN ({listed(EVENT_MEASURES)})",
    join=_OF_PLANNED,
    owner="p",
)
FIRST_MACHINE_OPENS = Counted(
    "provider_events",
    _EVENT_COLUMNS,
    day="p.created_at",
    measure=f"'{MACHINE_OPENED}'",
    where="r.first_machine_open AND NOT p.resend",
    join=_OF_PLANNED,
    owner="p",
)
CONTACTS = ("id", "status")
ENROLLMENTS = ("id", "status", "run")
CLICKS = ("delivery_id", "human")


def utc_day(dialect: str, column: str) -> str:
    """The UTC day of a stored timestamp, as SQL (PostgreSQL's date() follows the zone)."""
    if dialect == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::date"
    return f"date({column})"


def _key(counted: Counted, dialect: str) -> str:
    day = counted.day if counted.is_date else utc_day(dialect, counted.day)
    owner = counted.owner
    return f"{day} AS d, {owner}.sequence_id AS s, {owner}.step_id AS t, {counted.measure} AS m"


def tally(
    counted: Counted, dialect: str, rows: str, *, sign: str = "", where: str | None = None
) -> str:
    """SELECT key (d, s, t, m) and count (c) of the counted rows of `rows` (a table, or a
    transition table) that also meet `where`; `sign` "-" takes them back."""
    return (
        f"SELECT {_key(counted, dialect)}, {sign}count(*) AS c FROM {rows} r {counted.join} "
        f"WHERE {counted.where}{f' AND {where}' if where else ''} GROUP BY 1, 2, 3, 4"
    )


def deltas(
    counted: Counted | tuple[Counted, ...], dialect: str, *, new: str | None, old: str | None
) -> str:
    """INSERT the net change per key from rows `old` (taken back) to rows `new` (added), by
    every rule of `counted`; keys whose change nets to zero (an update that moved no
    counted key) add no row."""
    rules = counted if isinstance(counted, tuple) else (counted,)
    parts = [tally(rule, dialect, new) for rule in rules] if new else []
    if old:
        parts.extend(tally(rule, dialect, old, sign="-") for rule in rules)
    union = " UNION ALL ".join(parts)
    return (
        "INSERT INTO delivery_count_deltas (day, sequence_id, step_id, measure, n) "
        f"SELECT d, s, t, m, sum(c) FROM ({union}) u "
        "GROUP BY d, s, t, m HAVING sum(c) <> 0"
    )


def row_deltas(counted: Counted, dialect: str, *, new: str | None, old: str | None) -> str:
    """INSERT +1 under the key of the one-row table `new` and -1 under that of `old`, each
    if it is counted: a row trigger's change, with nothing to group (the fold sums)."""
    parts = [
        f"SELECT {_key(counted, dialect)}, {n} AS c FROM {rows} r {counted.join}"
        f" WHERE {counted.where}"
        for rows, n in ((new, 1), (old, -1))
        if rows
    ]
    return (
        "INSERT INTO delivery_count_deltas (day, sequence_id, step_id, measure, n) "
        + " UNION ALL ".join(parts)
    )


def _later(extra: str = "") -> str:
    # Whether a sent planned delivery of the same enrolment comes after d (sent_at, then id).
    return (
        "NOT EXISTS (SELECT 1 FROM deliveries l WHERE l.enrollment_id = d.enrollment_id"
        f" AND l.status = 'sent' AND NOT l.resend{extra} AND (l.sent_at > d.sent_at"
        " OR (l.sent_at = d.sent_at AND l.id > d.id)))"
    )


def _insert_attributions(dialect: str, columns: str, rows: str) -> str:
    """INSERT `rows` into `funnel_attributions`, leaving a row another transaction inserted
    meanwhile: two transactions re-attributing one delivery at once (two first clicks on
    one email, in two requests) each delete what they see and insert, and the second would
    otherwise fail on the first's row, losing its whole transaction."""
    if dialect == "postgresql":
        return (
            f"INSERT INTO funnel_attributions ({columns}) {rows} "
            "ON CONFLICT (delivery_id, measure) DO NOTHING"
        )
    return f"INSERT OR IGNORE INTO funnel_attributions ({columns}) {rows}"


def attribute_endings(dialect: str, enrollments: str) -> list[str]:
    """The statements that re-attribute `unsubscribed` and `converted` for the enrolments
    whose ids `enrollments` (a subquery) selects."""
    day = utc_day(dialect, "d.created_at")
    columns = "delivery_id, measure, enrollment_id, day, sequence_id, step_id"
    last = "d.status = 'sent' AND NOT d.resend"
    return [
        f"DELETE FROM funnel_attributions WHERE measure IN ('{UNSUBSCRIBED}', '{CONVERTED}')"
        f" AND enrollment_id IN ({enrollments})",
        _insert_attributions(
            dialect,
            columns,
            f"SELECT d.id, '{UNSUBSCRIBED}', d.enrollment_id, {day}, d.sequence_id, d.step_id "
            "FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
            f"WHERE d.enrollment_id IN ({enrollments}) AND c.status = 'unsubscribed' "
            f"AND {last} AND {_later()} "
            "UNION ALL "
            f"SELECT d.id, '{CONVERTED}', d.enrollment_id, {day}, d.sequence_id, d.step_id "
            "FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id AND e.run = d.run "
            f"WHERE d.enrollment_id IN ({enrollments}) AND e.status = 'converted' "
            f"AND {last} AND {_later(' AND l.run = d.run')}",
        ),
    ]


def attribute_clicks(dialect: str, deliveries: str) -> list[str]:
    """The statements that re-attribute `human_click` for the deliveries whose ids
    `deliveries` (a subquery) selects."""
    day = utc_day(dialect, "d.created_at")
    return [
        f"DELETE FROM funnel_attributions WHERE measure = '{HUMAN_CLICK}'"
        f" AND delivery_id IN ({deliveries})",
        _insert_attributions(
            dialect,
            "delivery_id, measure, enrollment_id, day, sequence_id, step_id",
            f"SELECT d.id, '{HUMAN_CLICK}', d.enrollment_id, {day}, d.sequence_id, d.step_id "
            f"FROM deliveries d WHERE d.id IN ({deliveries}) AND NOT d.resend AND EXISTS "
            "(SELECT 1 FROM link_clicks k WHERE k.delivery_id = d.id AND k.human)",
        ),
    ]


@dataclass(frozen=True)
class Trigger:
    """One trigger: after `event` on `table`, the statements to run; `columns` are the
    table's columns the statements read through `new_rows` / `old_rows`.

    With `when` None it is statement-level on PostgreSQL (migrations 0013, 0014). Otherwise
    it is row-level on both databases and fires only for a row meeting `when` (over `NEW` /
    `OLD`; "" for every row), which PostgreSQL evaluates without calling the function; then
    the statements run only if `guard` (which may read other tables) holds."""

    table: str
    event: str
    columns: tuple[str, ...]
    statements: tuple[str, ...]
    when: str | None = None
    guard: str = ""
    purpose: str = "count"

    @property
    def name(self) -> str:
        """The trigger's (and on PostgreSQL its function's) name."""
        return f"drip_{self.purpose}_{self.table}_{self.event.lower()}"


def counting_trigger(
    counted: Counted, columns: tuple[str, ...], event: str, dialect: str, *, when: str | None = None
) -> Trigger:
    """The trigger that appends the change `event` makes to the counts of `counted`'s rows
    (`when`: as in `Trigger`)."""
    return Trigger(
        counted.table,
        event,
        columns,
        (
            (deltas if when is None else row_deltas)(
                counted,
                dialect,
                new=NEW if event != "DELETE" else None,
                old=OLD if event != "INSERT" else None,
            ),
        ),
        when=when,
    )


def _changed(condition: str, pick: str) -> str:
    """The `pick` of rows whose update meets `condition` (over o, the old row, and n)."""
    return f"SELECT n.{pick} FROM {OLD} o JOIN {NEW} n ON o.id = n.id WHERE {condition}"


def triggers(dialect: str) -> list[Trigger]:
    """Every trigger that kept the deliveries' and attributions' counts as migration 0013
    made them (statement-level on PostgreSQL, each delivery status its own measure), for
    `dialect`: what migration 0015 replaces by `row_triggers`, and puts back going down."""
    # A row became sent, stopped being sent, or was sent at another time.
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    sent = "(CASE WHEN {r}.status = 'sent' THEN {r}.sent_at END)"
    sent_moved = (
        f"(o.status = 'sent') <> (n.status = 'sent') OR"
        f" {sent.format(r='o')} {distinct} {sent.format(r='n')}"
    )
    unsubscribed_moved = "(o.status = 'unsubscribed') <> (n.status = 'unsubscribed')"
    ending_moved = "o.status <> n.status OR o.run <> n.run"
    human_moved = "o.human <> n.human OR o.delivery_id <> n.delivery_id"
    rows = DELIVERIES.columns
    return [
        Trigger(
            "deliveries",
            "INSERT",
            rows,
            (
                deltas(DELIVERIES, dialect, new=NEW, old=None),
                *attribute_endings(
                    dialect, f"SELECT enrollment_id FROM {NEW} WHERE status = 'sent'"
                ),
            ),
        ),
        Trigger(
            "deliveries",
            "UPDATE",
            rows,
            (
                deltas(DELIVERIES, dialect, new=NEW, old=OLD),
                *attribute_endings(dialect, _changed(sent_moved, "enrollment_id")),
            ),
        ),
        Trigger(
            "deliveries",
            "DELETE",
            rows,
            (
                deltas(DELIVERIES, dialect, new=None, old=OLD),
                *attribute_endings(
                    dialect, f"SELECT enrollment_id FROM {OLD} WHERE status = 'sent'"
                ),
            ),
        ),
        Trigger(
            "contacts",
            "UPDATE",
            CONTACTS,
            tuple(
                attribute_endings(
                    dialect,
                    "SELECT id FROM enrollments WHERE contact_id IN "
                    f"({_changed(unsubscribed_moved, 'id')})",
                )
            ),
        ),
        Trigger(
            "enrollments",
            "UPDATE",
            ENROLLMENTS,
            tuple(attribute_endings(dialect, _changed(ending_moved, "id"))),
        ),
        Trigger(
            "link_clicks",
            "INSERT",
            CLICKS,
            tuple(attribute_clicks(dialect, f"SELECT delivery_id FROM {NEW} WHERE human")),
        ),
        Trigger(
            "link_clicks",
            "UPDATE",
            (*CLICKS, "id"),
            tuple(
                attribute_clicks(
                    dialect,
                    f"{_changed(human_moved, 'delivery_id')} "
                    f"UNION SELECT o.delivery_id FROM {OLD} o JOIN {NEW} n ON o.id = n.id "
                    f"WHERE {human_moved}",
                )
            ),
        ),
        Trigger(
            "link_clicks",
            "DELETE",
            CLICKS,
            tuple(attribute_clicks(dialect, f"SELECT delivery_id FROM {OLD} WHERE human")),
        ),
        *(
            counting_trigger(ATTRIBUTIONS, ATTRIBUTIONS.columns, event, dialect)
            for event in ("INSERT", "UPDATE", "DELETE")
        ),
    ]


def pending_as_scheduled(row: str) -> str:
    """SQL: the measure of the delivery `row` (an alias, `NEW` or `OLD`): its status, but
    `scheduled` for every pending one (`PENDING`), as the funnel shows them, so a move
    within pending (claim, renew, claim to send) changes no count."""
    return (
        f"CASE WHEN {row}.status IN ({listed(s.value for s in PENDING)})"
        f" THEN '{PENDING_MEASURE}' ELSE {row}.status END"
    )


#: The planned deliveries counted under `pending_as_scheduled` (migration 0015).
PLANNED_DELIVERIES = replace(DELIVERIES, measure=pending_as_scheduled("r"))


def _either(condition: str, *columns: str, distinct: str) -> str:
    """SQL over `NEW` / `OLD`: `condition` or any of `columns` changed."""
    return " OR ".join([condition, *(f"OLD.{c} {distinct} NEW.{c}" for c in columns)])


def row_triggers(dialect: str) -> list[Trigger]:
    """Every trigger that keeps the deliveries' and attributions' counts (migration 0015),
    for `dialect`: row-level, each firing only for a row whose counted key or attributed
    ending may have changed, so a move within pending, or a send to a contact neither
    unsubscribed nor converted, costs no statement."""
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    rows = (*DELIVERIES.columns, "contact_id")
    counted_moved = _either(
        f"{pending_as_scheduled('OLD')} {distinct} {pending_as_scheduled('NEW')}",
        "resend",
        "created_at",
        "sequence_id",
        "step_id",
        distinct=distinct,
    )
    attributable = "({r}.status = 'sent' AND NOT {r}.resend)"
    sent_moved = (
        f"{attributable.format(r='OLD')} <> {attributable.format(r='NEW')} OR"
        f" ({attributable.format(r='NEW')} AND OLD.sent_at {distinct} NEW.sent_at)"
    )

    def ended(r: str) -> str:
        # Whether the row's enrolment has an ending to attribute. Without one it holds no
        # attribution either: the triggers on contacts and enrollments take them back as
        # soon as the contact is no longer unsubscribed or the enrolment no longer converted.
        return (
            f"EXISTS (SELECT 1 FROM contacts c WHERE c.id = {r}.contact_id"
            " AND c.status = 'unsubscribed')"
            f" OR EXISTS (SELECT 1 FROM enrollments e WHERE e.id = {r}.enrollment_id"
            " AND e.status = 'converted')"
        )

    def attribution(event: str, when: str, r: str) -> Trigger:
        return Trigger(
            "deliveries",
            event,
            rows,
            tuple(attribute_endings(dialect, f"SELECT {r}.enrollment_id")),
            when=when,
            guard=ended(r),
            purpose="attribute",
        )

    def counting(event: str, when: str) -> Trigger:
        return counting_trigger(PLANNED_DELIVERIES, rows, event, dialect, when=when)

    human_moved = "OLD.human <> NEW.human OR OLD.delivery_id <> NEW.delivery_id"
    return [
        counting("INSERT", "NOT NEW.resend"),
        counting("UPDATE", counted_moved),
        counting("DELETE", "NOT OLD.resend"),
        attribution("INSERT", attributable.format(r="NEW"), "NEW"),
        attribution("UPDATE", sent_moved, "NEW"),
        attribution("DELETE", attributable.format(r="OLD"), "OLD"),
        Trigger(
            "contacts",
            "UPDATE",
            CONTACTS,
            tuple(
                attribute_endings(dialect, "SELECT id FROM enrollments WHERE contact_id = NEW.id")
            ),
            when="(OLD.status = 'unsubscribed') <> (NEW.status = 'unsubscribed')",
        ),
        Trigger(
            "enrollments",
            "UPDATE",
            ENROLLMENTS,
            tuple(attribute_endings(dialect, "SELECT NEW.id")),
            when="(OLD.status = 'converted') <> (NEW.status = 'converted')"
            " OR (NEW.status = 'converted' AND OLD.run <> NEW.run)",
        ),
        Trigger(
            "link_clicks",
            "INSERT",
            CLICKS,
            tuple(attribute_clicks(dialect, "SELECT NEW.delivery_id")),
            when="NEW.human",
        ),
        Trigger(
            "link_clicks",
            "UPDATE",
            CLICKS,
            tuple(attribute_clicks(dialect, "SELECT NEW.delivery_id UNION SELECT OLD.delivery_id")),
            when=human_moved,
        ),
        Trigger(
            "link_clicks",
            "DELETE",
            CLICKS,
            tuple(attribute_clicks(dialect, "SELECT OLD.delivery_id")),
            when="OLD.human",
        ),
        *(
            counting_trigger(ATTRIBUTIONS, ATTRIBUTIONS.columns, event, dialect, when="")
            for event in ("INSERT", "UPDATE", "DELETE")
        ),
    ]


def event_triggers(dialect: str) -> list[Trigger]:
    """The trigger that counts stored provider events (migration 0014): inserts only, as
    the marks never change and a removed raw event stays counted. On PostgreSQL it is a
    statement-level trigger of the partitioned `provider_events`, whose transition table
    holds the rows of every partition the statement wrote into."""
    return [
        Trigger(
            "provider_events",
            "INSERT",
            _EVENT_COLUMNS,
            (deltas((FIRST_EVENTS, FIRST_MACHINE_OPENS), dialect, new=NEW, old=None),),
        )
    ]


def create_statements(dialect: str, chosen: list[Trigger] | None = None) -> list[str]:
    """The DDL that installs the `chosen` triggers (by default `triggers`) on `dialect`
    (PostgreSQL or SQLite)."""
    found = []
    for trigger in triggers(dialect) if chosen is None else chosen:
        if trigger.when is not None:
            found.extend(_row_level(dialect, trigger))
        elif dialect == "postgresql":
            body = "".join(f"    {statement};\n" for statement in trigger.statements)
            found.append(
                f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n{body}    RETURN NULL;\nEND\n$$"
            )
            tables = {"INSERT": f"NEW TABLE AS {NEW}", "DELETE": f"OLD TABLE AS {OLD}"}
            referencing = tables.get(trigger.event, f"OLD TABLE AS {OLD} NEW TABLE AS {NEW}")
            found.append(
                f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} ON {trigger.table} "
                f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {trigger.name}()"
            )
        else:
            body = "".join(
                f"    {_one_row(statement, trigger.columns)};\n" for statement in trigger.statements
            )
            found.append(
                f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} ON {trigger.table} "
                f"FOR EACH ROW BEGIN\n{body}END"
            )
    return found


def _row_level(dialect: str, trigger: Trigger) -> list[str]:
    """The DDL of a row-level `trigger` that fires only when its `when` holds."""
    statements = [_one_row(statement, trigger.columns) for statement in trigger.statements]
    head = f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} ON {trigger.table} FOR EACH ROW"
    if dialect != "postgresql":
        when = " AND ".join(f"({c})" for c in (trigger.when, trigger.guard) if c)
        body = "".join(f"    {statement};\n" for statement in statements)
        return [f"{head}{f' WHEN {when}' if when else ''} BEGIN\n{body}END"]
    body = "".join(f"        {statement};\n" for statement in statements)
    if trigger.guard:
        body = f"    IF {trigger.guard} THEN\n{body}    END IF;\n"
    return [
        f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}    RETURN NULL;\nEND\n$$",
        f"{head}{f' WHEN ({trigger.when})' if trigger.when else ''}"
        f" EXECUTE FUNCTION {trigger.name}()",
    ]


def drop_statements(dialect: str, chosen: list[Trigger] | None = None) -> list[str]:
    """The DDL that removes the triggers `create_statements` installs for `chosen`."""
    found = []
    for trigger in triggers(dialect) if chosen is None else chosen:
        found.append(
            f"DROP TRIGGER IF EXISTS {trigger.name}"
            + (f" ON {trigger.table}" if dialect == "postgresql" else "")
        )
        if dialect == "postgresql":
            found.append(f"DROP FUNCTION IF EXISTS {trigger.name}()")
    return found


def _one_row(statement: str, columns: tuple[str, ...]) -> str:
    """SQLite: the transition tables of a row trigger are the row itself, `NEW` or `OLD`."""
    for name, row in ((NEW, "NEW"), (OLD, "OLD")):
        table = ", ".join(f"{row}.{c} AS {c}" for c in columns)
        statement = re.sub(rf"\b{name}\b", f"(SELECT {table})", statement)
    return statement


def backfill_statements(dialect: str) -> list[str]:
    """Attribute every enrolment and delivery, then count every counted row into
    `delivery_counts`: run once, before the triggers exist (migration 0013)."""
    counts = "INSERT INTO delivery_counts (day, sequence_id, step_id, measure, n) "
    return [
        *attribute_endings(dialect, "SELECT id FROM enrollments"),
        *attribute_clicks(dialect, "SELECT delivery_id FROM link_clicks WHERE human"),
        counts + tally(DELIVERIES, dialect, DELIVERIES.table),
        counts + tally(ATTRIBUTIONS, dialect, ATTRIBUTIONS.table),
    ]


def event_tally(dialect: str, *, received_since: str | None = None) -> str:
    """SELECT key (d, s, t, m) and count (c) of the counted rows of `provider_events`
    (received at or after the SQL timestamp `received_since`, when given)."""
    where = f"r.received_at >= {received_since}" if received_since else None
    return " UNION ALL ".join(
        tally(rule, dialect, "provider_events", where=where)
        for rule in (FIRST_EVENTS, FIRST_MACHINE_OPENS)
    )
