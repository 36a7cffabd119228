"""The module `drip worker` hands to Dramatiq's own worker: it builds this process's runtime.

Each worker process imports it, so each has its own database pool, transport client
and broker connection.
"""

from __future__ import annotations

import dramatiq

from drip.config import Settings
from drip.logs import configure_logging
from drip.runtime import build_runtime

configure_logging(json=True)
runtime = build_runtime(Settings())
broker = runtime.broker
dramatiq.set_broker(broker)
