"""The envelope sender (``MAIL FROM``) of each message: where its bounces go.

Without ``digest.bounce_address``: the ``digest.from`` address, for every message.
With it: a VERP address per delivery, ``<local>+<edition>-<mac>@<domain>``
(``domain.verp``), which ``bounces process`` maps back to the delivery. The keys are
the store's signing keys (``Store.signing_keys``: a file beside SQLite, the ``secrets``
table on PostgreSQL, shared by every host), those of Message-IDs and unsubscribe links.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config import Config
from ..domain.verp import CONFIRMATION, VerpSigner, parse_bounce_address
from ..state.api import Delivery

__all__ = ["confirmation_sender", "envelope_sender"]


def envelope_sender(
    config: Config, plain: str, keys: Sequence[bytes]
) -> str | Callable[[Delivery], str]:
    """``plain`` (the From address), or a function giving each delivery its VERP address."""
    if not config.digest.bounce_address:
        return plain
    bounce = parse_bounce_address(config.digest.bounce_address)
    signer = VerpSigner(keys)
    return lambda delivery: signer.envelope(bounce, delivery.edition_id, delivery.email)


def confirmation_sender(config: Config, plain: str, recipient: str, keys: Sequence[bytes]) -> str:
    """The envelope sender of a sign-up's confirmation mail (edition 0 in its token)."""
    if not config.digest.bounce_address:
        return plain
    bounce = parse_bounce_address(config.digest.bounce_address)
    return VerpSigner(keys).envelope(bounce, CONFIRMATION, recipient)
