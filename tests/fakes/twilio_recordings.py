"""Call recordings of the Twilio REST fake (mixed into `FakeTwilioREST`), as Twilio's 2010-04-01 API
has them (twilio.com/docs/voice/api/recording):

- ``POST /Accounts/{AC}/Calls/{CA}/Recordings.json`` starts recording a call in progress
  (``RecordingStatusCallback``, ``RecordingStatusCallbackMethod``, ``RecordingStatusCallbackEvent``
  — repeated or space-separated: in-progress, completed, absent; default completed —
  ``RecordingChannels`` mono|dual, ``RecordingTrack``, ``Trim``); 201 with the recording resource.
- The recording completes when its call ends (a REST update to ``Status=completed``, or
  `end_call` for a caller who hung up). Twilio then POSTs the recording status callback, signed with
  the auth token (``X-Twilio-Signature``): AccountSid, CallSid, RecordingSid, RecordingUrl,
  RecordingStatus, RecordingDuration, RecordingChannels, RecordingStartTime, RecordingSource,
  RecordingTrack (and ErrorCode for an absent recording).
- ``GET /Accounts/{AC}/Recordings/{RE}.json`` the resource; ``DELETE`` it (204; later 404);
  ``GET /Accounts/{AC}/Recordings/{RE}`` or ``.wav`` the audio (WAV, 8 kHz, one channel per party).
"""

from __future__ import annotations

import io
import secrets
import threading
import time
import wave
from email.utils import formatdate
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

RECORDING_EVENTS = ("in-progress", "completed", "absent")
MAX_MEDIA_SECONDS = 30  # the fake's audio is silence; long calls get this much of it


class RecordingsMixin:
    """State and routes of call recordings; needs the host fake's `_authenticate`, `_uri`, `calls`."""

    account_sid: str
    auth_token: str
    calls: dict[str, dict[str, Any]]

    def _init_recordings(self) -> None:
        self.recordings: dict[str, dict[str, Any]] = {}
        self.deleted_recordings: list[str] = []
        self.recording_callbacks: list[dict[str, Any]] = []  # {"url", "params", "status"} as sent
        self._callback_threads: list[threading.Thread] = []

    # -- test-side API ----------------------------------------------------------------------------
    def end_call(self, call_sid: str, status: str = "completed") -> None:
        """The caller hung up: the call ends and its recordings complete (callbacks are sent)."""
        call = self.calls.get(call_sid)
        if call is not None and call["status"] not in ("completed", "canceled", "failed"):
            call["status"] = status
            call["end_time"] = formatdate(usegmt=False)
        self._complete_recordings(call_sid)

    def wait_for_recording_callback(self, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first recording callback sent with RecordingStatus ``status`` (and answered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sent in list(self.recording_callbacks):
                if sent["params"]["RecordingStatus"] == status and sent["status"] is not None:
                    return sent
            time.sleep(0.02)
        raise AssertionError(f"no {status} recording callback within {timeout} s: {self.recording_callbacks}")

    def join_callbacks(self, timeout: float = 10.0) -> None:
        """Wait until every callback sent so far was answered."""
        for thread in list(self._callback_threads):
            thread.join(timeout)

    # -- routes -----------------------------------------------------------------------------------
    def recording_routes(self, api: str) -> list[Route]:
        return [
            Route(api + "/Calls/{sid}/Recordings.json", self._call_recordings, methods=["GET", "POST"]),
            Route(api + "/Recordings.json", self._list_recordings, methods=["GET"]),
            Route(api + "/Recordings/{rsid}.json", self._recording, methods=["GET", "DELETE"]),
            Route(api + "/Recordings/{rsid}.wav", self._recording_media, methods=["GET"]),
            Route(api + "/Recordings/{rsid}", self._recording_media, methods=["GET"]),
        ]

    async def _call_recordings(self, request: Request) -> Response:
        from tests.fakes.twilio_rest import TwilioError, _public

        self._authenticate(request)  # type: ignore[attr-defined]
        sid = request.path_params["sid"]
        call = self.calls.get(sid)
        if call is None:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        if request.method == "GET":
            mine = [_public(r) for r in self.recordings.values() if r["call_sid"] == sid]
            return JSONResponse({"recordings": mine, "page": 0, "page_size": 50, "next_page_uri": None})
        form = await request.form()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        events: list[str] = []
        for value in form.getlist("RecordingStatusCallbackEvent"):
            events.extend(str(value).split())
        events = events or ["completed"]
        bad = [e for e in events if e not in RECORDING_EVENTS]
        if bad:
            raise TwilioError(400, 21626, f"Invalid RecordingStatusCallbackEvent: {bad[0]}")
        channels = params.get("RecordingChannels", "mono")
        if channels not in ("mono", "dual"):
            raise TwilioError(400, 21626, f"Invalid RecordingChannels: {channels}")
        method = params.get("RecordingStatusCallbackMethod", "POST").upper()
        callback = params.get("RecordingStatusCallback")
        if callback and not callback.startswith(("http://", "https://")):
            raise TwilioError(400, 21609, f"Invalid RecordingStatusCallback: {callback}")
        if call["status"] != "in-progress":
            raise TwilioError(400, 21220, "Requested resource is not eligible for recording")
        rsid = "RE" + secrets.token_hex(16)
        now = formatdate(usegmt=False)
        recording = {
            "sid": rsid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "call_sid": sid,
            "conference_sid": None,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "duration": "-1",
            "price": None,
            "price_unit": "USD",
            "status": "in-progress",
            "channels": 2 if channels == "dual" else 1,
            "source": "StartCallRecordingAPI",
            "error_code": None,
            "track": params.get("RecordingTrack", "both"),
            "encryption_details": None,
            "uri": self._uri(f"Calls/{sid}/Recordings/{rsid}.json"),  # type: ignore[attr-defined]
            "_callback": callback,
            "_method": method,
            "_events": events,
            "_started": time.monotonic(),
        }
        self.recordings[rsid] = recording
        if "in-progress" in events:
            self._send_callback(recording)
        return JSONResponse(_public(recording), status_code=201)

    async def _list_recordings(self, request: Request) -> Response:
        from tests.fakes.twilio_rest import _public

        self._authenticate(request)  # type: ignore[attr-defined]
        return JSONResponse(
            {"recordings": [_public(r) for r in self.recordings.values()], "page": 0, "next_page_uri": None}
        )

    def _known_recording(self, request: Request) -> dict[str, Any]:
        from tests.fakes.twilio_rest import TwilioError

        self._authenticate(request)  # type: ignore[attr-defined]
        recording = self.recordings.get(request.path_params["rsid"])
        if recording is None:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        return recording

    async def _recording(self, request: Request) -> Response:
        from tests.fakes.twilio_rest import _public

        recording = self._known_recording(request)
        if request.method == "DELETE":
            del self.recordings[recording["sid"]]
            self.deleted_recordings.append(recording["sid"])
            return Response(status_code=204)
        return JSONResponse(_public(recording))

    async def _recording_media(self, request: Request) -> Response:
        from tests.fakes.twilio_rest import TwilioError

        recording = self._known_recording(request)
        if recording["status"] != "completed":
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        audio = silent_wav(int(recording["duration"]), recording["channels"])
        return Response(audio, media_type="audio/x-wav", headers={"Accept-Ranges": "bytes"})

    # -- completion and callbacks -----------------------------------------------------------------
    def _complete_recordings(self, call_sid: str) -> None:
        for recording in list(self.recordings.values()):
            if recording["call_sid"] != call_sid or recording["status"] != "in-progress":
                continue
            seconds = max(0, round(time.monotonic() - recording["_started"]))
            recording["duration"] = str(seconds)
            recording["status"] = "completed"
            recording["date_updated"] = formatdate(usegmt=False)
            if "completed" in recording["_events"]:
                self._send_callback(recording)

    def _send_callback(self, recording: dict[str, Any]) -> None:
        """POST (or GET) the status callback, signed as Twilio signs it, from a thread of its own."""
        url = recording["_callback"]
        if not url:
            return
        base = self.url  # type: ignore[attr-defined]
        params = {
            "AccountSid": self.account_sid,
            "CallSid": recording["call_sid"],
            "RecordingSid": recording["sid"],
            "RecordingUrl": f"{base}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording['sid']}",
            "RecordingStatus": recording["status"],
            "RecordingChannels": str(recording["channels"]),
            "RecordingStartTime": recording["start_time"],
            "RecordingSource": recording["source"],
            "RecordingTrack": recording["track"],
        }
        if recording["status"] != "in-progress":
            params["RecordingDuration"] = recording["duration"]
        sent: dict[str, Any] = {"url": url, "params": params, "status": None}
        self.recording_callbacks.append(sent)
        signature = RequestValidator(self.auth_token).compute_signature(
            url if recording["_method"] == "POST" else f"{url}?{httpx.QueryParams(params)}",
            params if recording["_method"] == "POST" else {},
        )

        def deliver() -> None:
            headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
            try:
                with httpx.Client(timeout=15) as client:
                    if recording["_method"] == "POST":
                        answer = client.post(url, data=params, headers=headers)
                    else:
                        answer = client.get(url, params=params, headers=headers)
                sent["status"] = answer.status_code
            except httpx.HTTPError as exc:
                sent["status"] = f"error: {type(exc).__name__}"

        thread = threading.Thread(target=deliver, name="twilio-recording-callback", daemon=True)
        self._callback_threads.append(thread)
        thread.start()


def silent_wav(seconds: int, channels: int) -> bytes:
    """A WAV file of silence, 8 kHz 16-bit, as long as the recording (capped)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * channels * 8000 * max(1, min(seconds, MAX_MEDIA_SECONDS)))
    return buffer.getvalue()
