"""The delivery state machine, in one place.

Every write to `deliveries.status` is made here, each by a conditional UPDATE whose
expected and new statuses are read from one table:

- `transitions`  the table: from, to, who makes the move, why (the docs show it; a test checks)
- `leases`       when a lease taken now runs out
- `moves`        the conditional UPDATEs that move rows: claims, hand-backs, retries, cancels
- `finish`       moving a whole batch out of `sending`, each row with its own values
- `progress`     what counts as received: the one rule the planner, `plan` and `stats` share
- `planning`     the next planned row of an enrollment, or a row off the planned line
- `inserts`      many rows in one statement; what the one-planned-row indexes refuse
- `outcomes`     `record_outcomes`: records how sends ended and alone decides what follows
- `enqueue`      `enqueue_after_commit`: hand the rows back when Redis refuses them
"""
