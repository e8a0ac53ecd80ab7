"""The subscriber's language on the pages (issue 14): the pages a digest links to open
in the digest's language, items in another language say so, the start page's form
comes first with its privacy note. Real server, real SQLite, real aiosmtpd."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from smtp_server import RecordingServer


def _test_app() -> ModuleType:
    # By file: the helpers of test_app.py (a server on a loopback port, a built site).
    path = Path(__file__).with_name("test_app.py")
    spec = importlib.util.spec_from_file_location("_test_app_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_app = _test_app()
Site = _app.Site
run_site = _app.run_site


@pytest.fixture
def smtp() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def test_start_page_has_the_form_above_the_statements_with_a_privacy_note(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        for lang, note in (
            ("en", "We keep only your address, languages and frequency."),
            ("ru", "Мы храним только ваш адрес, языки и частоту."),
        ):
            _, _, body = await site.get(f"?lang={lang}")
            page = body.decode()
            form, statements = page.index('action="subscribe"'), page.index("<article")
            assert form < statements, "the subscribe form comes before the statements"
            privacy = page.index(note)
            assert form < privacy < page.index("</form>")

    run_site(tmp_path, smtp, scenario)
