"""Doctor check of the local speech stack (``voice_stack=local`` or ``tts_fallback_provider=local``)."""

from __future__ import annotations

from phone_agent.errors import ConfigError
from phone_agent.local_models import INSTALL_HINT, require_local_stack
from phone_agent.ops.doctor.model import DoctorContext, Outcome, check, fail, ok


@check("local.speech", "local")
async def local_speech(ctx: DoctorContext) -> Outcome:
    """The [local] extra is installed and the configured Whisper model and Piper voice are there."""
    try:
        files = require_local_stack(ctx.settings)
    except ConfigError as exc:
        fix = f"Run {INSTALL_HINT}." if INSTALL_HINT in str(exc) else "Fix the path, or unset it."
        return fail(str(exc), fix)
    if not files:
        return ok("not used (voice_stack=cloud, no local fallback voice)")
    return ok("models present: " + ", ".join(str(path) for path in files))
