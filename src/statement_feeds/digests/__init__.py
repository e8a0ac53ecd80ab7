"""Subscribers (files + web) → plan → compose → send → record.

``service.Digests`` joins them; ``send.deliver`` is the one delivery loop, and it
depends only on ``state.api.Ledger`` and ``mailer.Messenger``; SMTP errors are
translated in one place, ``smtp_errors.map_smtp_errors`` (re-exported by ``mailer``),
and the aiosmtplib internals the fast SMTP path uses are named in ``smtp_internals``.
"""
