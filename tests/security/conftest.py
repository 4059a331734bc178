"""Fixtures of the security tests, shared with the suites they extend: the voice tests' agent (a
served app on the provider fakes) and the memory service's settings."""

from tests.memory.test_service import service_settings  # noqa: F401
from tests.voice.conftest import agent_factory, db_rows  # noqa: F401
