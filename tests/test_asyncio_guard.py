"""The asyncio guard plugin fails a test whose task failed unobserved, and passes a clean one."""

from __future__ import annotations

import pytest

GUARD_SCOPE = "asyncio_default_fixture_loop_scope=function"

DROPPED_TASK = """
import asyncio

async def test_a_task_fails_and_nobody_looks():
    async def boom():
        raise RuntimeError("the reply was lost")

    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    del task  # freed with its exception never retrieved: asyncio logs it, nothing raises

async def test_an_awaited_task_is_fine():
    async def fine():
        return 1

    assert await asyncio.get_running_loop().create_task(fine()) == 1
"""


def test_a_dropped_failed_task_fails_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dropped=DROPPED_TASK)
    result = pytester.runpytest_inprocess(
        "-p", "tests.asyncio_guard", "-o", "asyncio_mode=auto", "-o", GUARD_SCOPE
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*asyncio reported 1 unobserved error(s)*Task exception was never*"])
    result.stdout.fnmatch_lines(["*RuntimeError: the reply was lost*"])
