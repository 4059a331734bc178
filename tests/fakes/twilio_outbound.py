"""What Twilio does after ``POST /Calls.json``: the phone network's side of an outbound call.

`OutboundNetwork` (owned by `FakeTwilioREST`, running on its server loop) walks a created call
through Twilio's progress, as its docs describe it: status callbacks to ``StatusCallback`` for the
events asked for in ``StatusCallbackEvent`` (default: ``completed`` only) with ``CallStatus``
initiated → ringing → in-progress → completed (or busy / no-answer / failed), the answer TwiML
fetched from ``Url`` (``Method``, POST by default) when the callee picks up, and with
``MachineDetection`` + ``AsyncAmd=true`` the verdict (``AnsweredBy``, ``MachineDetectionDuration``)
posted to ``AsyncAmdStatusCallback``; without ``AsyncAmd`` the verdict rides on the ``Url`` request.
Every request is form-encoded and signed with ``X-Twilio-Signature`` (the account's auth token).

How the dialled party behaves is a `Callee` (per number, or the default): its outcome, its AMD
verdict and when it comes (``answered_by=None``: the test sends it with ``send_amd``). A
``<Connect><Stream>`` in the answer TwiML is recorded in ``streams`` (url + parameters), where a
simulated callee (`MediaStreamCaller`) connects; the call completes when the agent hangs up (REST
update) or the stream ends (``stream_ended``), and ``completed`` is posted with ``CallDuration``.
Only loopback URLs are ever requested: anything else is recorded as unreachable.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    from tests.fakes.twilio_rest import FakeTwilioREST

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
EVENT_OF_STATUS = {
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
    "completed": "completed",
    "busy": "completed",
    "no-answer": "completed",
    "failed": "completed",
    "canceled": "completed",
}


@dataclass
class Callee:
    """How a dialled number behaves."""

    outcome: str = "answer"  # answer | busy | no-answer | failed
    answered_by: str | None = "human"  # the AMD verdict; None: the test sends it (``send_amd``)
    amd_delay: float = 0.3  # seconds from the answer TwiML to the verdict
    ring_seconds: float = 0.05


@dataclass
class _Progress:
    params: dict[str, str]
    events: list[str]
    ended: asyncio.Event
    answered_at: float | None = None
    sequence: int = 0


class OutboundNetwork:
    """Progress of the fake's outbound calls (see the module docstring)."""

    def __init__(self, fake: FakeTwilioREST) -> None:
        self.fake = fake
        self.callees: dict[str, Callee] = {}
        self.default_callee = Callee()
        self.streams: dict[str, dict[str, Any]] = {}  # call sid → {"url", "parameters"}
        self.webhooks: list[dict[str, Any]] = []  # every request made: url, params, status, body
        self._progress: dict[str, _Progress] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def reset(self) -> None:
        self.callees.clear()
        self.streams.clear()
        self.webhooks.clear()
        self._progress.clear()

    # -- test side (any thread) ---------------------------------------------------------------------
    def stream_ended(self, call_sid: str) -> None:
        """The call's Media Stream closed: ``<Connect>`` was its last verb, so the call completes."""
        self._from_any_thread(call_sid)

    async def send_amd(self, call_sid: str, answered_by: str) -> int:
        """Post the verdict now (for a `Callee` with ``answered_by=None``); returns the HTTP status."""
        assert self._loop is not None, "no outbound call was placed"
        future = asyncio.run_coroutine_threadsafe(self._post_amd(call_sid, answered_by), self._loop)
        return await asyncio.wrap_future(future)

    async def stream_for(self, call_sid: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The ``<Stream>`` the answer TwiML connected (waits for it)."""
        deadline = time.monotonic() + timeout
        while call_sid not in self.streams:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no media stream for {call_sid} (webhooks: {self.webhooks})")
            await asyncio.sleep(0.02)
        return self.streams[call_sid]

    # -- fake side (the server loop) ----------------------------------------------------------------
    def start(self, call: dict[str, Any], params: dict[str, str], events: list[str]) -> None:
        """A call was created: walk it through its progress in the background."""
        self._loop = asyncio.get_running_loop()
        progress = _Progress(params=params, events=events or ["completed"], ended=asyncio.Event())
        self._progress[call["sid"]] = progress
        task = asyncio.create_task(self._run(call, progress))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def updated(self, call_sid: str, params: dict[str, str]) -> None:
        """A REST update on the server loop: a call set to completed/canceled has ended; new TwiML
        replaces the call's (a stream it had ends) and runs: ``<Say>`` is recorded in ``_said``, and
        TwiML without a ``<Connect>`` ends the call when it has run."""
        progress = self._progress.get(call_sid)
        call = self.fake.calls.get(call_sid)
        if progress is None or call is None:
            return
        if params.get("Twiml") and call["status"] == "in-progress":
            self.streams.pop(call_sid, None)
            self._follow(call, params["Twiml"])
            if call_sid not in self.streams:
                self._end_call(call_sid)
        if call["status"] in ("completed", "canceled"):
            progress.ended.set()

    def _from_any_thread(self, call_sid: str) -> None:
        if self._loop is None or call_sid not in self._progress:
            return
        self._loop.call_soon_threadsafe(self._end_call, call_sid)

    def _end_call(self, call_sid: str) -> None:
        call = self.fake.calls.get(call_sid)
        if call is not None and call["status"] not in (
            "completed",
            "canceled",
            "failed",
            "busy",
            "no-answer",
        ):
            call["status"], call["end_time"] = "completed", formatdate(usegmt=False)
        self._progress[call_sid].ended.set()

    async def _run(self, call: dict[str, Any], progress: _Progress) -> None:
        sid, params = call["sid"], progress.params
        callee = self.callees.get(call["to"], self.default_callee)
        await self._status(call, progress, "initiated")
        self._set(call, "ringing")
        await self._status(call, progress, "ringing")
        await asyncio.sleep(callee.ring_seconds)
        if callee.outcome != "answer":
            self._set(call, callee.outcome)
            await self._status(call, progress, callee.outcome)
            return
        self._set(call, "in-progress")
        progress.answered_at = time.monotonic()
        await self._status(call, progress, "in-progress")
        detection = params.get("MachineDetection")
        is_async = params.get("AsyncAmd", "false").lower() == "true"
        answer = self._base(call, "in-progress")
        if detection and not is_async and callee.answered_by:  # synchronous AMD: the verdict comes first
            await asyncio.sleep(callee.amd_delay)
            answer |= {
                "AnsweredBy": callee.answered_by,
                "MachineDetectionDuration": str(int(callee.amd_delay * 1000)),
            }
        twiml = await self._fetch_twiml(params, answer)
        if twiml is not None:
            self._follow(call, twiml)
        if detection and is_async and callee.answered_by:
            await asyncio.sleep(callee.amd_delay)
            await self._post_amd(sid, callee.answered_by)
        if sid not in self.streams:  # no stream: the TwiML ran to its end
            self._end_call(sid)
        await progress.ended.wait()
        await self._status(call, progress, "completed")

    def _set(self, call: dict[str, Any], status: str) -> None:
        call["status"] = status
        call["date_updated"] = formatdate(usegmt=False)
        if status in ("busy", "no-answer", "failed", "completed"):
            call["end_time"] = formatdate(usegmt=False)

    def _base(self, call: dict[str, Any], status: str) -> dict[str, str]:
        return {
            "AccountSid": self.fake.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call["sid"],
            "CallStatus": status,
            "Called": call["to"],
            "Caller": call["from"],
            "Direction": "outbound-api",
            "From": call["from"],
            "To": call["to"],
        }

    async def _status(self, call: dict[str, Any], progress: _Progress, status: str) -> None:
        url = progress.params.get("StatusCallback")
        if not url or EVENT_OF_STATUS[status] not in progress.events:
            return
        progress.sequence += 1
        form = self._base(call, status) | {
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(progress.sequence - 1),
            "Timestamp": formatdate(usegmt=True),
        }
        if EVENT_OF_STATUS[status] == "completed":
            duration = 0 if progress.answered_at is None else round(time.monotonic() - progress.answered_at)
            form |= {"CallDuration": str(duration), "Duration": str(max(1, -(-duration // 60)))}
            call["duration"] = str(duration)
        await self._post(url, form)

    async def _post_amd(self, call_sid: str, answered_by: str) -> int:
        call = self.fake.calls[call_sid]
        progress = self._progress[call_sid]
        call["answered_by"] = answered_by
        url = progress.params.get("AsyncAmdStatusCallback")
        if not url:
            return 0
        took = 0 if progress.answered_at is None else int(1000 * (time.monotonic() - progress.answered_at))
        form = {
            "AccountSid": self.fake.account_sid,
            "CallSid": call_sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": str(took),
        }
        response = await self._post(url, form)
        return response.status_code if response is not None else 0

    async def _fetch_twiml(self, params: dict[str, str], form: dict[str, str]) -> str | None:
        if params.get("Twiml"):
            return params["Twiml"]
        response = await self._post(params["Url"], form, method=params.get("Method", "POST"))
        return response.text if response is not None and response.status_code == 200 else None

    def _follow(self, call: dict[str, Any], twiml: str) -> None:
        """Run what this fake understands of the answer TwiML: record a Stream, Say and Hangup."""
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError:
            call["_twiml_error"] = twiml
            return
        call["_answer_twiml"] = twiml
        stream = root.find("./Connect/Stream")
        if stream is not None:
            parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
            self.streams[call["sid"]] = {"url": stream.get("url", ""), "parameters": parameters}
            return
        call.setdefault("_said", []).extend(say.text or "" for say in root.iter("Say"))

    async def _post(self, url: str, form: dict[str, str], *, method: str = "POST") -> httpx.Response | None:
        record: dict[str, Any] = {"url": url, "params": dict(form), "method": method}
        self.webhooks.append(record)
        if urlsplit(url).hostname not in LOOPBACK_HOSTS:  # this fake never leaves the machine
            record["error"] = "unreachable (only loopback URLs are called)"
            return None
        signature = RequestValidator(self.fake.auth_token).compute_signature(url, form)
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                response = await client.request(
                    method, url, data=form, headers={"X-Twilio-Signature": signature}
                )
        except httpx.HTTPError as exc:
            record["error"] = repr(exc)
            return None
        record["status"], record["body"] = response.status_code, response.text
        return response
