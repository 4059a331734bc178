"""Can a call be heard and answered with these settings? Checked at ``/phone/incoming`` before a
stream is opened, so a caller whose call could only end in silence gets the fallback action instead.

Only what is known without a request is checked (a key that is missing, not a key that is wrong:
those are caught in the call by the fallback ladders, and by ``phone-agent doctor``).
"""

from __future__ import annotations

from phone_agent.brain.llm import OPENAI_HOST, missing_llm_key
from phone_agent.config import Settings
from phone_agent.errors import ConfigError
from phone_agent.local_models import require_local_stack

__all__ = ["OPENAI_HOST", "voice_path_problems"]  # OPENAI_HOST: the host whose API needs a key


def voice_path_problems(settings: Settings) -> list[str]:
    """What stops a call from being transcribed, answered and spoken; empty when ready."""
    has = settings.secret
    openai = bool(has("openai_api_key"))
    if settings.voice_mode == "realtime":
        return [] if openai else ["voice_mode=realtime needs OPENAI_API_KEY"]
    problems = []
    try:  # voice_stack=local / tts_fallback_provider=local: the [local] extra and its model files
        local_ok, local_problem = bool(require_local_stack(settings)), ""
    except ConfigError as exc:
        local_ok, local_problem = False, str(exc)
    if settings.voice_stack == "local":  # local speech needs no key
        problems += [local_problem] if local_problem else []
    elif settings.stt_provider == "deepgram":
        if not has("deepgram_api_key"):
            problems.append("speech-to-text with Deepgram needs DEEPGRAM_API_KEY")
    elif not openai:
        problems.append("speech-to-text needs OPENAI_API_KEY")
    if missing_llm_key(settings):
        problems.append("the LLM needs OPENAI_API_KEY (or an llm_secondary_base_url)")
    fallback_voice = (settings.tts_fallback_provider == "openai" and openai) or local_ok
    if settings.voice_stack == "cloud" and not has("elevenlabs_api_key") and not fallback_voice:
        problems.append(
            local_problem or "the voice needs ELEVENLABS_API_KEY (or OPENAI_API_KEY for the fallback voice)"
        )
    return problems
