"""Server-rendered pages: plain HTML forms that work without JavaScript.

Each page gets a fresh nonce for its inline stylesheet and a Content-Security-Policy that
allows that stylesheet and nothing else to run or load (see `drip.api.headers`).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from drip.api.headers import page_policy

_env = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(default=True),
)


def page(
    name: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """Render the page template `name` with `context`, under a policy with a fresh nonce."""
    nonce = secrets.token_urlsafe(16)
    html = _env.get_template(name).render(csp_nonce=nonce, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Content-Security-Policy": page_policy(nonce), **(headers or {})},
    )
