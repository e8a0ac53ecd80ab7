"""``pip install .`` gives a working ``statement-feeds`` without the test tools
(scripts/install-check.sh: wheel → fresh venv → init, check, build, digest send, status).

Needs PyPI for the dependencies (~30 s): skipped, saying so, when it cannot be reached;
``-m "not install"`` leaves it out on purpose.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.install]
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-check.sh"


def _pypi_unreachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        return f"PyPI (pypi.org:443) unreachable, so the dependencies cannot be installed: {exc}"
    return None


def test_a_wheel_installed_into_a_fresh_venv_runs_a_new_site(tmp_path: Path) -> None:
    why = _pypi_unreachable()
    if why:
        pytest.skip(why)
    done = subprocess.run(
        [str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"== ok: {tmp_path}" in done.stdout
    site = tmp_path / "site"
    assert (site / "public" / "feeds" / "en.atom").is_file()
    assert len(list((site / "outbox" / "new").iterdir())) == 1
    # The templates came from the installed package, not this checkout.
    installed = subprocess.run(
        [
            str(tmp_path / "venv" / "bin" / "python"),
            "-c",
            "import statement_feeds.template_files as t; print(t.DEFAULTS)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "site-packages" in installed, installed
