"""The setup checklist the admin page opens on while keys are missing: what, what for, where from.

One item per provider the current settings need (the OpenAI key only when something uses OpenAI, the
Deepgram key only with Deepgram STT, the ElevenLabs key only with the cloud voice). Each item is
the provider's settings form (``settings_form`` sections of the same name) with "Test connection"
(``admin/connections.py``) and Save. ``required`` items stop the agent from talking at all (the
softphone refuses to call); the others limit it (phone calls, the natural voice).
"""

from __future__ import annotations

from dataclasses import dataclass

from phone_agent.config import Settings
from phone_agent.voice.readiness import OPENAI_HOST


@dataclass(frozen=True)
class SetupItem:
    """One thing to set up: its settings section (= the provider tested), why and where."""

    section: str
    title: str
    needed_for: str
    where: str
    where_url: str
    done: bool
    required: bool


def _uses_openai(s: Settings) -> bool:
    cloud_stt = s.voice_stack == "cloud" and s.stt_provider == "openai"
    llm = s.llm_provider == "openai" and OPENAI_HOST in s.llm_base_url
    return cloud_stt or llm or s.voice_mode == "realtime" or s.tts_fallback_provider == "openai"


def setup_items(settings: Settings) -> list[SetupItem]:
    """What these settings need, in the order a newcomer should set it up."""
    s, has = settings, settings.secret
    items = []
    if _uses_openai(s):
        items.append(
            SetupItem(
                section="openai",
                title="OpenAI API key",
                needed_for="the agent's brain (its replies), hearing callers (speech-to-text), the fallback "
                "voice and knowledge search",
                where="platform.openai.com → API keys",
                where_url="https://platform.openai.com/api-keys",
                done=bool(has("openai_api_key")),
                required=True,
            )
        )
    if s.voice_stack == "cloud":
        fallback = s.tts_fallback_provider == "openai" and bool(has("openai_api_key"))
        items.append(
            SetupItem(
                section="elevenlabs",
                title="ElevenLabs API key",
                needed_for="the agent's natural voice"
                + (" (until it is set, calls use the OpenAI fallback voice)" if fallback else ""),
                where="elevenlabs.io → Developers → API keys",
                where_url="https://elevenlabs.io/app/settings/api-keys",
                done=bool(has("elevenlabs_api_key")),
                required=not fallback,
            )
        )
    if s.voice_stack == "cloud" and "deepgram" in (s.stt_provider, s.stt_fallback_provider):
        items.append(
            SetupItem(
                section="deepgram",
                title="Deepgram API key",
                needed_for="hearing callers with Deepgram (stt_provider or stt_fallback_provider)",
                where="console.deepgram.com → API Keys",
                where_url="https://console.deepgram.com/",
                done=bool(has("deepgram_api_key")),
                required=s.stt_provider == "deepgram",
            )
        )
    items.append(
        SetupItem(
            section="twilio",
            title="Twilio Account SID and auth token",
            needed_for="phone calls: answering your Twilio number, transfers, SMS (not needed to call the "
            "agent from this page)",
            where="console.twilio.com → Account → API keys & tokens",
            where_url="https://console.twilio.com/",
            done=bool(s.twilio_account_sid and has("twilio_auth_token")),
            required=False,
        )
    )
    return items


def missing_items(settings: Settings) -> list[SetupItem]:
    """The items not done yet (the page shows the checklist first while there are any)."""
    return [item for item in setup_items(settings) if not item.done]
