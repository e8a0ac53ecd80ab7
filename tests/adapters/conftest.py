"""Fixtures for adapter tests: a real SMTP server (tests/smtp_server.py) on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not a package; make its shared helpers importable from this folder too.
sys.path.insert(0, str(Path(__file__).parents[1]))

from smtp_server import RecordingServer


@pytest.fixture
def smtp_server() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server
