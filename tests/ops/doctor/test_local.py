"""Doctor's local.speech check: not used, installed with its models, missing with the install command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from phone_agent.config import Settings
from phone_agent.ops.doctor import Check, run_doctor
from tests.conftest import make_settings
from tests.running_agent import requires_local


async def checks(settings: Settings, *names: str) -> dict[str, Check]:
    report = await run_doctor(settings, check_timeout=5.0, only=list(names))
    return {c.name: c for c in report.checks}


async def test_not_used_by_default(tmp_path: Path) -> None:
    result = await checks(make_settings(tmp_path), "local.speech")
    assert result["local.speech"].status == "pass" and "not used" in result["local.speech"].detail


async def test_missing_extra_fails_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for package in ("faster_whisper", "piper"):
        monkeypatch.setitem(sys.modules, package, None)
    settings = make_settings(tmp_path, PHONE_AGENT_VOICE_STACK="local")
    result = await checks(settings, "local.speech", "elevenlabs.key")
    speech = result["local.speech"]
    assert speech.status == "fail" and "(missing: faster_whisper, piper)" in speech.detail
    assert speech.fix is not None and "pip install -e '.[local]'" in speech.fix
    # the local stack speaks with Piper: no ElevenLabs key is needed
    assert result["elevenlabs.key"].status == "pass" and "not used" in result["elevenlabs.key"].detail


@requires_local
async def test_installed_models_pass_and_a_wrong_path_fails(tmp_path: Path) -> None:
    good = await checks(make_settings(tmp_path, PHONE_AGENT_TTS_FALLBACK_PROVIDER="local"), "local.speech")
    assert good["local.speech"].status == "pass", good
    assert "en_US-joe-medium.onnx" in good["local.speech"].detail
    wrong = make_settings(
        tmp_path, PHONE_AGENT_VOICE_STACK="local", PHONE_AGENT_LOCAL_STT_MODEL=str(tmp_path)
    )
    bad = await checks(wrong, "local.speech")
    assert bad["local.speech"].status == "fail" and "no model.bin" in bad["local.speech"].detail
