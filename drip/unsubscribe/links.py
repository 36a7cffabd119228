"""The per-contact links an email carries: unsubscribe, and the download of the template."""

from __future__ import annotations

from dataclasses import dataclass

from drip.unsubscribe.tokens import Purpose, TokenSigner


@dataclass(frozen=True)
class Links:
    signer: TokenSigner
    base_url: str
    unsubscribe_mailto: str | None = None

    def unsubscribe_url(self, public_id: str) -> str:
        """The one-click unsubscribe URL of a contact."""
        return f"{self.base_url.rstrip('/')}/unsubscribe/{self.signer.sign(public_id)}"

    def for_contact(self, public_id: str, sequence_id: str) -> dict[str, str]:
        """The `links` templates see for a contact."""
        token = self.signer.sign(public_id, Purpose.DOWNLOAD)
        return {"download": f"{self.base_url.rstrip('/')}/download/{sequence_id}/{token}"}
