"""``pip install .`` gives a working ``statement-feeds`` without the test tools, and the
README's deploy steps that can run here work with it (scripts/install-check.sh: wheel →
fresh venv → init, check, build, digest send to the Maildir, status; the daemon as the unit
runs it, a digest it delivers, ``state backup`` while it runs, a restore into a new folder
that ``status`` reads; ``systemd-analyze verify`` of the unit when systemd-analyze is there).

Needs PyPI for the dependencies (~30 s): skipped, saying so, when it cannot be reached;
``-m "not install"`` leaves it out on purpose.
"""

from __future__ import annotations

import shutil
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
    assert len(list((site / "outbox" / "new").iterdir())) == 2  # one by the daemon
    for step in ("the daemon", "state backup while it runs", "restore into a new folder"):
        assert step in done.stdout
    # The restored copy is the one status read; the daemon stopped cleanly (exit 0).
    assert (tmp_path / "restored" / "state" / "state.sqlite").is_file()
    after = (tmp_path / "status.after").read_text(encoding="utf-8")
    assert "ledger   sent 2, pending 0, deferred 0, failed 0" in after
    assert 'event="daemon stopped"' in (tmp_path / "daemon.log").read_text(encoding="utf-8")
    if shutil.which("systemd-analyze"):
        assert (tmp_path / "statement-feeds.service").is_file()
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
