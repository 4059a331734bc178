"""The Jinja2 environment of the admin pages (templates/ beside this file, autoescaped) and how a page
is sent: never cached, never framed, scripts and media only from this origin (CSP)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def utc_time(timestamp: float) -> str:
    """A unix time as ``HH:MM:SS`` in UTC (the provider health rows)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")


templates.env.filters["utc_time"] = utc_time

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
}


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> Response:
    """An admin page with the security headers every admin page carries."""
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=PAGE_HEADERS)
