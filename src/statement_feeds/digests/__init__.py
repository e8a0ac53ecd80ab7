"""Subscribers (files + web) → plan → compose → send → record.

``service.Digests`` joins them; ``send.deliver`` is the one delivery loop, and it
depends only on ``state.api.Ledger`` and ``mailer.Messenger``; SMTP errors are
translated in one place, ``mailer.map_smtp_errors``.
"""
