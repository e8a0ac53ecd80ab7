"""What every command shares: the context with the lazily loaded configuration, exit
codes, and the translation of our errors into a message and exit code 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import click

from ..config import Config, find_config, load_config
from ..environment import check_environment
from ..errors import StatementFeedsError
from ..logs import use_timezone

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INVALID_INPUT",
    "EXIT_OK",
    "EXIT_USAGE",
    "Context",
    "handles_errors",
    "report_problems",
]

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE = 0, 1, 2
# A reader that stopped early (``status | head -1``): the status a shell gives a tool that
# SIGPIPE killed (128 + 13), as ``git log | head -1`` gets. Not the Python docs' 1, which
# is our "some input was invalid"; 141 is what ``set -o pipefail`` scripts already expect.
EXIT_BROKEN_PIPE = 141
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    config_option: str | None
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            # The environment with the file: a bad variable is a configuration error
            # of every command, as a bad key is, not a crash somewhere later.
            check_environment()
            self._config = load_config(find_config(self.config_option))
            use_timezone(self._config.site.timezone)  # log times in the site's zone
        return self._config


def handles_errors(func: F) -> F:
    """Turn configuration and state errors into a message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
            sys.stdout.flush()  # a closed reader shows here, not in the interpreter's exit
            return result
        except BrokenPipeError:
            _exit_quietly_on_closed_stdout()
        # ConfigError, NothingToPreview, DeliveryHalted (the SMTP circuit breaker),
        # LockHeldError, StateError, StoreError: each says what to do in its message.
        except StatementFeedsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except OSError as exc:
            # An unwritable output or state folder is a setup problem, not invalid input.
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(
                f"error: cannot use{where}: {exc.strerror or exc}; check the paths in "
                "the configuration and their permissions",
                err=True,
            )
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def _exit_quietly_on_closed_stdout() -> None:
    """Exit as Unix tools do when the reader of stdout has gone: no message.

    Python ignores SIGPIPE, so the write raises instead of killing us; see "Note on
    SIGPIPE" in the signal module's docs. Output still buffered would be flushed at exit
    and fail again with "Exception ignored ... BrokenPipeError" on stderr: stdout is
    pointed at /dev/null first. Our commands write to no other pipe (SMTP is a socket
    whose errors are its own), so a BrokenPipeError here is stdout's.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (an in-process test runner)
        pass
    sys.exit(EXIT_BROKEN_PIPE)


def report_problems(problems: list[Any]) -> None:
    for problem in problems:
        click.echo(f"invalid: {problem}", err=True)
