"""The `drip` command: one entry point, `--help` on every level."""
