"""Doctor checks of the host: disk, CPU load, memory, process limits, recent errors in the log file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
from datetime import datetime, timedelta
from pathlib import Path

import psutil

from phone_agent.ops.doctor.model import DoctorContext, Outcome, Status, check, data_path, fail, ok, warn

MB_PER_CALL = 50  # measured RSS per concurrent call (REFERENCES.md: ≈720 MB at 10 calls)


def graded(
    value: float, warn_at: float, fail_at: float, *, low_is_bad: bool, detail: str, fix: str
) -> Outcome:
    """pass / warn / fail by comparing ``value`` with two thresholds."""
    if low_is_bad:
        status: Status = "fail" if value < fail_at else "warn" if value < warn_at else "pass"
    else:
        status = "fail" if value > fail_at else "warn" if value > warn_at else "pass"
    return Outcome(status, detail, None if status == "pass" else fix)


@check("host.disk", "host")
async def host_disk(ctx: DoctorContext) -> Outcome:
    """Free space on the disk holding data_dir."""
    path = data_path(ctx.settings)
    usage = await asyncio.to_thread(psutil.disk_usage, path)
    free_pct = 100.0 - usage.percent
    t = ctx.thresholds
    detail = f"{free_pct:.0f}% free ({usage.free / 2**30:.1f} GiB) on the disk of {path}"
    fix = "Free space: old logs (journalctl --vacuum-size=200M), docker images, database backups."
    return graded(
        free_pct, t.disk_warn_free_pct, t.disk_fail_free_pct, low_is_bad=True, detail=detail, fix=fix
    )


@check("host.cpu", "host")
async def host_cpu(ctx: DoctorContext) -> Outcome:
    """5-minute load average per core."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[1]
    per_core = load / cores
    t = ctx.thresholds
    detail = f"load {load:.2f} over 5 min on {cores} cores ({per_core:.2f} per core)"
    fix = "Calls get slow when the CPU is saturated: find the busy process (top) or add cores."
    return graded(
        per_core, t.load_warn_per_core, t.load_fail_per_core, low_is_bad=False, detail=detail, fix=fix
    )


@check("host.memory", "host")
async def host_memory(ctx: DoctorContext) -> Outcome:
    """Available memory, and roughly how many more concurrent calls it holds."""
    memory = psutil.virtual_memory()
    available_pct = 100.0 * memory.available / memory.total
    t = ctx.thresholds
    calls = int(memory.available / 2**20 / MB_PER_CALL)
    detail = (
        f"{available_pct:.0f}% available ({memory.available / 2**30:.1f} of {memory.total / 2**30:.1f} GiB,"
        f" room for ≈{calls} more concurrent calls at ≈{MB_PER_CALL} MB each)"
    )
    fix = "Add memory or swap, or lower the number of concurrent calls per voice-bridge process."
    return graded(
        available_pct,
        t.memory_warn_available_pct,
        t.memory_fail_available_pct,
        low_is_bad=True,
        detail=detail,
        fix=fix,
    )


@check("process.limits", "host")
async def process_limits(ctx: DoctorContext) -> Outcome:
    """Open-file limit (every call holds several sockets) and worker processes per core."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    cores = os.cpu_count() or 1
    t = ctx.thresholds
    detail = f"open-files limit {limit}; {cores} cores (each role process uses one core)"
    fix = (
        "Raise the limit: LimitNOFILE=65536 in the systemd unit (deploy/systemd), ulimits.nofile in "
        "docker-compose, or `ulimit -n 65536` before `phone-agent serve`."
    )
    return graded(limit, t.open_files_warn, t.open_files_fail, low_is_bad=True, detail=detail, fix=fix)


TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)? \| (\w+)\s*\|")
ERROR_LEVELS = {"ERROR", "CRITICAL"}
TAIL_BYTES = 8 * 2**20


def count_recent_errors(path: Path, since: datetime) -> int | None:
    """ERROR/CRITICAL lines newer than ``since`` (local time) in a text or JSON-lines log file.

    Returns None when the file does not exist.
    """
    if not path.exists():
        return None
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - TAIL_BYTES))
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    count = 0
    for line in lines:
        if line.startswith("{"):
            try:
                record = json.loads(line)["record"]
                level = record["level"]["name"]
                at = datetime.fromtimestamp(record["time"]["timestamp"])
            except (ValueError, KeyError, TypeError):
                continue
        else:
            match = TEXT_LINE.match(line)
            if match is None:
                continue
            at, level = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S"), match[2]
        if level in ERROR_LEVELS and at >= since:
            count += 1
    return count


@check("logs.errors", "host")
async def log_errors(ctx: DoctorContext) -> Outcome:
    """Number of ERROR lines in the log file over the last day."""
    log_file = ctx.settings.log_file
    if not log_file:
        return ok("log_file is not set: logs go to stderr / the journal (journalctl -u 'phone-agent-*')")
    path = Path(log_file)
    t = ctx.thresholds
    since = datetime.now() - timedelta(hours=t.log_window_hours)
    errors = await asyncio.to_thread(count_recent_errors, path, since)
    if errors is None:
        return warn(f"{path} does not exist yet", "Start the agent once, or fix log_file.")
    detail = f"{errors} error line(s) in {path} over the last {t.log_window_hours:g} h"
    fix = f"Read them: grep -E '\\| (ERROR|CRITICAL)' {path} | tail"
    if errors >= t.log_errors_fail:
        return fail(detail, fix)
    return warn(detail, fix) if errors else ok(detail)
