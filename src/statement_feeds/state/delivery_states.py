"""The states a delivery can be in, apart from ``api`` so that the command line can name
them (``deliveries --state``) without importing the state store's protocols."""

from __future__ import annotations

__all__ = ["DELIVERY_FILTERS", "DELIVERY_STATES"]

DELIVERY_STATES = ("pending", "sending", "sent", "deferred", "failed", "cancelled")
# What ``Ledger.deliveries`` filters on: a state, or "bounced" (a failed delivery whose
# address is marked bounced now: what ``retry_failed`` leaves alone).
DELIVERY_FILTERS = (*DELIVERY_STATES, "bounced")
