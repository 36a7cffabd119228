"""Server-rendered pages: plain HTML forms that work without JavaScript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

_env = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(default=True),
)


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render the page template `name` with `context`."""
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status_code)
