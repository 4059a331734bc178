"""The owner's pages: the inbox (mark done, notes, open/done filter), upcoming appointments (day or
week) and analytics with charts; every admin page's header shows the inbox's unread count
(``header_counts``). CSV exports are in ``admin.exports``, chart geometry in ``admin.charts``.

Every route requires an admin session and every POST its CSRF token (``require_admin``). Forms post
as ordinary HTML forms (303 back to the inbox) or with ``Accept: application/json``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from phone_agent.admin import auth
from phone_agent.admin.auth import AdminDep
from phone_agent.admin.charts import bar_chart, hour_chart
from phone_agent.admin.templating import render
from phone_agent.api.deps import ServicesDep
from phone_agent.api.limits import MAX_DB_INT
from phone_agent.errors import ConfigError
from phone_agent.memory.summary import outcome_label
from phone_agent.services import Services
from phone_agent.storage.analytics import call_stats
from phone_agent.storage.inbox import (
    InboxState,
    InboxTable,
    appointments_between,
    inbox_items,
    mark_done,
    mark_seen,
    set_note,
    unread_count,
)

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])
ITEM_KINDS = {
    "message": "Message",
    "voicemail": "Voicemail",
    "booking": "Booking",
    "callback": "Callback request",
}
ANALYTICS_DAYS = (7, 30, 90)


async def header_counts(services: Services) -> dict[str, Any]:
    """What every admin page's header shows: the inbox's unread count."""
    async with services.sessions() as session:
        return {"inbox_unread": await unread_count(session)}


def _local(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%a %d %b %H:%M") if value else ""


@router.get("/admin/inbox", response_class=HTMLResponse)
async def inbox_page(
    request: Request, services: ServicesDep, admin: AdminDep, state: Literal["open", "done", "all"] = "open"
) -> Response:
    """Messages, voicemails, bookings and callback requests; the shown items count as read."""
    tz = ZoneInfo(services.settings.timezone)
    async with services.sessions() as session:
        items = await inbox_items(session, state=state)
    for item in items:
        item["kind_label"] = ITEM_KINDS.get(item["kind"], item["kind"])
        item["when"] = _local(item["created_at"], tz)
        item["starts"] = _local(item.get("starts_at"), tz)
        item["outcome_label"] = outcome_label(item["outcome"])
    context = {
        "csrf_token": admin.csrf_token,
        "items": items,
        "state": state,
        "timezone": services.settings.timezone,
        **await header_counts(services),
    }
    response = render(request, "inbox.html", context)
    await mark_seen(services.sessions, [(i["table"], i["id"]) for i in items if i["unread"]])
    return response


@router.get("/admin/api/inbox")
async def inbox_json(services: ServicesDep, state: Literal["open", "done", "all"] = "open") -> dict[str, Any]:
    """The inbox as JSON (does not mark anything read)."""
    async with services.sessions() as session:
        items = await inbox_items(session, state=state)
        unread = await unread_count(session)
    return {"unread": unread, "items": [_json_item(i) for i in items]}


def _json_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()}


def _back(request: Request, state: str) -> Response:
    if auth.wants_json(request):
        return JSONResponse({"ok": True})
    return RedirectResponse(f"/admin/inbox?state={state}", status_code=303)


@router.post("/admin/inbox/{table}/{item_id}/done")
async def inbox_done(
    table: InboxTable,
    item_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    done: bool = Form(True),
    state: InboxState = Form("open"),
) -> Response:
    """Mark an item done (``done=false``: open again)."""
    await mark_done(services.sessions, table, item_id, done=done)
    return _back(request, state)


@router.post("/admin/inbox/{table}/{item_id}/note")
async def inbox_note(
    table: InboxTable,
    item_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    note: str = Form(""),
    state: InboxState = Form("open"),
) -> Response:
    """Write (or clear) the owner's note on an item."""
    await set_note(services.sessions, table, item_id, note)
    return _back(request, state)


@router.get("/admin/appointments", response_class=HTMLResponse)
async def appointments_page(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    view: Literal["day", "week"] = "week",
    day: date | None = None,
) -> Response:
    """Upcoming bookings of one local day or the seven days from ``day`` (default today)."""
    tz = ZoneInfo(services.settings.timezone)
    first = day or datetime.now(tz).date()
    if not 1900 <= first.year <= 9000:
        raise ConfigError("day must be a date between the years 1900 and 9000, like 2026-12-03.")
    span = 1 if view == "day" else 7
    start = datetime.combine(first, datetime.min.time(), tz)
    async with services.sessions() as session:
        rows = await appointments_between(session, start, start + timedelta(days=span))
    days: dict[date, list[dict[str, Any]]] = {first + timedelta(days=i): [] for i in range(span)}
    for row in rows:
        local = row["starts_at"].astimezone(tz)
        row["time"] = local.strftime("%H:%M")
        row["kind_label"] = ITEM_KINDS[row["kind"]]
        days.setdefault(local.date(), []).append(row)
    step = timedelta(days=span)
    context = {
        "csrf_token": admin.csrf_token,
        "view": view,
        "first": first,
        "days": [
            {"date": d, "label": d.strftime("%A %d %B"), "bookings": items} for d, items in days.items()
        ],
        "count": len(rows),
        "previous": (first - step).isoformat(),
        "next": (first + step).isoformat(),
        "timezone": services.settings.timezone,
        **await header_counts(services),
    }
    return render(request, "appointments.html", context)


@router.get("/admin/analytics", response_class=HTMLResponse)
async def analytics_page(
    request: Request, services: ServicesDep, admin: AdminDep, days: int = 30
) -> Response:
    """Calls per day, outcomes, duration, transfers, busiest hours and answer latency, with charts."""
    if days not in ANALYTICS_DAYS:
        raise ConfigError(f"days must be one of {', '.join(map(str, ANALYTICS_DAYS))}.")
    async with services.sessions() as session:
        stats = await call_stats(session, days=days, timezone=services.settings.timezone)
    per_day = [(d.strftime("%d %b"), n) for d, n in stats.days]
    outcomes = [
        (outcome_label(k) if k != "not reviewed" else "Not reviewed", n) for k, n in stats.outcomes.items()
    ]
    context = {
        "csrf_token": admin.csrf_token,
        "stats": stats,
        "days": days,
        "choices": ANALYTICS_DAYS,
        "outcomes": outcomes,
        "per_day_chart": bar_chart(per_day, label_every=max(1, days // 10)),
        "outcome_chart": bar_chart(outcomes, horizontal=True),
        "hour_chart": hour_chart(stats.hours),
        "timezone": services.settings.timezone,
        **await header_counts(services),
    }
    return render(request, "analytics.html", context)


@router.get("/admin/api/analytics")
async def analytics_json(services: ServicesDep, days: int = 30) -> dict[str, Any]:
    """The analytics figures as JSON."""
    if days < 1 or days > 366:
        raise ConfigError("days must be between 1 and 366.")
    async with services.sessions() as session:
        stats = await call_stats(session, days=days, timezone=services.settings.timezone)
    return {
        "days": [{"date": d.isoformat(), "calls": n} for d, n in stats.days],
        "calls": stats.calls,
        "chats": stats.chats,
        "outcomes": stats.outcomes,
        "average_duration_seconds": stats.average_duration_s,
        "transfers": stats.transfers,
        "calls_per_hour": stats.hours,
        "busiest_hours": stats.busiest_hours,
        "answer_latency_p50_ms": stats.latency_p50_ms,
        "answer_latency_p95_ms": stats.latency_p95_ms,
        "answers_timed": stats.answers_timed,
    }
