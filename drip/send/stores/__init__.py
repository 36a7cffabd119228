"""Where the sender reads and writes its rows: PostgreSQL or SQLite (`sql`), or an
in-memory twin for fast tests (`memory`), behind one interface (`base`)."""

from drip.send.stores.base import FactNeeds, Guard, SendStore
from drip.send.stores.memory import MemorySendStore
from drip.send.stores.sql import SqlSendStore

__all__ = ["FactNeeds", "Guard", "MemorySendStore", "SendStore", "SqlSendStore"]
