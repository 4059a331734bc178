"""CLI commands of operations: `phone-agent doctor` and `phone-agent logs CALL_SID`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report (stable schema).")] = False,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Point the Twilio number's voice webhook at PUBLIC_URL/phone/incoming."),
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these checks or groups (repeatable).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per check (default: doctor_timeout setting).")
    ] = None,
    role_host: Annotated[
        list[str] | None,
        typer.Option(
            "--role-host",
            help="ROLE=HOST where a role's port is probed (default 127.0.0.1), e.g. "
            "voice-bridge=voice-bridge inside docker compose. Repeatable.",
        ),
    ] = None,
) -> None:
    """Check everything the agent needs; one line per check with how to fix it. Exit 1 if any fails."""
    from phone_agent.commands.common import console, settings_or_exit, settings_with_overrides
    from phone_agent.commands.common import fail as fail_exit
    from phone_agent.ops.doctor import render_text, run_doctor

    settings = asyncio.run(settings_with_overrides(settings_or_exit()))
    fixed: str | None = None
    if fix:
        fixed = asyncio.run(_fix_webhook(settings, timeout))
        if not as_json:
            console.print(f"fix: {fixed}", highlight=False)
    hosts = dict(item.split("=", 1) for item in role_host or [] if "=" in item)
    if len(hosts) != len(role_host or []) or not set(hosts) <= {"orchestrator", "voice-bridge", "memory"}:
        raise fail_exit("--role-host takes ROLE=HOST, e.g. --role-host voice-bridge=10.0.0.5")
    report = asyncio.run(run_doctor(settings, check_timeout=timeout, only=only or None, role_hosts=hosts))
    if as_json:
        body: dict[str, Any] = report.model_dump()
        if fix:
            body["fixed"] = fixed
        print(json.dumps(body, indent=2))
    else:
        console.print(render_text(report), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(report.exit_code)


async def _fix_webhook(settings: Any, check_timeout: float | None) -> str:
    import httpx

    from phone_agent.ops.doctor.model import DoctorContext
    from phone_agent.ops.doctor.providers import set_voice_webhook

    deadline = check_timeout or settings.doctor_timeout
    async with httpx.AsyncClient(timeout=deadline) as http:
        try:
            return await set_voice_webhook(DoctorContext(settings=settings, http=http, timeout=deadline))
        except httpx.HTTPError as exc:
            return f"could not set the webhook: {type(exc).__name__}"


def logs(
    call_sid: Annotated[str, typer.Argument(help="The call's SID (CA...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable story.")] = False,
) -> None:
    """Print one call's story from the database (turns, timing, tools, outcome) and its log lines."""
    from phone_agent.commands.common import console, fail, settings_or_exit
    from phone_agent.ops.story import call_story, log_lines, render_story
    from phone_agent.storage.db import create_engine, session_factory

    settings = settings_or_exit()

    async def load() -> dict[str, Any] | None:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                return await call_story(session, call_sid)
        finally:
            await engine.dispose()

    try:
        story = asyncio.run(load())
    except Exception as exc:  # unreachable or unmigrated database: say so, no traceback
        raise fail(f"cannot read calls from the database: {type(exc).__name__}: {exc}", 1) from None
    if story is None:
        raise fail(f"no call {call_sid!r} in the database ({settings.database_url.split('@')[-1]}).", 1)
    lines = log_lines(settings.log_file, call_sid)
    if as_json:
        print(json.dumps(story | {"log_lines": lines}, indent=2))
        return
    console.print(render_story(story, lines), highlight=False, markup=False, soft_wrap=True)
