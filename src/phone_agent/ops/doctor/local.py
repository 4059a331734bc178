"""Doctor check of the local speech stack (``voice_stack=local`` or ``tts_fallback_provider=local``)."""

from __future__ import annotations

from phone_agent.errors import ConfigError
from phone_agent.local_models import INSTALL_HINT, missing_packages, piper_voice_file, whisper_model_dir
from phone_agent.ops.doctor.model import DoctorContext, Outcome, check, fail, ok


@check("local.speech", "local")
async def local_speech(ctx: DoctorContext) -> Outcome:
    """The [local] extra is installed and the configured Whisper model and Piper voice are there."""
    s = ctx.settings
    settings = ("voice_stack", "tts_fallback_provider")
    uses = [f"{name}=local" for name in settings if getattr(s, name) == "local"]
    if not uses:
        return ok("not used (voice_stack=cloud, no local fallback voice)")
    missing = missing_packages()
    if missing:
        return fail(f"{' and '.join(uses)}, but not installed: {', '.join(missing)}", f"Run {INSTALL_HINT}.")
    try:
        model, voice = whisper_model_dir(s), piper_voice_file(s)
    except ConfigError as exc:
        return fail(str(exc), "Fix the path, or unset the setting to use the packaged model.")
    return ok(f"Whisper model {model}, Piper voice {voice.name}")
