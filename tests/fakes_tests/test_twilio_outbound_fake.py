"""The Twilio fake's outbound progress, checked against a plain receiver (not the agent): every
callback signed as Twilio signs it, in Twilio's order, with Twilio's parameters."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from tests.fakes.twilio_outbound import Callee
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.ops.servers import AppServer

ANSWER = (
    '<Response><Connect><Stream url="wss://agent.example/media-stream">'
    '<Parameter name="token" value="t1"/></Stream></Connect></Response>'
)


async def until(predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110 - state of another thread
        await asyncio.sleep(0.02)


def receiver(seen: list[dict[str, Any]]) -> Starlette:
    async def hook(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        seen.append(
            {
                "path": request.url.path,
                "url": str(request.url),
                "form": form,
                "sig": request.headers.get("x-twilio-signature"),
            }
        )
        if request.url.path == "/answer":
            return Response(ANSWER, media_type="application/xml")
        return Response(status_code=204)

    return Starlette(routes=[Route(p, hook, methods=["POST"]) for p in ("/answer", "/status", "/amd")])


async def test_outbound_call_progress_is_signed_and_ordered(fake_twilio: FakeTwilioREST) -> None:
    seen: list[dict[str, Any]] = []
    fake_twilio.network.callees["+15551230077"] = Callee(answered_by="machine_end_beep", amd_delay=0.1)
    with AppServer(receiver(seen)) as hooks:
        call = await asyncio.to_thread(
            fake_twilio.client().calls.create,
            to="+15551230077",
            from_="+15005550006",
            url=hooks.url + "/answer?ref=r1",
            status_callback=hooks.url + "/status?ref=r1",
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            machine_detection="DetectMessageEnd",
            async_amd="true",
            async_amd_status_callback=hooks.url + "/amd?ref=r1",
        )
        stream = await fake_twilio.network.stream_for(call.sid)
        await until(lambda: any(s["path"] == "/amd" for s in seen))
        fake_twilio.network.stream_ended(call.sid)  # the callee's stream closes: the call completes
        await until(lambda: len([s for s in seen if s["path"] == "/status"]) == 4)

    validator = RequestValidator(fake_twilio.auth_token)
    assert all(validator.validate(s["url"], s["form"], s["sig"]) for s in seen)
    assert [(s["path"], s["form"].get("CallStatus")) for s in seen] == [
        ("/status", "initiated"),
        ("/status", "ringing"),
        ("/status", "in-progress"),
        ("/answer", "in-progress"),
        ("/amd", None),
        ("/status", "completed"),
    ]
    assert (
        seen[4]["form"]["AnsweredBy"] == "machine_end_beep" and "MachineDetectionDuration" in seen[4]["form"]
    )
    assert seen[3]["form"]["Direction"] == "outbound-api" and seen[3]["form"]["To"] == "+15551230077"
    assert "CallDuration" in seen[5]["form"] and fake_twilio.calls[call.sid]["status"] == "completed"
    assert stream == {"url": "wss://agent.example/media-stream", "parameters": {"token": "t1"}}


async def test_outbound_call_never_leaves_the_machine(fake_twilio: FakeTwilioREST) -> None:
    call = await asyncio.to_thread(
        fake_twilio.client().calls.create,
        to="+15551230077",
        from_="+15005550006",
        url="https://agent.example/voice",
    )
    await until(lambda: fake_twilio.calls[call.sid]["status"] == "completed")
    [fetch] = fake_twilio.network.webhooks
    assert fetch["url"] == "https://agent.example/voice" and "unreachable" in fetch["error"]
    assert fake_twilio.calls[call.sid]["status"] == "completed"  # no TwiML: the call just ends
