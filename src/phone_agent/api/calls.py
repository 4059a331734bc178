"""Outbound calls API: ``POST /v1/calls`` places a call, ``GET /v1/calls[/{call_sid}]`` follows it,
``/v1/do-not-call`` (GET, POST ``{phone, note}``, DELETE ``/{phone}``) edits the do-not-call list.

Same bearer key (``api_key``) and error shape as the chat API. A call the checks refuse answers
4xx with ``error.code``: ``do_not_call`` (403), ``outside_calling_hours`` (409), ``invalid_number``
/ ``purpose_required`` / ``purpose_too_long`` / ``not_configured`` (422); Twilio refusing it answers
502 with Twilio's message. Nothing is dialled unless the answer is 201.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, Field

from phone_agent.api.chat import APIProblem, Authorized, OpenAIErrorRoute
from phone_agent.api.deps import ServicesDep
from phone_agent.config import e164
from phone_agent.errors import ProviderError
from phone_agent.storage.outbound import (
    add_do_not_call,
    list_do_not_call,
    outbound_by_sid,
    recent_outbound,
    remove_do_not_call,
)
from phone_agent.telephony.outbound import MAX_PURPOSE_CHARS, DialRefused, place_outbound_call

router = APIRouter(prefix="/v1", tags=["calls"], route_class=OpenAIErrorRoute)


class CallRequest(BaseModel):
    """A call for the agent to place."""

    to: str = Field(
        min_length=1,
        max_length=64,
        validation_alias=AliasChoices("to", "number", "phone"),
        description="Number to call (E.164, or national).",
    )
    purpose: str = Field(
        min_length=1, max_length=MAX_PURPOSE_CHARS, description="Why the agent calls; said and kept in mind."
    )


def refused(exc: DialRefused) -> APIProblem:
    """A refusal in the API's error shape."""
    return APIProblem(exc.status_code, str(exc), type_="call_refused", param=exc.param, code=exc.code)


@router.post("/calls", dependencies=[Authorized], status_code=201)
async def create_call(body: CallRequest, services: ServicesDep) -> JSONResponse:
    """Place an outbound call (answering-machine detection on); 201 with the queued call."""
    try:
        call = await place_outbound_call(
            services.settings,
            services.sessions,
            services.control,
            to=body.to,
            purpose=body.purpose,
            requested_by="api",
        )
    except DialRefused as exc:
        raise refused(exc) from None
    except ProviderError as exc:
        raise APIProblem(502, str(exc), type_="provider_error", code="twilio_error") from None
    return JSONResponse(call.public(), status_code=201)


@router.get("/calls", dependencies=[Authorized])
async def list_calls(services: ServicesDep) -> dict[str, Any]:
    """The latest outbound calls, newest first."""
    return {"calls": [call.public() for call in await recent_outbound(services.sessions)]}


@router.get("/calls/{call_sid}", dependencies=[Authorized])
async def get_call(call_sid: str, services: ServicesDep) -> dict[str, Any]:
    """One outbound call: status, status callbacks received, answering-machine verdict."""
    call = await outbound_by_sid(services.sessions, call_sid)
    if call is None:
        raise APIProblem(404, f"No outbound call {call_sid!r}.", code="call_not_found")
    return call.public()


class DoNotCallRequest(BaseModel):
    """A number the agent must never call."""

    phone: str = Field(min_length=1, max_length=64, description="The number (E.164, or national).")
    note: str | None = Field(None, max_length=300, description="Why (e.g. 'asked not to be called').")


def _e164(services: ServicesDep, phone: str) -> str:
    try:
        return e164(phone, services.settings.default_country)
    except ValueError as exc:
        raise APIProblem(422, f"phone: {exc}.", param="phone", code="invalid_number") from None


@router.get("/do-not-call", dependencies=[Authorized])
async def do_not_call_list(services: ServicesDep) -> dict[str, Any]:
    """The do-not-call list, newest first."""
    return {"numbers": await list_do_not_call(services.sessions)}


@router.post("/do-not-call", dependencies=[Authorized], status_code=201)
async def do_not_call_add(body: DoNotCallRequest, services: ServicesDep) -> dict[str, Any]:
    """Put a number on the do-not-call list (``added`` is false when it was there already)."""
    phone = _e164(services, body.phone)
    added = await add_do_not_call(services.sessions, phone, note=body.note, added_by="api")
    return {"phone": phone, "added": added}


@router.delete("/do-not-call/{phone}", dependencies=[Authorized])
async def do_not_call_remove(phone: str, services: ServicesDep) -> dict[str, Any]:
    """Take a number off the do-not-call list (404 when it is not on it)."""
    number = _e164(services, phone)
    if not await remove_do_not_call(services.sessions, number):
        raise APIProblem(404, f"{number} is not on the do-not-call list.", code="not_found")
    return {"phone": number, "removed": True}
