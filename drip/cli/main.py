"""`drip`: the command's tree of subcommands, each imported only when it is used."""

from __future__ import annotations

import typer

from drip.cli.lazy import LazyGroup


class DripCommands(LazyGroup):
    """drip's commands, in the order `drip --help` lists them, and where each is defined."""

    sources = {
        "run": "drip.cli.servers:run",
        "api": "drip.cli.servers:api",
        "scheduler": "drip.cli.processes:scheduler",
        "worker": "drip.cli.processes:worker",
        "enroll": "drip.cli.contacts:enroll",
        "studio": "drip.cli.sequences:studio",
        "resend": "drip.cli.operate:resend",
        "retry": "drip.cli.operate:retry",
        "stats": "drip.cli.operate:stats",
        "dead-letters": "drip.cli.operate:dead_letters_command",
        "db": "drip.cli.database:app",
        "sequences": "drip.cli.sequences:app",
        "contacts": "drip.cli.contacts:app",
        "keys": "drip.cli.keys:app",
        "webhooks": "drip.cli.webhooks:app",
        "deliveries": "drip.cli.operate:deliveries_app",
    }


app = typer.Typer(
    name="drip", cls=DripCommands, no_args_is_help=True, pretty_exceptions_enable=False
)


@app.callback()
def drip() -> None:
    """Email drip campaigns: sequences as code, a durable schedule, exactly-once sends."""
