"""`drip`: the command's tree of subcommands."""

from __future__ import annotations

import typer

from drip.cli import contacts, database, keys, operate, processes, sequences, webhooks

app = typer.Typer(
    name="drip",
    help="Email drip campaigns: sequences as code, a durable schedule, exactly-once sends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(processes.run)
app.command()(processes.api)
app.command()(processes.scheduler)
app.command()(processes.worker)
app.command()(contacts.enroll)
app.add_typer(database.app, name="db")
app.add_typer(sequences.app, name="sequences")
app.command()(sequences.studio)
app.add_typer(contacts.app, name="contacts")
app.add_typer(keys.app, name="keys")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(operate.deliveries_app, name="deliveries")
app.command()(operate.resend)
app.command()(operate.retry)
app.command()(operate.stats)
app.command("dead-letters")(operate.dead_letters_command)
