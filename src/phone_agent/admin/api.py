"""What the admin page posts to and fetches: saving settings, voices, voice samples, calls as JSON.

Every route requires an admin session and every POST its CSRF token (``require_admin``). Settings
forms post here as ordinary HTML forms (303 back to the page, or the page again with the errors)
or, from ``admin.js``, with ``Accept: application/json`` (JSON answers, 422 with per-field errors).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from phone_agent.admin import auth
from phone_agent.admin.auth import AdminDep
from phone_agent.admin.calls import call_detail, call_log, live_calls
from phone_agent.admin.pages import admin_context
from phone_agent.admin.settings_form import SECTIONS, FormErrors, json_value, reset_setting, save_section
from phone_agent.admin.templating import render
from phone_agent.admin.voice import list_voices, synthesize_sample
from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.errors import ConfigError, NotFoundError
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import AuditEntry, Call

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])

VOICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@router.post("/admin/settings/{section}")
async def save_settings(
    section: str, request: Request, runtime: RuntimeDep, services: ServicesDep, admin: AdminDep
) -> Response:
    """Save one section of settings as admin overrides (validated, audited, live for new calls)."""
    if section not in SECTIONS:
        raise NotFoundError(f"No settings section {section!r}; sections are {', '.join(SECTIONS)}.")
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str) and k != "csrf_token"}
    try:
        changed = await save_section(runtime, section, form, actor=admin.actor)
    except FormErrors as exc:
        if auth.wants_json(request):
            return JSONResponse({"ok": False, "errors": exc.errors}, status_code=422)
        context = await admin_context(
            runtime, services, admin, request, errors={section: exc.errors}, entered={section: form}
        )
        return render(request, "admin.html", context, status_code=422)
    if auth.wants_json(request):
        saved = runtime.current.settings  # read again on purpose: the answer shows what was just saved
        values = {name: json_value(saved, name) for name in SECTIONS[section]}
        sources = {name: saved.source_of(name) for name in SECTIONS[section]}
        return JSONResponse({"ok": True, "changed": changed, "values": values, "sources": sources})
    return RedirectResponse(f"/admin?saved={section}#{section}", status_code=303)


@router.post("/admin/settings/{section}/reset/{name}")
async def reset(section: str, name: str, request: Request, runtime: RuntimeDep, admin: AdminDep) -> Response:
    """Drop the admin override of one setting (falls back to env / config.json / default)."""
    if name not in SECTIONS.get(section, ()):
        raise NotFoundError(f"{name!r} is not a setting of section {section!r}.")
    await reset_setting(runtime, name, actor=admin.actor)
    if auth.wants_json(request):
        saved = runtime.current.settings  # read again on purpose: the answer shows the value now in force
        return JSONResponse(
            {"ok": True, "name": name, "value": json_value(saved, name), "source": saved.source_of(name)}
        )
    return RedirectResponse(f"/admin?saved={section}#{section}", status_code=303)


@router.get("/admin/api/voices")
async def voices(runtime: RuntimeDep, services: ServicesDep) -> dict[str, Any]:
    """The ElevenLabs account's voices (502 with a message when ElevenLabs is down)."""
    voices = await list_voices(runtime.providers, services.settings)
    return {"voices": voices, "current": services.settings.elevenlabs_voice_id}


class SampleRequest(BaseModel):
    """A voice to try before saving it."""

    text: str = Field("Hello, thanks for calling. How can I help you today?", min_length=1, max_length=300)
    elevenlabs_voice_id: str | None = None
    tts_model: str | None = None
    tts_stability: float | None = None
    tts_similarity: float | None = None
    tts_style: float | None = None
    tts_speed: float | None = None


@router.post("/admin/api/voice-sample")
async def voice_sample(body: SampleRequest, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """Synthesise a sentence with the given voice settings (default: the saved ones) as WAV."""
    given = body.model_dump(exclude_none=True, exclude={"text"})
    try:
        candidate = services.settings.with_overrides(given) if given else services.settings
    except ConfigError as exc:
        return JSONResponse({"error": {"type": "ConfigError", "message": str(exc)}}, status_code=422)
    voice = {name: getattr(candidate, name) for name in SECTIONS["voice"]}
    if not VOICE_ID.match(voice["elevenlabs_voice_id"]):
        return JSONResponse(
            {"error": {"type": "ConfigError", "message": "A voice id has only letters, digits, _ and -."}},
            status_code=422,
        )
    audio = await synthesize_sample(runtime.providers, services.settings, body.text, voice)
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "no-store"})


@router.get("/admin/api/calls")
async def calls(services: ServicesDep, phone: str | None = None) -> dict[str, Any]:
    """Live calls and the call log (newest first)."""
    async with services.sessions() as session:
        return {"live": await live_calls(session), "log": await call_log(session, phone=phone)}


@router.get("/admin/api/calls/{call_sid}")
async def call(call_sid: str, services: ServicesDep) -> dict[str, Any]:
    """One call: transcript, tool calls, waterfall rows."""
    async with services.sessions() as session:
        detail = await call_detail(session, call_sid)
    if detail is None:
        raise NotFoundError(f"No call with sid {call_sid!r}.")
    return detail


@router.post("/admin/calls/{call_sid}/hangup")
async def hang_up(
    call_sid: str, request: Request, runtime: RuntimeDep, services: ServicesDep, admin: AdminDep
) -> Response:
    """End a live call: the process holding it (any role, via the control bus) hangs up."""
    async with transaction(services.sessions) as session:
        call = (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one_or_none()
        if call is None or call.ended_at is not None or call.direction == "chat":
            raise NotFoundError(f"No live call {call_sid!r}.")
        session.add(AuditEntry(actor=admin.actor, action="call.hangup", target=call_sid))
    await runtime.bus.send_call_command(call_sid, "hangup", reason="admin")
    if auth.wants_json(request):
        return JSONResponse({"ok": True})
    return RedirectResponse("/admin?saved=hangup#calls", status_code=303)
