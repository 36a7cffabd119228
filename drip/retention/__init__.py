"""Event retention: provider events partitioned by month, counted, then removed.

Raw provider events grow with every email sent. They are kept for `DRIP_EVENT_RETENTION`
days; every closed day is counted into `provider_event_counts` (per day, sequence, step
and event, distinct deliveries), and a month wholly older than the retention is then
removed (a dropped partition on PostgreSQL, deleted rows on SQLite). The funnel reads the
counts plus the raw rows of the days not yet counted, so it reads the same across a prune.

Never removed: contacts and their status (the suppression list), enrollments, deliveries,
the audit log.
"""
