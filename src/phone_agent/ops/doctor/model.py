"""What a doctor check is: its result (`Check`), what it may use (`DoctorContext`), how it registers.

A check is an async function ``(ctx) -> Outcome`` registered with ``@check(name, group)``. The
runner gives it a deadline and turns its outcome (or its timeout, or its exception) into a `Check`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from phone_agent.config import Settings

Status = Literal["pass", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail")


class Check(BaseModel):
    """One line of the doctor's report. ``fix`` says what to do when the status is not pass."""

    name: str
    group: str
    status: Status
    detail: str
    fix: str | None = None
    duration_ms: int = 0


@dataclass(frozen=True)
class Outcome:
    """What a check function returns; the runner adds name, group and duration."""

    status: Status
    detail: str
    fix: str | None = None


def ok(detail: str) -> Outcome:
    """A passing outcome."""
    return Outcome("pass", detail)


def warn(detail: str, fix: str) -> Outcome:
    """A warning: works now, but needs attention."""
    return Outcome("warn", detail, fix)


def fail(detail: str, fix: str) -> Outcome:
    """A failure: something the agent needs is broken."""
    return Outcome("fail", detail, fix)


@dataclass
class Thresholds:
    """Host limits (percentages are of the total)."""

    disk_warn_free_pct: float = 15.0
    disk_fail_free_pct: float = 5.0
    load_warn_per_core: float = 1.0
    load_fail_per_core: float = 3.0
    memory_warn_available_pct: float = 15.0
    memory_fail_available_pct: float = 5.0
    open_files_warn: int = 4096
    open_files_fail: int = 1024
    log_errors_fail: int = 100
    log_window_hours: float = 24.0
    tls_warn_days: int = 14


# Where a host keeps certbot's renewal schedule (systemd timer, snap timer, cron).
RENEWAL_PATHS: tuple[Path, ...] = (
    Path("/lib/systemd/system/certbot.timer"),
    Path("/usr/lib/systemd/system/certbot.timer"),
    Path("/etc/systemd/system/certbot.timer"),
    Path("/etc/systemd/system/snap.certbot.renew.timer"),
    Path("/etc/cron.d/certbot"),
    Path("/etc/crontab"),
    Path("/var/spool/cron/crontabs/root"),
)


@dataclass
class DoctorContext:
    """Everything a check may use. Tests build one with their own paths, CA file and thresholds."""

    settings: Settings
    http: httpx.AsyncClient
    timeout: float
    engine: Any = None  # an AsyncEngine to reuse (inside the app); else each check makes its own
    tls_cafile: str | None = None  # extra CA to trust (tests); the system store otherwise
    letsencrypt_dir: Path = Path("/etc/letsencrypt")
    renewal_paths: tuple[Path, ...] = RENEWAL_PATHS
    role_hosts: dict[str, str] = field(default_factory=dict)  # role -> host to probe; 127.0.0.1 by default
    thresholds: Thresholds = field(default_factory=Thresholds)
    _role: Any = field(default=None, repr=False)

    def host_of(self, role: str) -> str:
        """Where a role's port is probed: ``role_hosts``, the memory_url host for memory, else loopback."""
        if role in self.role_hosts:
            return self.role_hosts[role]
        if role == "memory" and self.settings.memory_backend == "http":
            return urlsplit(self.settings.memory_url).hostname or "127.0.0.1"
        return "127.0.0.1"

    async def running_role(self) -> str | None:
        """The role the local orchestrator port reports on /health ('all', 'orchestrator'), or None."""
        if self._role is None:
            url = f"http://{self.host_of('orchestrator')}:{self.settings.orchestrator_port}/health"
            try:
                response = await self.http.get(url, timeout=min(self.timeout, 3.0))
                self._role = str(response.json().get("role") or "")
            except (httpx.HTTPError, ValueError):
                self._role = ""
        return self._role or None


CheckFn = Callable[[DoctorContext], Awaitable[Outcome]]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check."""

    name: str
    group: str
    run: CheckFn
    on_timeout: str  # the fix to print when it times out


REGISTRY: list[CheckSpec] = []


def check(name: str, group: str, *, on_timeout: str = "") -> Callable[[CheckFn], CheckFn]:
    """Register a check; the report lists checks in registration order."""

    def register(fn: CheckFn) -> CheckFn:
        if any(spec.name == name for spec in REGISTRY):
            raise ValueError(f"doctor check {name!r} registered twice")
        REGISTRY.append(CheckSpec(name, group, fn, on_timeout or "Check the network path to it."))
        return fn

    return register


def http_problem(provider: str, response: httpx.Response) -> str:
    """A short, secret-free description of a failed provider answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict):
        inner = body.get("error") or body.get("detail") or body
        if isinstance(inner, dict):
            message = str(inner.get("message") or inner.get("status") or "")
        elif isinstance(inner, str):
            message = inner
    text = f"{provider} answered HTTP {response.status_code}"
    return f"{text}: {message[:160]}" if message else text


def data_path(settings: Settings) -> str:
    """The directory whose disk the agent writes to (data_dir, or the nearest existing parent)."""
    path = Path(settings.data_dir).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return str(path) if path.exists() else os.getcwd()
