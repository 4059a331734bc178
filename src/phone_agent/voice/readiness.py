"""Can a call be heard and answered with these settings? Checked at ``/phone/incoming`` before a
stream is opened, so a caller whose call could only end in silence gets the fallback action instead.

Only what is known without a request is checked (a key that is missing, not a key that is wrong:
those are caught in the call by the fallback ladders, and by ``phone-agent doctor``).
"""

from __future__ import annotations

from phone_agent.config import Settings

OPENAI_HOST = "api.openai.com"


def voice_path_problems(settings: Settings) -> list[str]:
    """What stops a call from being transcribed, answered and spoken; empty when ready."""
    has = settings.secret
    openai = bool(has("openai_api_key"))
    if settings.voice_mode == "realtime":
        return [] if openai else ["voice_mode=realtime needs OPENAI_API_KEY"]
    problems = []
    if settings.stt_provider == "deepgram":
        if not has("deepgram_api_key"):
            problems.append("speech-to-text with Deepgram needs DEEPGRAM_API_KEY")
    elif not openai:
        problems.append("speech-to-text needs OPENAI_API_KEY")
    primary_needs_key = OPENAI_HOST in settings.llm_base_url and settings.llm_provider == "openai"
    if primary_needs_key and not openai and not settings.llm_secondary_base_url:
        problems.append("the LLM needs OPENAI_API_KEY (or an llm_secondary_base_url)")
    fallback_voice = settings.tts_fallback_provider == "openai" and openai
    if not has("elevenlabs_api_key") and not fallback_voice:
        problems.append("the voice needs ELEVENLABS_API_KEY (or OPENAI_API_KEY for the fallback voice)")
    return problems
