"""The envelope sender (``MAIL FROM``) of each message: where its bounces go.

Without ``digest.bounce_address``: the ``digest.from`` address, for every message.
With it: a VERP address per delivery, ``<local>+<edition>-<mac>@<domain>``
(``domain.verp``), which ``bounces process`` maps back to the delivery.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config
from ..domain.verp import CONFIRMATION, VerpSigner, parse_bounce_address
from ..state.api import Delivery
from ..state.secrets import load_keys

__all__ = ["confirmation_sender", "envelope_sender", "verp_signer"]


def verp_signer(config: Config) -> VerpSigner:
    """The token signer, with the keys of Message-IDs and unsubscribe links."""
    return VerpSigner(load_keys(config.paths.state))


def envelope_sender(config: Config, plain: str) -> str | Callable[[Delivery], str]:
    """``plain`` (the From address), or a function giving each delivery its VERP address."""
    if not config.digest.bounce_address:
        return plain
    bounce = parse_bounce_address(config.digest.bounce_address)
    signer = verp_signer(config)
    return lambda delivery: signer.envelope(bounce, delivery.edition_id, delivery.email)


def confirmation_sender(config: Config, plain: str, recipient: str) -> str:
    """The envelope sender of a sign-up's confirmation mail (edition 0 in its token)."""
    if not config.digest.bounce_address:
        return plain
    bounce = parse_bounce_address(config.digest.bounce_address)
    return verp_signer(config).envelope(bounce, CONFIRMATION, recipient)
