"""The per-contact links an email carries: unsubscribe, and the download of the template."""

from __future__ import annotations

from dataclasses import dataclass

from drip.sequences.definition import Sequence
from drip.unsubscribe.tokens import Purpose, TokenSigner


@dataclass(frozen=True)
class Links:
    signer: TokenSigner
    base_url: str
    unsubscribe_mailto: str | None = None

    def unsubscribe_url(self, public_id: str) -> str:
        """The one-click unsubscribe URL of a contact."""
        return f"{self.base_url.rstrip('/')}/unsubscribe/{self.signer.sign(public_id)}"

    def for_contact(self, public_id: str, sequence: Sequence) -> dict[str, str]:
        """The `links` templates see for a contact: `download` when the sequence offers a file."""
        if sequence.download is None:
            return {}
        token = self.signer.sign(public_id, Purpose.DOWNLOAD)
        return {"download": f"{self.base_url.rstrip('/')}/download/{sequence.id}/{token}"}
