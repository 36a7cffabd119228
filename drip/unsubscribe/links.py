"""The per-contact links an email carries: unsubscribe, the download of the template, and
tracked links (`/l/`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from drip.sequences.definition import CONFIRM_STEP, Sequence
from drip.unsubscribe.tokens import TokenSigner


@dataclass(frozen=True)
class Links:
    """Builds a contact's signed links under `base_url`."""

    signer: TokenSigner
    base_url: str
    unsubscribe_mailto: str | None = None

    def unsubscribe_url(self, public_id: str) -> str:
        """The one-click unsubscribe URL of a contact."""
        return f"{self.base_url.rstrip('/')}/unsubscribe/{self.signer.sign(public_id)}"

    def for_contact(
        self, public_id: str, sequence: Sequence, step_id: str | None = None
    ) -> dict[str, str]:
        """The `links` templates see: `download` when the sequence offers a file, and `confirm`
        in a confirmation email."""
        base = self.base_url.rstrip("/")
        links = {}
        if sequence.download is not None:
            token = self.signer.sign_download(public_id, sequence.id)
            links["download"] = f"{base}/download/{sequence.id}/{token}"
        if step_id == CONFIRM_STEP:
            # Stamped now, after the request it answers: see drip.signup.confirm.
            token = self.signer.sign_confirm(public_id, sequence.id)
            links["confirm"] = f"{base}/confirm/{sequence.id}/{token}"
        return links

    def click_url(self, delivery_id: int, link_index: int, target: str) -> str:
        """The tracked link `/l/{token}` of link `link_index` of a delivery, leading to `target`."""
        token = self.signer.sign_click(delivery_id, link_index, target)
        return f"{self.base_url.rstrip('/')}/l/{token}"

    def click_maker(self, delivery_id: int) -> Callable[[int, str], str]:
        """`click_url` for the links of one delivery, as the renderer calls it."""
        return partial(self.click_url, delivery_id)

    @staticmethod
    def footer_unsubscribe_url(unsubscribe_url: str, sequence_id: str) -> str:
        """The footer's link, from the contact's `unsubscribe_url`: its page offers leaving
        this sequence or everything."""
        return f"{unsubscribe_url}?sequence={sequence_id}"
