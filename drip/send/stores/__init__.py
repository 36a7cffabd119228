"""Where the sender reads and writes its rows: PostgreSQL or SQLite (`sql`), or an
in-memory twin for fast tests (`memory`), behind one interface (`base`)."""

from drip.send.stores.base import Guard, SendStore
from drip.send.stores.memory import MemorySendStore
from drip.send.stores.sql import SqlSendStore

__all__ = ["Guard", "MemorySendStore", "SendStore", "SqlSendStore"]
