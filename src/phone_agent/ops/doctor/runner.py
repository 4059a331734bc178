"""Run every registered check concurrently, each under its own deadline, and build the report."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from loguru import logger
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from phone_agent import __version__
from phone_agent.config import Settings, redact
from phone_agent.errors import PhoneAgentError
from phone_agent.ops.doctor import host, local, providers, services, tls  # noqa: F401  (registers checks)
from phone_agent.ops.doctor.model import REGISTRY, STATUSES, Check, CheckSpec, DoctorContext, Status
from phone_agent.storage.db import create_engine

SCHEMA_VERSION = 1
GROUP_ORDER = ("twilio", "openai", "elevenlabs", "local", "storage", "services", "ports", "tls", "host")


class Report(BaseModel):
    """The doctor's whole answer; its JSON form is stable (``schema_version`` bumps on any change)."""

    schema_version: int = SCHEMA_VERSION
    version: str = __version__
    status: Status
    counts: dict[str, int]
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (warnings allowed), else 1."""
        return 1 if self.status == "fail" else 0


async def run_check(spec: CheckSpec, ctx: DoctorContext) -> Check:
    """One check under ``ctx.timeout``; a timeout or an exception becomes a failing result."""
    started = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(spec.run(ctx), ctx.timeout)
        status, detail, fix = outcome.status, outcome.detail, outcome.fix
    except (TimeoutError, httpx.TimeoutException):
        status, detail, fix = "fail", f"no answer within {ctx.timeout:g} s", spec.on_timeout
    except httpx.HTTPError as exc:
        status, detail = "fail", f"cannot reach it: {type(exc).__name__}: {str(exc)[:160]}"
        fix = "Check the URL setting and outbound network access."
    except Exception as exc:  # a check's bug must not hide the other results
        logger.exception("doctor check {} crashed", spec.name)
        status, detail, fix = "fail", f"check crashed: {type(exc).__name__}: {exc}", "Report this bug."
    secrets = ctx.settings.secret_values()  # a URL with a password in a message is shown masked
    return Check(
        name=spec.name,
        group=spec.group,
        status=status,
        detail=redact(detail, secrets, "****"),
        fix=redact(fix, secrets, "****") if fix else fix,
        duration_ms=int(1000 * (time.perf_counter() - started)),
    )


def overall(checks: list[Check]) -> Status:
    """fail if any check failed, else warn if any warned, else pass."""
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


async def run_doctor(
    settings: Settings,
    *,
    check_timeout: float | None = None,
    only: list[str] | None = None,
    **context: Any,
) -> Report:
    """Run the checks (all, or those whose name or group is in ``only``) and return the report.

    Args:
        settings: the Settings to check.
        check_timeout: seconds per check (default ``settings.doctor_timeout``).
        only: names or groups to run.
        context: extra `DoctorContext` fields (engine, tls_cafile, letsencrypt_dir, thresholds...).
    """
    deadline = check_timeout or settings.doctor_timeout
    specs = [s for s in REGISTRY if not only or s.name in only or s.group in only]
    specs.sort(key=lambda s: GROUP_ORDER.index(s.group) if s.group in GROUP_ORDER else len(GROUP_ORDER))
    own_engine = None
    if context.get("engine") is None:
        try:  # one engine for all checks (SQLite dislikes concurrent first connections)
            context["engine"] = own_engine = create_engine(settings.database_url)
        except PhoneAgentError:
            context["engine"] = None  # the database check reports the bad URL
    try:
        async with httpx.AsyncClient(timeout=deadline, follow_redirects=False) as http:
            ctx = DoctorContext(settings=settings, http=http, timeout=deadline, **context)
            checks = list(await asyncio.gather(*(run_check(spec, ctx) for spec in specs)))
    finally:
        if own_engine is not None:
            await own_engine.dispose()
    counts: dict[str, int] = {s: sum(c.status == s for c in checks) for s in STATUSES}
    return Report(status=overall(checks), counts=counts, checks=checks)


MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def render_text(report: Report) -> str:
    """One line per check, then its fix indented below when it did not pass."""
    width = max((len(c.name) for c in report.checks), default=10)
    lines = []
    for c in report.checks:
        lines.append(f"{MARK[c.status]}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "pass":
            lines.append(f"{'':6}{'':<{width}}  fix: {c.fix}")
    n = report.counts
    lines.append(f"{report.status.upper()}: {n['pass']} passed, {n['warn']} warnings, {n['fail']} failed")
    return "\n".join(lines)


STATUS_TTL_SECONDS = 300.0
STATUS_CHECK_TIMEOUT = 5.0


class StatusReportCache:
    """The doctor report shown in /admin-status, rerun at most every 5 minutes (one run at a time)."""

    def __init__(self, ttl: float = STATUS_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._report: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> dict[str, Any] | None:
        if self._report is not None and time.time() - self._report[0] < self.ttl:
            return self._report[1]
        return None

    async def get(self, settings: Settings, engine: AsyncEngine | None) -> dict[str, Any]:
        """The cached report, or a new run (5 s per check at most) when it is older than the TTL."""
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._fresh()
            if cached is not None:
                return cached
            report = await run_doctor(
                settings, check_timeout=min(settings.doctor_timeout, STATUS_CHECK_TIMEOUT), engine=engine
            )
            body = report.model_dump() | {"checked_at": time.time()}
            self._report = (time.time(), body)
            return body
