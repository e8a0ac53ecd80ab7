"""README "Deploying on a server" and contrib/statement-feeds.service agree: every folder
the unit lets the daemon write is made, owned by the unit's user, by the README's steps
(the issue-13 complaint: the systemd steps never made the folders ``ReadWritePaths``
needs); the program, site, secrets file and user are the same in both; the environment
the steps write passes the program's own check; ``systemd-analyze verify`` accepts the
unit (pointed at this venv's program). The steps themselves run in test_install.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from statement_feeds import environment
from statement_feeds.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "statement-feeds.service"
README = ROOT / "README.md"


def unit_values(key: str, text: str | None = None) -> list[str]:
    """Every value of ``key=`` in the unit, split on spaces, in order."""
    text = UNIT.read_text(encoding="utf-8") if text is None else text
    found: list[str] = []
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            found.extend(line.split("=", 1)[1].split())
    return found


def deploy_steps(readme: str | None = None) -> str:
    """The shell block of README "Deploying on a server", continuation lines joined."""
    readme = README.read_text(encoding="utf-8") if readme is None else readme
    section = readme.split("## Deploying on a server", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no ```sh block in README 'Deploying on a server'"
    return match.group(1).replace("\\\n", " ")


def folders_made_for(user: str, steps: str) -> set[str]:
    """Folders that ``install -d -o USER`` lines of ``steps`` make."""
    made: set[str] = set()
    for line in steps.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["sudo"]:
            words = words[1:]
        if words[:2] != ["install", "-d"] or "-o" not in words:
            continue
        if words[words.index("-o") + 1] != user:
            continue
        options_with_values = {"-o", "-g", "-m"}
        skip = False
        for word in words[2:]:
            if skip:
                skip = False
            elif word in options_with_values:
                skip = True
            elif not word.startswith("-"):
                made.add(word)
    return made


def missing_folders(unit: str, steps: str) -> set[str]:
    (user,) = unit_values("User", unit)
    wanted = {path.lstrip("-") for path in unit_values("ReadWritePaths", unit)}
    return wanted - folders_made_for(user, steps)


def test_every_folder_the_unit_lets_the_daemon_write_is_made_and_owned_by_its_user() -> None:
    assert unit_values("ReadWritePaths")  # the check below would pass on nothing
    assert missing_folders(UNIT.read_text(encoding="utf-8"), deploy_steps()) == set()


def test_the_check_sees_a_folder_the_steps_do_not_make() -> None:
    unit = UNIT.read_text(encoding="utf-8") + "ReadWritePaths=/srv/statement-feeds/cache\n"
    assert missing_folders(unit, deploy_steps()) == {"/srv/statement-feeds/cache"}
    made_by_root = deploy_steps().replace("-o statement-feeds -g statement-feeds -m 750", "-m 750")
    assert "/srv/statement-feeds/state" in missing_folders(
        UNIT.read_text(encoding="utf-8"), made_by_root
    )


def test_the_readme_steps_and_the_unit_name_the_same_user_program_site_and_secrets() -> None:
    steps = deploy_steps()
    (user,) = unit_values("User")
    (exec_start, *_) = unit_values("ExecStart")
    (env_file,) = unit_values("EnvironmentFile")
    (working_dir,) = unit_values("WorkingDirectory")
    (config,) = unit_values("Environment")
    assert f"useradd --system --home-dir {working_dir} " in steps
    assert re.search(rf"useradd [^\n]* {re.escape(user)}\n", steps)
    venv = exec_start.removesuffix("/bin/statement-feeds")
    assert f"-m venv {venv}\n" in steps and f"{venv}/bin/pip install" in steps
    assert f"statement-feeds init {working_dir} " in steps
    assert config == f"STATEMENT_FEEDS_CONFIG={working_dir}/statement-feeds.toml"
    assert f"install -D -m 600 /dev/null {env_file.lstrip('-')}" in steps


def test_the_secrets_the_steps_write_pass_the_programs_check() -> None:
    steps = deploy_steps()
    assigned = dict(re.findall(r"\b(STATEMENT_FEEDS_[A-Z_]+)=(\S+)", steps))
    assert "STATEMENT_FEEDS_TRUSTED_PROXIES" in assigned
    for name, value in assigned.items():
        if value == "...":  # a placeholder for a password
            continue
        environment.check_environment({name: value})  # raises ConfigError if bad
    with pytest.raises(ConfigError, match="STATEMENT_FEEDS_TRUSTED_PROXIES"):
        environment.check_environment({"STATEMENT_FEEDS_TRUSTED_PROXIES": "nginx"})


def test_the_reverse_proxy_examples_say_how_to_set_the_trusted_proxies() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("**Reverse proxy.**", 1)[1].split("**SPF, DKIM and DMARC.**", 1)[0]
    assert "```nginx" in section and "```caddy" in section
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in section
    assert "`STATEMENT_FEEDS_TRUSTED_PROXIES`" in section and "a whole number" in section


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    program = Path(sys.executable).parent / "statement-feeds"
    assert program.is_file(), program
    (exec_start, *_) = unit_values("ExecStart")
    unit = tmp_path / "statement-feeds.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(exec_start, str(program)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # It exits 0 on a setting it ignores, saying so: any word from it is a problem.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Type=notify", "Type=notfy"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, check=False
    )
    assert "notfy" in done.stdout + done.stderr  # the check above can fail
