"""The durable schedule: which step comes next and when (pure), and the rows that hold it."""
