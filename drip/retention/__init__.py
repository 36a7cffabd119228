"""Event retention: provider events partitioned by month, counted, then removed.

Raw provider events grow with every email sent. Each is counted when it is stored (a
trigger adds its delivery's first of each name to `delivery_counts`, per day the delivery
was created, sequence, step and measure: `drip.reports.counting`), and the raw rows are
kept for `DRIP_EVENT_RETENTION` days: a month wholly older than that is removed (a dropped
partition on PostgreSQL, deleted rows on SQLite) without touching the counts. The funnel
reads only the counts, so it reads the same across a prune.

Never removed: contacts and their status (the suppression list), enrollments, deliveries,
the audit log.
"""
