"""``statement-feeds run``: build, watch, schedule, send, until stopped."""
