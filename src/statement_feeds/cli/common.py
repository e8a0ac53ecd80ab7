"""What every command shares: the context with the lazily loaded configuration, exit
codes, and the translation of our errors into a message and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import click

from ..config import Config, find_config, load_config
from ..environment import check_environment
from ..errors import StatementFeedsError

__all__ = [
    "EXIT_INVALID_INPUT",
    "EXIT_OK",
    "EXIT_USAGE",
    "Context",
    "handles_errors",
    "report_problems",
]

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE = 0, 1, 2
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
        return self._config


def handles_errors(func: F) -> F:
    """Turn configuration and state errors into a message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
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


def report_problems(problems: list[Any]) -> None:
    for problem in problems:
        click.echo(f"invalid: {problem}", err=True)
