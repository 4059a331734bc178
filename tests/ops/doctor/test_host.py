"""Host checks (disk, CPU, memory, open files) and the log-file error count."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

from phone_agent.ops.doctor import Check, Thresholds, run_doctor
from phone_agent.ops.logging import setup_logging
from tests.conftest import make_settings

HOST = ["host.disk", "host.cpu", "host.memory", "process.limits"]


async def host_checks(tmp_path: Path, thresholds: Thresholds, **env: str) -> dict[str, Check]:
    report = await run_doctor(
        make_settings(tmp_path, **env), only=[*HOST, "logs.errors"], thresholds=thresholds
    )
    return {c.name: c for c in report.checks}


async def test_host_within_thresholds_passes(tmp_path: Path) -> None:
    generous = Thresholds(
        disk_warn_free_pct=0,
        disk_fail_free_pct=0,
        load_warn_per_core=1e6,
        load_fail_per_core=1e6,
        memory_warn_available_pct=0,
        memory_fail_available_pct=0,
        open_files_warn=1,
        open_files_fail=1,
    )
    result = await host_checks(tmp_path, generous)
    assert {result[n].status for n in HOST} == {"pass"}, result
    assert "free" in result["host.disk"].detail and "cores" in result["host.cpu"].detail


async def test_host_over_thresholds_fails(tmp_path: Path) -> None:
    impossible = Thresholds(
        disk_warn_free_pct=101,
        disk_fail_free_pct=101,
        load_warn_per_core=-1,
        load_fail_per_core=-1,
        memory_warn_available_pct=101,
        memory_fail_available_pct=101,
        open_files_warn=10**9,
        open_files_fail=10**9,
    )
    result = await host_checks(tmp_path, impossible)
    assert {result[n].status for n in HOST} == {"fail"}, result
    assert all(result[n].fix for n in HOST)
    assert "LimitNOFILE" in (result["process.limits"].fix or "")


def text_line(at: datetime, level: str, message: str) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}.123 | {level:<7} | CA1 | phone_agent.x:1 - {message}\n"


async def test_log_errors_counted_in_window(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    now = datetime.now()
    log.write_text(
        text_line(now, "INFO", "fine")
        + text_line(now - timedelta(minutes=5), "ERROR", "boom")
        + text_line(now - timedelta(minutes=1), "CRITICAL", "bang")
        + text_line(now - timedelta(days=3), "ERROR", "old news")
        + json.dumps({"record": {"level": {"name": "ERROR"}, "time": {"timestamp": time.time()}}})
        + "\n"
    )
    some = await host_checks(tmp_path, Thresholds(), PHONE_AGENT_LOG_FILE=str(log))
    assert some["logs.errors"].status == "warn"
    assert some["logs.errors"].detail.startswith("3 error line(s)")
    many = await host_checks(tmp_path, Thresholds(log_errors_fail=3), PHONE_AGENT_LOG_FILE=str(log))
    assert many["logs.errors"].status == "fail"
    log.write_text(text_line(now, "INFO", "all quiet"))
    quiet = await host_checks(tmp_path, Thresholds(), PHONE_AGENT_LOG_FILE=str(log))
    assert quiet["logs.errors"].status == "pass"


async def test_errors_logged_by_the_agent_are_counted(tmp_path: Path) -> None:
    for fmt in ("text", "json"):
        log = tmp_path / f"{fmt}.log"
        settings = make_settings(tmp_path, PHONE_AGENT_LOG_FILE=str(log), PHONE_AGENT_LOG_FORMAT=fmt)
        setup_logging(settings)
        logger.error("provider failed")
        logger.info("recovered")
        logger.remove()
        report = await run_doctor(settings, only=["logs.errors"])
        assert report.checks[0].detail.startswith("1 error line(s)"), (fmt, report.checks[0])
