"""What the browser tests share: Debian's Chromium driven by Playwright, never a download.

Importing this module skips the importing test module when Playwright for Python is
missing; ``needs_chromium`` (as ``pytestmark``) skips it when /usr/bin/chromium is.
Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright for Python is not installed (pip install playwright)"
)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing (apt-get install chromium); no browser is downloaded",
)


def root_conftest() -> ModuleType:
    """tests/conftest.py as a module of its own (its helpers, e.g. ``statement_md``): the
    name ``conftest`` is taken by the nearest one."""
    spec = importlib.util.spec_from_file_location("_root_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
