"""The shared-state gauges are read at most once per `STATE_TTL`, however often scraped."""

from __future__ import annotations

from typing import Any

from drip.metrics import STATE_TTL, StateCollector


class CountingSessions:
    """Stands in for a sessionmaker: counts the reads, then fails like a database that is down."""

    def __init__(self) -> None:
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        raise ConnectionError("no database in unit tests")


def test_scrapes_within_the_ttl_reuse_one_read() -> None:
    now = [1000.0]
    sessions = CountingSessions()
    collector = StateCollector(
        sessions=sessions,  # type: ignore[arg-type]
        broker=object(),
        queues=("drip.send",),
        clock=lambda: now[0],
    )
    names = [family.name for family in collector.collect()]
    assert names == ["drip_scheduler_lag_seconds", "drip_deliveries_pending", "drip_queue_depth"]
    for _ in range(10):
        list(collector.collect())
        now[0] += STATE_TTL / 20
    assert sessions.opened == 1
    now[0] += STATE_TTL
    list(collector.collect())
    assert sessions.opened == 2
    assert 1 <= STATE_TTL <= 30  # "a few seconds": fresh enough for alerts, cheap to scrape
