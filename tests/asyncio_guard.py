"""Pytest plugin: a test fails when asyncio reports an error nobody saw.

asyncio does not raise these; it logs them through the ``asyncio`` logger when a task or callback
is collected or fails: "Task exception was never retrieved" (a task that failed and was never
awaited), "Task was destroyed but it is pending!" (a task nobody cancelled or awaited), "Exception
in callback ...". Warnings-as-errors do not see them (they are log records, not warnings), so
this plugin collects them per test and fails the test's teardown with the first one's traceback.
Unraisable exceptions (``__del__``, generator finalisers) and thread exceptions are turned into
warnings by pytest itself, which ``filterwarnings = ["error"]`` makes failures.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Generator

import pytest

REPORTED = (
    "Task exception was never retrieved",
    "Task was destroyed but it is pending",
    "Exception in callback",
    "Future exception was never retrieved",
    "Unhandled error in exception handler",
)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(REPORTED):
            self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


_collector = _Collector()


def _describe(records: list[logging.LogRecord]) -> str:
    first = records[0]
    text = first.getMessage()
    if first.exc_info and first.exc_info[1] is not None:
        text += f"\n{type(first.exc_info[1]).__name__}: {first.exc_info[1]}"
    return f"asyncio reported {len(records)} unobserved error(s); the first: {text}"


_configured: list[pytest.Config] = []  # pytester runs a pytest inside pytest: one handler for both


def pytest_configure(config: pytest.Config) -> None:
    _configured.append(config)
    logging.getLogger("asyncio").addHandler(_collector)


def pytest_unconfigure(config: pytest.Config) -> None:
    _configured.remove(config)
    if not _configured:
        logging.getLogger("asyncio").removeHandler(_collector)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the test's fixtures are finalised (its event loop closed), fail on what asyncio logged."""
    yield
    gc.collect(0)  # young objects only: a dropped task is usually freed at once; keep teardown cheap
    records = _collector.take()
    if records:
        pytest.fail(_describe(records), pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _collector.take()  # logged between tests (by a module- or session-scoped fixture): not this test's
    return (yield)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """What is collected only after the last test (a task freed by a full collection) fails the run."""
    gc.collect()
    records = _collector.take()
    if records:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(_describe(records), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
