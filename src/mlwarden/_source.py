"""A document given as a file path or as its text, for the loaders of YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlwarden.exceptions import MlwardenError


def read_source(
    source: str | Path, *, what: str, error: Callable[..., MlwardenError]
) -> tuple[str, Path | None]:
    """The text of ``source`` and the file it came from: a :class:`~pathlib.Path` or a string
    without a newline is a file path, read as UTF-8; any other string is the text itself (path
    None).

    Parameters:
        source: the file path, or the document's text.
        what: what the file is, for the messages (``"suite file"``).
        error: the error to raise, called with the message and ``path=``, when the file is
            missing or cannot be read.

    Example:
        >>> from mlwarden.exceptions import InputError
        >>> read_source("checks: []\\n", what="suite file", error=InputError)
        ('checks: []\\n', None)
        >>> read_source("missing.yaml", what="suite file", error=InputError)
        Traceback (most recent call last):
        ...
        mlwarden.exceptions.InputError: No suite file 'missing.yaml'.
    """
    if not isinstance(source, Path) and "\n" in source:
        return source, None
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise error(f"No {what} '{path}'.", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"Cannot read the {what} '{path}': {exc}", path=path) from exc
