"""The module `drip worker` hands to Dramatiq's own worker: it builds this process's runtime.

Each worker process imports it, so each has its own database pool, transport client
and broker connection.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.middleware.prometheus import Prometheus

from drip.config import Settings
from drip.logs import configure_logging
from drip.runtime import build_runtime

configure_logging(json=True)
settings = Settings()
runtime = build_runtime(settings)
broker = runtime.broker
if settings.worker_metrics_port:
    # Dramatiq's own Prometheus exposition, which also serves drip's send counters and latency.
    os.environ.setdefault("dramatiq_prom_port", str(settings.worker_metrics_port))
    broker.add_middleware(Prometheus())
dramatiq.set_broker(broker)
