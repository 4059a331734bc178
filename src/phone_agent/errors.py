"""Errors of phone-agent. Each message says what is wrong and how to fix it."""

from __future__ import annotations


class PhoneAgentError(Exception):
    """Base of every error phone-agent raises on purpose."""

    status_code: int = 500


class ConfigError(PhoneAgentError):
    """A setting or config file is wrong; the message names the file/key and what is expected."""

    status_code = 422


class ProviderError(PhoneAgentError):
    """An external provider (OpenAI, ElevenLabs, Twilio, Deepgram) failed or is unreachable."""

    status_code = 502

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ToolError(PhoneAgentError):
    """A tool the LLM called could not do its job; the message is safe to speak about."""

    status_code = 400


class StoreError(PhoneAgentError):
    """The database or memory store failed."""

    status_code = 503


class NotFoundError(PhoneAgentError):
    """The thing asked for does not exist."""

    status_code = 404
