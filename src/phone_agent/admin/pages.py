"""The admin pages: login, first-run setup, logout, /admin (all sections) and one call's page.

Pages are rendered on the server (Jinja2) and work without JavaScript; ``static/admin.js`` adds
in-place saving, the voice list and "Play sample". Every route here except login/setup requires a
session (``require_admin``), and every POST a CSRF token.
"""

from __future__ import annotations

import hmac
import math
import secrets
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from phone_agent.admin import auth, throttle
from phone_agent.admin.auth import AdminDep
from phone_agent.admin.callers import search_callers
from phone_agent.admin.calls import call_detail, call_log, live_calls
from phone_agent.admin.health import component_health, process_load
from phone_agent.admin.owner import header_counts
from phone_agent.admin.recordings import call_recordings
from phone_agent.admin.routing_view import routing_context
from phone_agent.admin.settings_form import SECTIONS, field_views
from phone_agent.admin.setup_checklist import missing_items
from phone_agent.admin.templating import render
from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.errors import NotFoundError, StoreError
from phone_agent.memory import MemoryStore
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.tables import AuditEntry

public = APIRouter(tags=["admin"])
TIMEZONES = sorted(available_timezones())
router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])


def _login_form(
    request: Request, *, error: str | None = None, status: int = 200, setup: bool = False
) -> Response:
    nonce = request.cookies.get(auth.LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "setup.html" if setup else "login.html",
        {"csrf_token": nonce, "error": error, "next": auth.safe_next(request.query_params.get("next"))},
        status_code=status,
    )
    response.set_cookie(
        auth.LOGIN_CSRF_COOKIE,
        nonce,
        max_age=3600,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=auth.is_https(request),
    )
    return response


def _login_csrf_ok(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), submitted.encode())


def _too_many(request: Request, refused: throttle.Refused, *, setup: bool) -> Response:
    wait = max(1, math.ceil(refused.retry_after))
    when = f"{math.ceil(wait / 60)} minutes" if wait >= 120 else f"{wait} seconds"
    what = "codes" if setup else "passwords"
    response = _login_form(
        request, setup=setup, error=f"Too many wrong {what}. Wait {when} and try again.", status=429
    )
    response.headers["Retry-After"] = str(wait)
    return response


def _csrf_refused() -> Response:
    return HTMLResponse("Missing or wrong CSRF token; reload the login page.", status_code=403)


@public.get("/admin/login", response_class=HTMLResponse)
async def login_page(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """The login form (or the first-run setup form when no password exists yet)."""
    if not await auth.account_exists(runtime, services):
        return RedirectResponse("/admin/setup", status_code=303)
    return _login_form(request)


@public.post("/admin/login")
async def login(
    request: Request,
    runtime: RuntimeDep,
    services: ServicesDep,
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form("/admin"),
) -> Response:
    """Check the password: a session on success, 401 on a wrong one, 429 after too many."""
    if not _login_csrf_ok(request, csrf_token):
        return _csrf_refused()
    client = auth.client_address(request)
    refused = await throttle.reserve_attempt(services.sessions, client)
    if refused is not None:
        return _too_many(request, refused, setup=False)
    if not await auth.check_password(runtime, services, password):
        await auth.record_login(services, client, ok=False)
        return _login_form(request, error="Wrong password.", status=401)
    await throttle.attempt_succeeded(services.sessions, client)
    await auth.record_login(services, client, ok=True)
    response = RedirectResponse(auth.safe_next(next), status_code=303)
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/admin")
    await auth.start_session(services, response, request)
    return response


@public.get("/admin/setup", response_class=HTMLResponse)
async def setup_page(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """First run: set the admin password with the one-time code from the data directory."""
    if await auth.account_exists(runtime, services):
        return RedirectResponse("/admin/login", status_code=303)
    auth.setup_code(services)  # make sure the file exists so the owner can read it
    return _login_form(request, setup=True)


@public.post("/admin/setup")
async def setup(
    request: Request,
    runtime: RuntimeDep,
    services: ServicesDep,
    code: str = Form(""),
    password: str = Form(""),
    confirm: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Set the first password (only while none exists), then log in."""
    if not _login_csrf_ok(request, csrf_token):
        return _csrf_refused()
    if await auth.account_exists(runtime, services):
        return RedirectResponse("/admin/login", status_code=303)
    client = auth.client_address(request)
    refused = await throttle.reserve_attempt(services.sessions, client)
    if refused is not None:
        return _too_many(request, refused, setup=True)
    expected = auth.setup_code(services)
    if not hmac.compare_digest(code.strip().encode(), expected.encode()):
        await auth.record_login(services, client, ok=False)
        return _login_form(request, setup=True, error="Wrong setup code.", status=401)
    if len(password) < auth.MIN_PASSWORD_LENGTH or password != confirm:
        error = f"Use at least {auth.MIN_PASSWORD_LENGTH} characters, typed the same twice."
        return _login_form(request, setup=True, error=error, status=422)
    await auth.set_password(services, password, actor=f"admin@{client}")
    auth.setup_code_path(services).unlink(missing_ok=True)
    await throttle.attempt_succeeded(services.sessions, client)
    await auth.record_login(services, client, ok=True)
    response = RedirectResponse("/admin", status_code=303)
    await auth.start_session(services, response, request)
    return response


@router.post("/admin/logout")
async def logout(services: ServicesDep, admin: AdminDep) -> Response:
    """End the session."""
    response = RedirectResponse("/admin/login", status_code=303)
    await auth.end_session(services, admin, response)
    return response


async def admin_context(
    runtime: Runtime,
    services: Services,
    admin: auth.Admin,
    request: Request,
    *,
    errors: dict[str, dict[str, str]] | None = None,
    entered: dict[str, dict[str, Any]] | None = None,
    upload_error: str | None = None,
    routing_error: str | None = None,
    routing_entered: dict[str, Any] | None = None,
    editing: int | None = None,
) -> dict[str, Any]:
    """Everything the /admin page shows."""
    settings = services.settings
    phone = request.query_params.get("phone", "").strip()
    knowledge_query = request.query_params.get("kq", "").strip()
    caller_query = request.query_params.get("cq", "").strip()
    store = services.memory
    async with services.sessions() as session:
        live = await live_calls(session)
        log = await call_log(session, phone=phone or None)
        audit = (
            (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(25)))
            .scalars()
            .all()
        )
    return {
        "csrf_token": admin.csrf_token,
        "tz": settings.timezone,
        "timezones": TIMEZONES,
        "sections": {name: field_views(settings, name, (entered or {}).get(name)) for name in SECTIONS},
        "errors": errors or {},
        "saved": request.query_params.get("saved"),
        "elevenlabs_key_set": settings.elevenlabs_api_key is not None,
        "live_calls": live,
        "call_log": log,
        "phone_filter": phone,
        "health": await component_health(runtime, services),
        "load": process_load(runtime),
        "config": settings.public_view(),
        "audit": audit,
        **await _knowledge(store, knowledge_query),
        "caller_query": caller_query,
        "callers": await search_callers(services, caller_query),
        "max_upload_mb": settings.max_upload_mb,
        "config_timezone": settings.timezone,
        "upload_error": upload_error,
        "setup_missing": missing_items(settings),
        **await header_counts(services),
        **await routing_context(
            services, request, error=routing_error, entered=routing_entered, editing=editing
        ),
    }


async def _knowledge(store: MemoryStore, query: str) -> dict[str, Any]:
    """Documents and search hits; a message instead when the memory service cannot answer."""
    try:
        documents = await store.list_documents()
        hits = await store.search_knowledge(query, limit=5) if query else None
    except StoreError as exc:
        return {"documents": [], "knowledge_hits": None, "knowledge_query": query, "memory_error": str(exc)}
    return {"documents": documents, "knowledge_hits": hits, "knowledge_query": query, "memory_error": None}


@router.get("/admin", response_class=HTMLResponse)
@router.get("/admin.html", response_class=HTMLResponse)
async def admin_page(
    request: Request, runtime: RuntimeDep, services: ServicesDep, admin: AdminDep
) -> Response:
    """The owner's page: every section."""
    return render(request, "admin.html", await admin_context(runtime, services, admin, request))


@router.get("/admin/calls/{call_sid}", response_class=HTMLResponse)
async def call_page(call_sid: str, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    """One call: transcript, tool calls and the per-turn latency waterfall."""
    async with services.sessions() as session:
        call = await call_detail(session, call_sid)
    if call is None:
        raise NotFoundError(f"No call with sid {call_sid!r}.")
    context = {
        "csrf_token": admin.csrf_token,
        "tz": services.settings.timezone,
        "call": call,
        "chart": waterfall_chart(call),
        "recordings": await call_recordings(services, call_sid),
    }
    return render(request, "call.html", {**context, **await header_counts(services)})


def waterfall_chart(call: dict[str, Any], *, width: int = 640, row_height: int = 26) -> dict[str, Any]:
    """Pixel geometry of the waterfall SVG (one row per timed turn, shared ms axis)."""
    rows = call["waterfall"]
    longest = max((r["total_ms"] for r in rows), default=0) or 1.0
    label_width, plot = 150, width - 150 - 10
    scale = plot / longest
    bars = []
    for i, row in enumerate(rows):
        y = 20 + i * row_height
        for seg in row["segments"]:
            bars.append(
                {
                    **seg,
                    "x": round(label_width + seg["start_ms"] * scale, 1),
                    "y": y,
                    "w": round(max(1.0, (seg["end_ms"] - seg["start_ms"]) * scale), 1),
                    "ms": round(seg["end_ms"] - seg["start_ms"]),
                }
            )
    ticks = []
    step = _tick_step(longest)
    t = 0.0
    while t <= longest + 0.5:
        ticks.append({"x": round(label_width + t * scale, 1), "label": f"{int(t)} ms"})
        t += step
    return {
        "width": width,
        "height": 20 + len(rows) * row_height + 24,
        "label_width": label_width,
        "row_height": row_height,
        "rows": [
            {**r, "y": 20 + i * row_height, "total_ms": round(r["total_ms"])} for i, r in enumerate(rows)
        ],
        "bars": bars,
        "ticks": ticks,
    }


def _tick_step(longest: float) -> float:
    for step in (50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if longest / step <= 8:
            return float(step)
    return 20000.0
