"""`FakeTwilioREST`: the 2010-04-01 REST API for calls, messages, phone numbers and the account.

Point the official SDK at it with ``client.api.base_url = fake.url`` (or `fake.client()`), and
Pipecat's `TwilioFrameSerializer(base_url=fake.url)` for its hang-up. Basic auth is checked
(account SID + auth token, or an API key pair added with `add_api_key`).

Inbound calls are created by the phone network, not the REST API: register them with
`add_call(...)` so updates to them succeed (unknown call SIDs get Twilio's 404, code 20404).
`on_call_update(call_sid, callback)` lets a `MediaStreamCaller` end its stream when the agent
hangs up or redirects the call, as Twilio does. Call recordings (started over REST, completed when
the call ends, reported by signed status callbacks) are in `tests.fakes.twilio_recordings`.

Outbound calls (``POST /Calls.json``) then progress as on Twilio: status callbacks, the answer
TwiML fetched from ``Url``, answering-machine detection (``fake.network``: `OutboundNetwork`, with
a `Callee` per dialled number).
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import ASGIApp, FakeServer
from tests.fakes.twilio_outbound import OutboundNetwork
from tests.fakes.twilio_recordings import RecordingsMixin

API = "/2010-04-01/Accounts/{account}"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CLIENT_OR_SIP = re.compile(r"^(client:|sip:)")
FINAL_STATUSES = ("completed", "canceled", "failed", "busy", "no-answer")


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: two-letter prefix + 32 hex digits."""
    return prefix + secrets.token_hex(16)


class TwilioError(Exception):
    """A Twilio REST error: HTTP status, Twilio error code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }


class FakeTwilioREST(RecordingsMixin, FakeServer):
    """Local Twilio REST API. Records `.calls` (by SID), `.call_updates`, `.messages`, `.numbers`,
    `.recordings` (see `tests.fakes.twilio_recordings`)."""

    name = "twilio"

    def __init__(self, *, account_sid: str | None = None, auth_token: str = "fake-auth-token") -> None:
        super().__init__()
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token
        self.api_keys: dict[str, str] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.call_updates: list[dict[str, Any]] = []  # {"sid": ..., "params": {...}}
        self.messages: list[dict[str, Any]] = []
        self.numbers: dict[str, dict[str, Any]] = {}
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._state_lock = threading.Lock()
        self.network = OutboundNetwork(self)
        self._init_recordings()

    # -- test-side API ----------------------------------------------------------------------------
    def client(self, **kwargs: Any) -> Any:
        """An official `twilio.rest.Client` pointed at this fake."""
        from twilio.rest import Client

        client = Client(self.account_sid, self.auth_token, **kwargs)
        client.api.base_url = self.url
        return client

    def add_api_key(self, key_sid: str | None = None, secret: str | None = None) -> tuple[str, str]:
        """Accept an API key pair (SK..., secret) for basic auth; returns it."""
        key_sid, secret = key_sid or new_sid("SK"), secret or secrets.token_hex(16)
        self.api_keys[key_sid] = secret
        return key_sid, secret

    def add_call(
        self,
        call_sid: str | None = None,
        *,
        from_: str = "+15005550006",
        to: str = "+15005550001",
        status: str = "in-progress",
        direction: str = "inbound",
    ) -> dict[str, Any]:
        """Register a call the phone network created (an inbound call in progress by default); a
        call the fake knows already (an outbound one) is kept as it is."""
        if call_sid is not None and call_sid in self.calls:
            return self.calls[call_sid]
        call = self._call_resource(call_sid or new_sid("CA"), from_, to, status, direction)
        with self._state_lock:
            self.calls[call["sid"]] = call
        return call

    def add_number(self, phone_number: str, **fields: Any) -> dict[str, Any]:
        """Register an incoming phone number on the account."""
        number = self._number_resource(phone_number, fields)
        self.numbers[number["sid"]] = number
        return number

    def on_call_update(self, call_sid: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback(call)` (from the server thread) after every update to `call_sid`."""
        self._listeners.setdefault(call_sid, []).append(callback)

    def reset_state(self) -> None:
        self.calls.clear()
        self.call_updates.clear()
        self.messages.clear()
        self.numbers.clear()
        self._listeners.clear()
        self.network.reset()
        self._init_recordings()

    def error_body(self, status: int) -> dict[str, Any]:
        return TwilioError(status, 20500, "An internal server error has occurred").body

    # -- app --------------------------------------------------------------------------------------
    def build_app(self) -> ASGIApp:
        routes = [
            Route(API + ".json", self._account, methods=["GET"]),
            Route(API + "/Calls.json", self._calls, methods=["GET", "POST"]),
            Route(API + "/Calls/{sid}.json", self._call, methods=["GET", "POST", "DELETE"]),
            Route(API + "/Messages.json", self._messages, methods=["GET", "POST"]),
            Route(API + "/IncomingPhoneNumbers.json", self._numbers, methods=["GET", "POST"]),
            Route(API + "/IncomingPhoneNumbers/{sid}.json", self._number, methods=["GET", "POST", "DELETE"]),
            *self.recording_routes(API),
        ]
        handlers = {TwilioError: _error_response, 404: _not_found, 405: _not_found}
        return Starlette(routes=routes, exception_handlers=handlers)

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        user = password = ""
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = ""
        ok = (user == self.account_sid and password == self.auth_token) or (
            user in self.api_keys and self.api_keys[user] == password
        )
        if not ok:
            raise TwilioError(401, 20003, "Authenticate")
        if request.path_params["account"] != self.account_sid:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")

    def _uri(self, tail: str) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/{tail}"

    async def _form(self, request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v for k, v in form.multi_items() if isinstance(v, str)}

    # -- account ----------------------------------------------------------------------------------
    async def _account(self, request: Request) -> Response:
        self._authenticate(request)
        now = formatdate(usegmt=False)
        return JSONResponse(
            {
                "sid": self.account_sid,
                "owner_account_sid": self.account_sid,
                "friendly_name": "Fake account",
                "status": "active",
                "type": "Full",
                "auth_token": self.auth_token,
                "date_created": now,
                "date_updated": now,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
                "subresource_uris": {
                    "calls": self._uri("Calls.json"),
                    "messages": self._uri("Messages.json"),
                    "incoming_phone_numbers": self._uri("IncomingPhoneNumbers.json"),
                },
            }
        )

    # -- calls ------------------------------------------------------------------------------------
    def _call_resource(self, sid: str, from_: str, to: str, status: str, direction: str) -> dict[str, Any]:
        now = formatdate(usegmt=False)
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "annotation": None,
            "answered_by": None,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": direction,
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": from_,
            "from_formatted": from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "start_time": now,
            "status": status,
            "to": to,
            "to_formatted": to,
            "trunk_sid": None,
            "uri": self._uri(f"Calls/{sid}.json"),
            "subresource_uris": {
                "recordings": self._uri(f"Calls/{sid}/Recordings.json"),
                "streams": self._uri(f"Calls/{sid}/Streams.json"),
            },
        }

    async def _calls(self, request: Request) -> Response:
        self._authenticate(request)
        if request.method == "GET":
            calls = list(self.calls.values())
            status = request.query_params.get("Status")
            calls = [c for c in calls if status is None or c["status"] == status]
            return JSONResponse(self._page("calls", calls, "Calls.json"))
        params = await self._form(request)
        to, from_ = params.get("To"), params.get("From")
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise TwilioError(400, 21213, "No 'From' number is specified")
        if not (E164.match(to) or CLIENT_OR_SIP.match(to)):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not E164.match(from_):
            raise TwilioError(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        if not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
            raise TwilioError(400, 21205, "Url parameter is required.")
        call = self._call_resource(new_sid("CA"), from_, to, "queued", "outbound-api")
        call["_params"] = params
        with self._state_lock:
            self.calls[call["sid"]] = call
        events = [v for k, v in (await request.form()).multi_items() if k == "StatusCallbackEvent"]
        call["_status_callback_events"] = events
        self.network.start(call, params, [str(e) for e in events])
        return JSONResponse(_public(call), status_code=201)

    async def _call(self, request: Request) -> Response:
        self._authenticate(request)
        sid = request.path_params["sid"]
        call = self.calls.get(sid)
        if call is None:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        if request.method == "GET":
            return JSONResponse(_public(call))
        if request.method == "DELETE":
            self.calls.pop(sid, None)
            return Response(status_code=204)
        params = await self._form(request)
        self.call_updates.append({"sid": sid, "params": params})
        status = params.get("Status")
        redirect = params.get("Twiml") or params.get("Url")
        if status is not None and status not in ("completed", "canceled"):
            raise TwilioError(
                400, 21218, f"Invalid value '{status}' for Status: must be completed or canceled"
            )
        if redirect and call["status"] in FINAL_STATUSES:
            raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
        if params.get("Twiml") and "<Response" not in params["Twiml"]:
            raise TwilioError(400, 12100, "Document parse failure: Twiml must contain a <Response> element")
        with self._state_lock:
            if status and call["status"] not in FINAL_STATUSES:
                call["status"] = status
                call["end_time"] = formatdate(usegmt=False)
            if redirect:
                call["_redirected_to"] = redirect
            call["date_updated"] = formatdate(usegmt=False)
        self.network.updated(sid, params)
        if status:  # the call ended: its recordings complete and Twilio reports them
            self._complete_recordings(sid)
        for callback in self._listeners.get(sid, []):
            callback(_public(call) | {"_update": params})
        return JSONResponse(_public(call))

    # -- messages ---------------------------------------------------------------------------------
    async def _messages(self, request: Request) -> Response:
        self._authenticate(request)
        if request.method == "GET":
            return JSONResponse(self._page("messages", self.messages, "Messages.json"))
        params = await self._form(request)
        to = params.get("To")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not params.get("From") and not params.get("MessagingServiceSid"):
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not params.get("Body") and not params.get("MediaUrl"):
            raise TwilioError(400, 21602, "Message body is required.")
        if len(params.get("Body", "")) > 1600:
            raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        now, sid = formatdate(usegmt=False), new_sid("SM")
        message = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": params.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(max(1, -(-len(params.get("Body", "")) // 153))),
            "price": None,
            "price_unit": "USD",
            "status": "queued",
            "to": to,
            "uri": self._uri(f"Messages/{sid}.json"),
            "subresource_uris": {"media": self._uri(f"Messages/{sid}/Media.json")},
        }
        self.messages.append(message)
        return JSONResponse(message, status_code=201)

    # -- phone numbers ----------------------------------------------------------------------------
    def _number_resource(self, phone_number: str, fields: dict[str, Any]) -> dict[str, Any]:
        now, sid = formatdate(usegmt=False), new_sid("PN")
        number = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "friendly_name": phone_number,
            "phone_number": phone_number,
            "date_created": now,
            "date_updated": now,
            "voice_url": "",
            "voice_method": "POST",
            "voice_fallback_url": "",
            "voice_fallback_method": "POST",
            "status_callback": "",
            "status_callback_method": "POST",
            "voice_application_sid": None,
            "sms_url": "",
            "sms_method": "POST",
            "status": "in-use",
            "origin": "twilio",
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "uri": self._uri(f"IncomingPhoneNumbers/{sid}.json"),
        }
        number.update(fields)
        return number

    def _apply_number_params(self, number: dict[str, Any], params: dict[str, str]) -> None:
        for key, value in params.items():
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
            if snake in number and snake not in ("sid", "account_sid", "uri", "phone_number"):
                number[snake] = value
        number["date_updated"] = formatdate(usegmt=False)

    async def _numbers(self, request: Request) -> Response:
        self._authenticate(request)
        if request.method == "GET":
            wanted = request.query_params.get("PhoneNumber")
            numbers = [n for n in self.numbers.values() if wanted is None or n["phone_number"] == wanted]
            return JSONResponse(self._page("incoming_phone_numbers", numbers, "IncomingPhoneNumbers.json"))
        params = await self._form(request)
        phone = params.get("PhoneNumber") or params.get("AreaCode")
        if not phone:
            raise TwilioError(400, 21421, "PhoneNumber or AreaCode is required.")
        if not E164.match(phone):
            raise TwilioError(400, 21421, f"PhoneNumber is invalid: {phone}")
        number = self._number_resource(phone, {})
        self._apply_number_params(number, params)
        self.numbers[number["sid"]] = number
        return JSONResponse(number, status_code=201)

    async def _number(self, request: Request) -> Response:
        self._authenticate(request)
        number = self.numbers.get(request.path_params["sid"])
        if number is None:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        if request.method == "DELETE":
            del self.numbers[number["sid"]]
            return Response(status_code=204)
        if request.method == "POST":
            params = await self._form(request)
            url = params.get("VoiceUrl")
            if url and not url.startswith(("http://", "https://")):
                raise TwilioError(400, 21502, f"VoiceUrl is not valid: {url}")
            self._apply_number_params(number, params)
        return JSONResponse(number)

    def _page(self, key: str, items: list[dict[str, Any]], tail: str) -> dict[str, Any]:
        uri = self._uri(tail)
        return {
            key: [_public(i) for i in items],
            "end": max(0, len(items) - 1),
            "first_page_uri": f"{uri}?Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": 50,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without the fake's private bookkeeping (keys starting with `_`)."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


async def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TwilioError)
    return JSONResponse(exc.body, status_code=exc.status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        TwilioError(404, 20404, f"The requested resource {request.url.path} was not found").body,
        status_code=404,
    )
