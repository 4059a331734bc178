"""Fixtures of the security tests shared with the suites they extend (the memory service's settings)."""

from tests.api.test_memory import service_settings  # noqa: F401
