"""What subscribers and providers wrote is printed as they wrote it, never obeyed as Rich markup."""

from __future__ import annotations

from drip.cli.common import console
from drip.cli.contacts import print_timeline
from drip.reports.timeline import Timeline

NAME = "[red]x[/red] [link=http://evil.example/login]verify[/link]"
SOURCE = "[bold]ads[/bold]"
REASON = "550 [link=http://evil.example]mailbox full[/link]"


def hostile_timeline() -> Timeline:
    return Timeline(
        contact={
            "email": "ann@example.com",
            "first_name": NAME,
            "timezone": "UTC",
            "source": SOURCE,
            "signed_up_at": "2026-11-30T08:00:00+00:00",
            "status": "bounced",
            "status_reason": REASON,
            "status_changed_at": "2026-11-30T09:00:00+00:00",
        },
        deliveries=[
            {
                "id": 1,
                "step": "welcome",
                "resend": False,
                "status": "failed",
                "due_at": None,
                "sent_at": None,
                "provider_message_id": None,
                "sequence_version": "abc",
                "note": REASON,
            }
        ],
        events=[
            {"at": None, "event": "bounce", "step": "welcome", "detail": "[blink]click[/blink]"}
        ],
    )


def test_contacts_show_prints_names_sources_and_reasons_literally() -> None:
    # Given a contact whose name, source and bounce reason hold Rich markup
    width = console.width
    console.width = 400  # one line per row, whatever the terminal
    try:
        with console.capture() as captured:
            print_timeline(hostile_timeline())
    finally:
        console.width = width
    out = captured.get()
    # Then each is shown as typed, in the header and in the tables
    assert NAME in out
    assert f"via {SOURCE}" in out
    assert f"status: bounced: {REASON}" in out
    assert out.count(REASON) == 2  # the status line and the delivery's note
    assert "[blink]click[/blink]" in out
