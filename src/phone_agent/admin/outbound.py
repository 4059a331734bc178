"""Outbound calls on the admin page: "Call back" a caller, place a call, the do-not-call list.

``/admin/outbound`` shows the recent outbound calls (status callbacks and answering-machine verdict),
a form to place one, and the do-not-call list (add a number with a note, remove it). "Call back"
on a caller's page posts the same form with ``back`` set to that page. Calls are placed through
``telephony.outbound.place_outbound_call`` like ``POST /v1/calls``: a refusal (do-not-call list,
outside calling hours, a bad number) is shown on the page with its reason, and nothing is dialled.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from phone_agent.admin import auth
from phone_agent.admin.auth import AdminDep
from phone_agent.admin.knowledge import masked_phone
from phone_agent.admin.templating import render
from phone_agent.api.deps import ServicesDep
from phone_agent.config import e164
from phone_agent.errors import ProviderError
from phone_agent.services import Services
from phone_agent.storage.db import transaction
from phone_agent.storage.outbound import (
    add_do_not_call,
    list_do_not_call,
    recent_outbound,
    remove_do_not_call,
)
from phone_agent.storage.tables import AuditEntry
from phone_agent.telephony.outbound import DialRefused, calling_hours_text, place_outbound_call

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])

PAGE = "/admin/outbound"
DEFAULT_CALL_BACK_PURPOSE = "returning your call"


async def _page(
    request: Request,
    services: Services,
    admin: auth.Admin,
    *,
    error: str | None = None,
    entered: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "csrf_token": admin.csrf_token,
        "tz": services.settings.timezone,
        "calls": [call.public() for call in await recent_outbound(services.sessions)],
        "do_not_call": await list_do_not_call(services.sessions),
        "calling_hours": calling_hours_text(services.settings),
        "timezone": services.settings.timezone,
        "saved": request.query_params.get("saved"),
        "error": error,
        "entered": entered or {},
    }
    return render(request, "outbound.html", context, status_code=status_code)


def _back_to(back: str, saved: str) -> str:
    """Where a form returns (an admin page only), saying what was done."""
    target = auth.safe_next(back) if back else PAGE
    return f"{target}{'&' if '?' in target else '?'}saved={saved}"


async def _audit(services: Services, actor: str, action: str, target: str) -> None:
    async with transaction(services.sessions) as session:
        session.add(AuditEntry(actor=actor, action=action, target=target))


@router.get(PAGE)
async def outbound_page(request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    """Recent outbound calls, "place a call", and the do-not-call list."""
    return await _page(request, services, admin)


@router.post(f"{PAGE}/call")
async def place_call(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    to: str = Form(...),
    purpose: str = Form(DEFAULT_CALL_BACK_PURPOSE),
    back: str = Form(""),
) -> Response:
    """Place a call (from this page, or "Call back" on a caller's page: ``back`` is that page)."""
    entered = {"to": to, "purpose": purpose}
    try:
        call = await place_outbound_call(
            services.settings,
            services.sessions,
            services.control,
            to=to,
            purpose=purpose,
            requested_by="admin",
        )
    except DialRefused as exc:
        return await _page(
            request, services, admin, error=str(exc), entered=entered, status_code=exc.status_code
        )
    except ProviderError as exc:
        return await _page(request, services, admin, error=str(exc), entered=entered, status_code=502)
    await _audit(services, admin.actor, "call.outbound", f"{masked_phone(call.to)} {call.call_sid}")
    return RedirectResponse(_back_to(back, "calling"), status_code=303)


@router.post(f"{PAGE}/do-not-call")
async def add_number(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    phone: str = Form(...),
    note: str = Form(""),
    back: str = Form(""),
) -> Response:
    """Put a number on the do-not-call list."""
    try:
        number = e164(phone, services.settings.default_country)
    except ValueError as exc:
        return await _page(request, services, admin, error=f"Do-not-call: {exc}.", status_code=422)
    await add_do_not_call(services.sessions, number, note=note, added_by=admin.actor)
    await _audit(services, admin.actor, "do_not_call.add", masked_phone(number))
    return RedirectResponse(_back_to(back, "do-not-call"), status_code=303)


@router.post(PAGE + "/do-not-call/{phone}/delete")
async def remove_number(phone: str, services: ServicesDep, admin: AdminDep, back: str = Form("")) -> Response:
    """Take a number off the do-not-call list (its entry is deleted)."""
    await remove_do_not_call(services.sessions, phone)
    await _audit(services, admin.actor, "do_not_call.remove", masked_phone(phone))
    return RedirectResponse(_back_to(back, "do-not-call"), status_code=303)
