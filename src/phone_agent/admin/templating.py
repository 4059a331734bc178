"""The Jinja2 environment of the admin pages (templates/ beside this file, autoescaped, with the
``owner_words`` filters: ``localtime``, ``tool_sentence``, ``end_reason``, ``zone``) and how a page
is sent: never cached, never framed, scripts and media only from this origin (CSP)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from phone_agent.admin.owner_words import end_reason_words, local_time, tool_sentence, zone_label

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
DEFAULT_TZ = "UTC"  # a page that passes no ``tz`` (login, setup) shows no times anyway


@pass_context
def _local(context: Context, value: Any, fmt: str = "%a %-d %b %Y, %H:%M") -> str:
    return local_time(value, context.get("tz") or DEFAULT_TZ, fmt)


@pass_context
def _tool(context: Context, record: dict[str, Any], caller_name: str | None = None) -> dict[str, str]:
    return tool_sentence(record, context.get("tz") or DEFAULT_TZ, caller_name)


templates.env.filters.update(
    localtime=_local, tool_sentence=_tool, end_reason=end_reason_words, zone=zone_label
)


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
