"""The baseline: a no-op Dramatiq actor on the same Redis, run by Dramatiq's own worker."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(
    url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"), namespace="bench-noop"
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="noop", max_retries=0)
def noop(n: int) -> None:
    """Does nothing: what is left is Dramatiq's own cost per message."""
