"""``phone-agent dial NUMBER --purpose "…"``: ask a running agent to place an outbound call.

Goes through the agent's own API (``POST /v1/calls`` with ``api_key``), so the call is placed,
checked (do-not-call list, calling hours) and recorded exactly as from any other client. Exit
status: 0 placed (with ``--wait``: answered and completed), 1 the call failed or the agent could
not be reached, 2 bad input or configuration, 3 refused (do-not-call list, outside calling hours).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import httpx
import typer

from phone_agent.commands.common import console, fail, settings_or_exit

REFUSED_EXIT = 3
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
POLL_SECS = 1.0


def dial(
    number: Annotated[str, typer.Argument(help="Number to call (E.164, or national with default_country).")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why the agent calls (said and kept in mind).")],
    url: Annotated[
        str | None,
        typer.Option(
            help="The running agent (default: PUBLIC_URL, else http://127.0.0.1:<orchestrator_port>)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="The agent's api_key (default: PHONE_AGENT_API_KEY).", show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the call until it ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait follows the call at most.")] = 900.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the call as JSON.")] = False,
) -> None:
    """Place an outbound call through a running agent (answering-machine detection on)."""
    settings = settings_or_exit()
    base = (url or settings.public_url or f"http://127.0.0.1:{settings.orchestrator_port}").rstrip("/")
    key = api_key or settings.secret("api_key")
    if not key:
        raise fail("dial needs the agent's API key: set PHONE_AGENT_API_KEY or pass --api-key.")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            response = client.post("/v1/calls", json={"to": number, "purpose": purpose})
            call = _placed(response)
            if not as_json:
                console.print(f"calling {call['to']} ({call['call_sid']}): {call['status']}", highlight=False)
            if wait:
                call = _follow(client, call, timeout=timeout, quiet=as_json)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the agent at {base} ({type(exc).__name__}); is it running?", 1) from None
    if as_json:
        console.print_json(json.dumps(call))
    if wait and call["status"] != "completed":
        raise typer.Exit(1)


def _placed(response: httpx.Response) -> dict[str, Any]:
    """The call the agent placed, or the exit its refusal calls for."""
    if response.status_code == 201:
        placed: dict[str, Any] = response.json()
        return placed
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), str(error.get("code") or "")
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {response.status_code}: {response.text[:200]}", ""
    if code in ("do_not_call", "outside_calling_hours"):
        raise fail(f"refused: {message}", REFUSED_EXIT)
    if response.status_code in (400, 401, 403, 404, 422):
        raise fail(message, 2)
    raise fail(message, 1)


def _follow(client: httpx.Client, call: dict[str, Any], *, timeout: float, quiet: bool) -> dict[str, Any]:
    """Poll the call, printing each status and the answering-machine verdict, until it ends."""
    deadline = time.monotonic() + timeout
    shown = {call["status"]}
    verdict_shown = False
    while call["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(POLL_SECS)
        response = client.get(f"/v1/calls/{call['call_sid']}")
        if response.status_code != 200:
            continue
        call = response.json()
        if not quiet and call["status"] not in shown:
            shown.add(call["status"])
            console.print(f"  {call['status']}", highlight=False)
        if not quiet and call.get("answered_by") and not verdict_shown:
            verdict_shown = True
            console.print(f"  answered by {call['answered_by']}", highlight=False)
    return call
