"""Fixtures of the security tests: the voice tests' agent (a served app on the provider fakes)."""

from tests.voice.conftest import agent_factory, db_rows  # noqa: F401  (fixtures shared with tests/voice)
