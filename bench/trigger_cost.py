"""What the delivery-count triggers cost PostgreSQL per statement: migration 0014's
statement-level ones against 0015's row-level ones, on one scratch database, in one run.

Seeds 50,000 contacts with 10 deliveries each (`seed`; triggers off while seeding), then,
with each set of triggers in turn and with none (twice, interleaved), times the server's
execution of a claim (scheduled -> queued, 25 and 50 rows), a claim to send (queued ->
sending, 50 rows), a batch finish (sending -> sent, 50 rows) and inserts of new scheduled
rows (1 and 50), each on random rows of active contacts, in a transaction rolled back, as
EXPLAIN ANALYZE's execution time (triggers included), median of `--repeat`.
Usage: python bench/trigger_cost.py [--contacts 50000] [--repeat 60]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from statistics import median

import psycopg
from harness import drop_database, fresh_database

from drip.reports.counting import (
    CONVERTED,
    UNSUBSCRIBED,
    Trigger,
    create_statements,
    drop_statements,
    row_triggers,
    triggers,
)

NAME = "drip_bench_trigger_cost"
SETS: dict[str, Callable[[str], list[Trigger]]] = {
    "0014 statement-level": triggers,
    "0015 row-level": row_triggers,
    "no trigger": lambda dialect: [],
}
_NEXT = (
    "INSERT INTO deliveries (enrollment_id, contact_id, sequence_id, step_id, resend_number,"
    " resend, status, due_at, attempts, created_at, updated_at)"
    " SELECT enrollment_id, contact_id, sequence_id, 'next' || id, 0, false, 'scheduled',"
    " now(), 0, now(), now() FROM deliveries WHERE id = ANY(%s)"
)
#: Each timed statement: how many rows, the untimed moves before it, the statement.
MOVES = {
    "claim 25 (scheduled -> queued)": (25, [], "status = 'queued', updated_at = now()"),
    "claim 50 (scheduled -> queued)": (50, [], "status = 'queued', updated_at = now()"),
    "claim to send 50 (queued -> sending)": (
        50,
        ["status = 'queued'"],
        "status = 'sending', attempts = attempts + 1, updated_at = now()",
    ),
    "finish 50 (sending -> sent)": (
        50,
        ["status = 'queued'", "status = 'sending'"],
        "status = 'sent', sent_at = now(), updated_at = now()",
    ),
    "insert 1 (a signup's first row)": (1, [], _NEXT),
    "insert 50 (a batch's next rows)": (50, [], _NEXT),
}


def seed(db: psycopg.Connection, contacts: int) -> list[int]:
    """`contacts` contacts, one enrolment and 10 deliveries each, triggers off; every tenth
    contact unsubscribed after its first email, and every tenth other enrolment converted
    after its own, both attributed and counted as 0015 would. Returns the ids of the
    scheduled rows of the others, the rows a worker sends."""
    db.execute("SET session_replication_role = replica")
    rows = f"FROM generate_series(1, {contacts}) g"
    db.execute(f"""
        INSERT INTO contacts (id, public_id, email, email_hash, attributes, status,
                              created_at, updated_at)
        SELECT g, md5('p' || g), 'b' || g || '@example.com', md5('h' || g) || md5('x' || g),
               '{{}}', CASE WHEN g % 10 = 0 THEN 'unsubscribed' ELSE 'active' END, now(), now()
        {rows}""")
    db.execute(f"""
        INSERT INTO enrollments (id, contact_id, sequence_id, status, enrolled_at)
        SELECT g, g, 'bench', CASE WHEN g % 10 = 5 THEN 'converted' ELSE 'active' END, now()
        {rows}""")
    db.execute(f"""
        INSERT INTO deliveries (enrollment_id, contact_id, sequence_id, step_id, resend_number,
                                resend, status, due_at, attempts, created_at, updated_at,
                                sent_at)
        SELECT g, g, 'bench', 'step' || k, 0, false,
               CASE WHEN k = 1 THEN 'sent' ELSE 'scheduled' END, now(), 0, now(), now(),
               CASE WHEN k = 1 THEN now() END
        {rows}, generate_series(1, 10) k""")
    db.execute(f"""
        INSERT INTO funnel_attributions (delivery_id, measure, enrollment_id, day,
                                         sequence_id, step_id)
        SELECT d.id, CASE WHEN c.status = 'unsubscribed' THEN '{UNSUBSCRIBED}'
                          ELSE '{CONVERTED}' END,
               d.enrollment_id, current_date, d.sequence_id, d.step_id
        FROM deliveries d JOIN contacts c ON c.id = d.contact_id
        WHERE d.status = 'sent' AND (c.id % 10 IN (0, 5))""")
    db.execute("""
        INSERT INTO delivery_counts (day, sequence_id, step_id, measure, n)
        SELECT current_date, sequence_id, step_id, status, count(*) FROM deliveries
        GROUP BY 1, 2, 3, 4""")
    db.execute("SET session_replication_role = origin")
    db.execute("ANALYZE")
    found = db.execute(
        "SELECT id FROM deliveries WHERE status = 'scheduled' AND contact_id % 10 NOT IN (0, 5)"
    ).fetchall()
    return [row[0] for row in found]


def timed(db: psycopg.Connection, move: tuple[int, list[str], str], rows: list[int]) -> float:
    """The server's milliseconds for one `move` of random rows, rolled back."""
    size, before, change = move
    ids = random.sample(rows, size)
    with db.transaction(force_rollback=True):
        for step in before:
            db.execute(f"UPDATE deliveries SET {step} WHERE id = ANY(%s)", [ids])
        statement = (
            change
            if change.startswith("INSERT")
            else f"UPDATE deliveries SET {change} WHERE id = ANY(%s)"
        )
        plan = db.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", [ids]).fetchone()
    assert plan is not None
    found = plan[0] if isinstance(plan[0], list) else json.loads(plan[0])
    return float(found[0]["Execution Time"])


def main() -> None:
    """Print the median execution time of each move under each set of triggers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    url = fresh_database(NAME)
    try:
        with psycopg.connect(url, autocommit=True) as db:
            rows = seed(db, args.contacts)
            times: dict[tuple[str, str], list[float]] = {}
            current: Callable[[str], list[Trigger]] = row_triggers
            for _ in range(2):
                for label, chosen in SETS.items():
                    for statement in drop_statements("postgresql", current("postgresql")):
                        db.execute(statement)
                    for statement in create_statements("postgresql", chosen("postgresql")):
                        db.execute(statement)
                    current = chosen
                    for name, move in MOVES.items():
                        times.setdefault((label, name), []).extend(
                            timed(db, move, rows) for _ in range(args.repeat)
                        )
        print(f"deliveries: {args.contacts * 10:,}")
        for name in MOVES:
            old, new, none = (median(times[(label, name)]) for label in SETS)
            print(
                f"{name}: {old:.2f} ms -> {new:.2f} ms ({old / new:.1f} x);"
                f" no trigger {none:.2f} ms"
            )
    finally:
        drop_database(NAME)


if __name__ == "__main__":
    main()
