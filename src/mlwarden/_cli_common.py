"""What every ``mlwarden`` command group shares: error handling and the store options.

Only click and the standard library load here, so that ``mlwarden --help`` starts in a blink.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from mlwarden.server.app import Settings

F = TypeVar("F", bound=Callable[..., Any])

USAGE_ERROR = 2


def friendly_errors(func: F) -> F:
    """Turn mlwarden's own errors into a one-line message and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlwarden.exceptions import MlwardenError

        try:
            return func(*args, **kwargs)
        except MlwardenError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"mlwarden: error: {message}", err=True)
            sys.exit(USAGE_ERROR)

    return wrapper  # type: ignore[return-value]


def build_settings(data_dir: Path | None, database_url: str | None, **extra: Any) -> Settings:
    """The server settings of the ``--data-dir`` and ``--database-url`` options, plus ``extra``.

    An option left out falls back to its environment variable, then to the default.
    """
    from mlwarden.server import Settings

    kwargs: dict[str, Any] = dict(extra)
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if database_url is not None:
        kwargs["database_url"] = database_url
    return Settings(**kwargs)


DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Data directory (default: $MLWARDEN_DATA_DIR or .mlwarden).",
)
DATABASE_OPTION = click.option(
    "--database-url", help="Metadata store URL (default: $MLWARDEN_DATABASE_URL or SQLite)."
)
