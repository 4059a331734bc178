"""Call control through Twilio's REST API: update a live call's TwiML, hang up, transfer, SMS, dial out,
record a call and delete a recording.

Uses the official ``twilio`` SDK with its asynchronous HTTP client, pointed at
``twilio_api_base_url`` (tests point it at the local Twilio fake). Every Twilio failure becomes a
``ProviderError`` whose message says what went wrong, so a tool can tell the caller.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from loguru import logger
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.twiml.voice_response import Dial, VoiceResponse

from phone_agent.config import Settings
from phone_agent.errors import ConfigError, ProviderError

TRANSFER_RING_SECONDS = 20
WHISPER_PATH = "/phone/transfer/whisper"
TRANSFER_DONE_PATH = "/phone/transfer/done"
VOICEMAIL_PATH = "/phone/transfer/voicemail"
VOICEMAIL_TRANSCRIPT_PATH = "/phone/voicemail/transcript"
VOICEMAIL_MAX_SECONDS = 120


class CallControl:
    """Twilio REST operations on calls and messages. Build one per process; ``aclose()`` at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._http: Any = None

    # -- client -----------------------------------------------------------------------------------
    def _twilio(self) -> Any:
        """The SDK client, created on first use (its HTTP session needs a running event loop)."""
        if self._client is None:
            from twilio.http.async_http_client import AsyncTwilioHttpClient
            from twilio.rest import Client

            missing = [
                env
                for name, env in (
                    ("twilio_account_sid", "TWILIO_ACCOUNT_SID"),
                    ("twilio_auth_token", "TWILIO_AUTH_TOKEN"),
                )
                if not self._settings.secret(name)
            ]
            if missing:
                raise ConfigError(f"Twilio call control needs {' and '.join(missing)}; set them in the env.")
            self._http = AsyncTwilioHttpClient(timeout=10)
            self._client = Client(
                self._settings.twilio_account_sid,
                self._settings.secret("twilio_auth_token"),
                http_client=self._http,
            )
            self._client.api.base_url = self._settings.twilio_api_base_url.rstrip("/")
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()
        self._client = self._http = None

    def _from_number(self) -> str:
        if not self._settings.twilio_phone_number:
            raise ConfigError("Sending SMS or dialling out needs TWILIO_PHONE_NUMBER (the agent's number).")
        return self._settings.twilio_phone_number

    # -- operations -------------------------------------------------------------------------------
    async def update_twiml(self, call_sid: str, twiml: str) -> None:
        """Replace what a live call is doing with new TwiML (ends the media stream)."""
        client = self._twilio()
        async with _twilio_errors("update call"):
            await (
                client.api.v2010.accounts(self._settings.twilio_account_sid)
                .calls(call_sid)
                .update_async(twiml=twiml)
            )
        logger.info("call {} updated with new TwiML", call_sid)

    async def hang_up(self, call_sid: str) -> None:
        """End a live call (``Status=completed``)."""
        client = self._twilio()
        async with _twilio_errors("hang up"):
            await (
                client.api.v2010.accounts(self._settings.twilio_account_sid)
                .calls(call_sid)
                .update_async(status="completed")
            )
        logger.info("call {} hung up", call_sid)

    async def send_sms(self, to: str, body: str) -> str:
        """Send an SMS from the agent's number; returns the message SID."""
        client = self._twilio()
        async with _twilio_errors("send SMS"):
            message = await client.api.v2010.accounts(
                self._settings.twilio_account_sid
            ).messages.create_async(to=to, from_=self._from_number(), body=body)
        logger.info("sms {} queued", message.sid)
        return str(message.sid)

    async def dial_out(
        self, to: str, *, twiml: str | None = None, url: str | None = None, **options: Any
    ) -> str:
        """Place an outbound call that runs ``twiml`` (or fetches ``url``); returns the call SID.

        ``options``: more parameters of Twilio's calls.create as the SDK names them (status_callback,
        machine_detection, async_amd, ...).
        """
        if not (twiml or url):
            raise ValueError("dial_out needs twiml or url")
        client = self._twilio()
        kwargs: dict[str, Any] = ({"twiml": twiml} if twiml else {"url": url}) | options
        async with _twilio_errors("dial out"):
            call = await client.api.v2010.accounts(self._settings.twilio_account_sid).calls.create_async(
                to=to, from_=self._from_number(), **kwargs
            )
        logger.info("outbound call {} queued", call.sid)
        return str(call.sid)

    async def start_recording(self, call_sid: str, *, status_callback: str) -> dict[str, Any]:
        """Record a live call (both parties, two channels); Twilio reports to ``status_callback``.

        Returns the recording's ``sid``, ``status`` and ``start_time`` as Twilio answered them.
        """
        client = self._twilio()
        async with _twilio_errors("start recording"):
            recording = await (
                client.api.v2010.accounts(self._settings.twilio_account_sid)
                .calls(call_sid)
                .recordings.create_async(
                    recording_status_callback=status_callback,
                    recording_status_callback_method="POST",
                    recording_status_callback_event=["in-progress", "completed", "absent"],
                    recording_channels="dual",
                )
            )
        logger.info("call {} recording {} started", call_sid, recording.sid)
        return {"sid": str(recording.sid), "status": recording.status, "start_time": recording.start_time}

    async def delete_recording(self, recording_sid: str) -> bool:
        """Delete a recording's media at Twilio; False when Twilio has no such recording (gone already)."""
        client = self._twilio()
        try:
            async with _twilio_errors("delete recording"):
                await (
                    client.api.v2010.accounts(self._settings.twilio_account_sid)
                    .recordings(recording_sid)
                    .delete_async()
                )
        except ProviderError as exc:
            if isinstance(exc.__cause__, TwilioRestException) and exc.__cause__.status == 404:
                return False
            raise
        logger.info("recording {} deleted at Twilio", recording_sid)
        return True

    async def transfer(self, call_sid: str, reason: str, *, to: str | None = None) -> str:
        """Hand a live call to ``to`` (default ``handoff_number``); returns the TwiML sent (see
        ``transfer_twiml``)."""
        if not (to or self._settings.handoff_number):
            raise ConfigError("No handoff_number is configured: set PHONE_AGENT_HANDOFF_NUMBER.")
        twiml = transfer_twiml(self._settings, reason, to=to)
        await self.update_twiml(call_sid, twiml)
        return twiml


class _twilio_errors:
    """Turn SDK failures into ProviderError with Twilio's own message and code."""

    def __init__(self, action: str) -> None:
        self.action = action

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> bool:
        if isinstance(exc, TwilioRestException):
            raise ProviderError("twilio", f"{self.action} failed: {exc.msg} (code {exc.code})") from exc
        if isinstance(exc, TwilioException | OSError) or (
            exc is not None and "aiohttp" in type(exc).__module__
        ):
            raise ProviderError("twilio", f"{self.action} failed: {type(exc).__name__}: {exc}") from exc
        return False


# -- TwiML ----------------------------------------------------------------------------------------
def public_url_for(settings: Settings, path: str, **query: str) -> str:
    """``public_url`` + ``path`` (+ query): where Twilio reaches one of our webhooks."""
    base = settings.public_url or ""
    return f"{base}{path}" + (f"?{urlencode(query)}" if query else "")


def transfer_twiml(settings: Settings, reason: str, *, to: str | None = None) -> str:
    """``<Dial>`` the human (``to``, default ``handoff_number``), who first hears a whisper of the
    reason; no answer goes to voicemail.

    The caller hears a short hold line. When the human picks up, ``WHISPER_PATH`` is played to them
    alone before the two are connected. When the dial ends, Twilio asks ``TRANSFER_DONE_PATH`` what
    next (``transfer_done_twiml``).
    """
    response = VoiceResponse()
    response.say("Please hold while I connect you.")
    dial = Dial(
        action=public_url_for(settings, TRANSFER_DONE_PATH),
        timeout=TRANSFER_RING_SECONDS,
        caller_id=settings.twilio_phone_number,
    )
    number = to or settings.handoff_number
    dial.number(number, url=public_url_for(settings, WHISPER_PATH, reason=reason[:300]))
    response.append(dial)
    return str(response)


def whisper_twiml(settings: Settings, reason: str) -> str:
    """What the human hears before being connected: who is calling and why."""
    response = VoiceResponse()
    response.say(f"Call from {settings.business_name}'s phone agent. Reason: {reason or 'not given'}.")
    return str(response)


def transfer_done_twiml(settings: Settings, dial_status: str) -> str:
    """After the dial: hang up when the human answered; otherwise record a voicemail."""
    response = VoiceResponse()
    if dial_status in ("completed", "answered"):
        response.hangup()
        return str(response)
    response.say("Sorry, nobody could take your call right now.")
    append_voicemail(response, settings)
    return str(response)


def append_voicemail(response: VoiceResponse, settings: Settings) -> None:
    """Ask for a message and record it: transcribed by Twilio, stored and texted to the owner by the
    voicemail webhooks (``VOICEMAIL_PATH``, ``VOICEMAIL_TRANSCRIPT_PATH``)."""
    response.say(f"Please leave your name, number and message for {settings.business_name} after the tone.")
    response.record(
        max_length=VOICEMAIL_MAX_SECONDS,
        play_beep=True,
        action=public_url_for(settings, VOICEMAIL_PATH),
        transcribe=True,
        transcribe_callback=public_url_for(settings, VOICEMAIL_TRANSCRIPT_PATH),
    )
    response.say("I did not catch a message. Goodbye.")
