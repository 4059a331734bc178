"""Config precedence (default < config.json < env < admin) and value sources; secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phone_agent.config import Settings, load_settings, mask_secret, setting_names
from phone_agent.errors import ConfigError
from tests.conftest import make_settings


def write_config(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_defaults_have_default_source(tmp_path: Path) -> None:
    s = load_settings({}, config_path=write_config(tmp_path, {}))
    assert s.llm_model == "gpt-4o-mini"
    assert s.source_of("llm_model") == "default"
    assert s.orchestrator_port == 5000 and s.memory_port == 8100 and s.voice_bridge_port == 9100
    assert s.backend_port == 8001


def test_precedence_on_several_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"llm_model": "file-model", "tts_stability": 0.3, "agent_name": "Zoe"})
    env = {
        "PHONE_AGENT_TTS_STABILITY": "0.9",
        "PHONE_AGENT_AGENT_NAME": "Env-Ann",
        "OPENAI_API_KEY": "sk-envkey1234",
    }
    s = load_settings(env, config_path=path, overrides={"agent_name": "Admin-Al"})
    assert (s.llm_model, s.source_of("llm_model")) == ("file-model", "config.json")
    assert (s.tts_stability, s.source_of("tts_stability")) == (0.9, "env")
    assert (s.agent_name, s.source_of("agent_name")) == ("Admin-Al", "admin")
    assert s.secret("openai_api_key") == "sk-envkey1234"
    assert s.source_of("openai_api_key") == "env"
    assert s.source_of("llm_temperature") == "default"


def test_config_path_from_env_and_nested_sections(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"llm": {"model": "nested-model", "temperature": 0.1}, "_comment": "hi"})
    s = load_settings({"PHONE_AGENT_CONFIG": str(path)})
    assert s.llm_model == "nested-model" and s.llm_temperature == 0.1
    assert s.config_file == str(path)


def test_with_overrides_keeps_lower_layers_and_validates(tmp_path: Path) -> None:
    s = load_settings({"PHONE_AGENT_LLM_MODEL": "env-model"}, config_path=write_config(tmp_path, {}))
    s2 = s.with_overrides({"tts_stability": 0.2})
    assert s2.llm_model == "env-model" and s2.source_of("llm_model") == "env"
    assert s2.tts_stability == 0.2 and s2.source_of("tts_stability") == "admin"
    with pytest.raises(ConfigError, match="tts_stability"):
        s.with_overrides({"tts_stability": 7})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ not json", r"config.json: not valid JSON at line 1"),
        ("[1, 2]", r"must contain one JSON object"),
        ('{"llm_modle": "x"}', r"unknown setting 'llm_modle'"),
        ('{"tts_stability": "very"}', r"config.json: bad value for 'tts_stability'"),
        ('{"orchestrator_port": 70000}', r"bad value for 'orchestrator_port'"),
    ],
)
def test_bad_config_file_names_file_and_key(tmp_path: Path, content: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings({}, config_path=write_config(tmp_path, content))


def test_bad_env_value_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PHONE_AGENT_LLM_TEMPERATURE"):
        load_settings({"PHONE_AGENT_LLM_TEMPERATURE": "hot"}, config_path=write_config(tmp_path, {}))


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings({"PHONE_AGENT_CONFIG": str(tmp_path / "nope.json")})


def test_secrets_masked_in_public_view(tmp_path: Path) -> None:
    key = "sk-proj-abcdefghijklmnop1234"
    s = load_settings(
        {"OPENAI_API_KEY": key, "TWILIO_AUTH_TOKEN": "tok-0123456789abcdef"},
        config_path=write_config(tmp_path, {}),
    )
    view = {row["name"]: row for row in s.public_view()}
    assert view["openai_api_key"]["value"] == "sk-…1234"
    assert view["openai_api_key"]["secret"] is True
    assert key not in json.dumps(s.public_view())
    assert "0123456789abcdef" not in json.dumps(s.public_view())
    assert mask_secret("short") == "…****"


def test_every_setting_has_a_description() -> None:
    for name in setting_names():
        assert Settings.model_fields[name].description, name


def test_example_config_files_are_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    s = load_settings({}, config_path=root / "config.json.example")
    assert s.source_of("business_name") == "config.json"
    internal = json.loads((root / "config-internal.json").read_text())
    ports = {svc["name"]: svc["port"] for svc in internal["services"]}
    assert ports["orchestrator"] == s.orchestrator_port == 5000
    assert ports["voice-bridge"] == s.voice_bridge_port == 9100
    assert ports["memory"] == s.memory_port == 8100
    assert ports["backend"] == s.backend_port == 8001


def test_every_setting_is_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in setting_names() if f"`{name}`" not in readme]
    assert not missing, f"settings missing from README's config table: {missing}"


def test_a_misspelt_time_zone_is_refused_at_load_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(tmp_path, PHONE_AGENT_TIMEZONE="America/NewYork")
    message = str(refused.value)
    assert "'timezone'" in message and "did you mean 'America/New_York'?" in message
    assert make_settings(tmp_path, PHONE_AGENT_TIMEZONE=" Europe/Berlin ").timezone == "Europe/Berlin"


def test_business_hours_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(tmp_path, PHONE_AGENT_BUSINESS_HOURS="weekdays 9 to 5")
    assert "'business_hours'" in str(refused.value) and "Mon-Fri 09:00-17:00" in str(refused.value)
    assert make_settings(tmp_path, PHONE_AGENT_BUSINESS_HOURS="Mon,Wed 08:00-12:00").business_hours


def test_national_phone_numbers_are_read_in_the_default_country(tmp_path: Path) -> None:
    us = make_settings(
        tmp_path,
        PHONE_AGENT_HANDOFF_NUMBER="(555) 010-0200",
        PHONE_AGENT_OWNER_SMS_NUMBER="+1 555 010 0300",
        TWILIO_PHONE_NUMBER="555.010.0400",
    )
    assert (us.handoff_number, us.owner_sms_number, us.twilio_phone_number) == (
        "+15550100200",
        "+15550100300",
        "+15550100400",
    )
    uk = make_settings(tmp_path, PHONE_AGENT_DEFAULT_COUNTRY="gb", PHONE_AGENT_HANDOFF_NUMBER="020 7946 0018")
    assert (uk.default_country, uk.handoff_number) == ("GB", "+442079460018")
    for bad in ("call me", "12"):
        with pytest.raises(ConfigError, match="'handoff_number'"):
            make_settings(tmp_path, PHONE_AGENT_HANDOFF_NUMBER=bad)
    with pytest.raises(ConfigError, match="'default_country'"):
        make_settings(tmp_path, PHONE_AGENT_DEFAULT_COUNTRY="Narnia")


def test_admin_overrides_are_checked_the_same_way(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ConfigError, match="admin override: bad value for 'timezone'"):
        settings.with_overrides({"timezone": "Mars/Olympus"})
