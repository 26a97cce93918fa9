"""Rendering of report templates into one self-contained HTML file.

Plotly's JavaScript comes from the installed ``plotly`` package and is inlined, so a report opens
offline, from an e-mail attachment or a file share, with no request to any other host.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

from mlwarden.exceptions import InputError


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlwarden.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = format_number
    return env


@functools.cache
def plotly_js() -> str:
    """The Plotly.js library shipped inside the installed plotly package."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def format_number(x: Any, digits: int = 3) -> str:
    """A number for a table cell: 3 significant figures, a dash for missing or non-finite."""
    if x is None or isinstance(x, bool):
        return "–" if x is None else str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return "–"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.{digits - 1}e}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{round(x):,}"  # 2,851 rather than 2.85e+03
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:,.{digits}g}"


def figure_json(figure: Any) -> str:
    """A plotly figure as JSON for ``Plotly.newPlot`` (safe to embed in a script tag)."""
    text: str = figure.to_json()
    return text.replace("</", "<\\/")


def render(template: str, **context: Any) -> str:
    """Render a template of ``mlwarden/report/templates`` with Plotly.js inlined."""
    return str(_environment().get_template(template).render(plotly_js=plotly_js(), **context))


def write(path: str | Path, html: str) -> Path:
    """Write a report atomically (a reader never sees half a file)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise InputError(
            f"Cannot write the report to '{target}': {exc.strerror}.", path=target
        ) from exc
    return target


def dumps(doc: Any) -> str:
    """JSON for embedding in a page's script tag."""
    return json.dumps(doc, allow_nan=False, default=str).replace("</", "<\\/")
