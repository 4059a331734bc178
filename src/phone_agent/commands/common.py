"""What every command shares: the consoles, one-paragraph errors, loading Settings, a command's Services."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from phone_agent.errors import ConfigError

if TYPE_CHECKING:
    from phone_agent.config import Settings
    from phone_agent.services import Services

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-paragraph error (no traceback) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    """Load Settings from config.json + env; a bad config exits 2 with a clear message."""
    from phone_agent.config import load_settings

    try:
        return load_settings(os.environ)
    except ConfigError as exc:
        raise fail(str(exc)) from None


async def settings_with_overrides(settings: Settings) -> Settings:
    """Settings plus the admin overrides stored in the database (if it exists and is migrated)."""
    from phone_agent.runtime import Runtime

    runtime = Runtime.create(settings, "all", os.environ)
    try:
        return await runtime.apply_overrides()
    except Exception:  # no database yet: show what config.json + env give
        return settings
    finally:
        await runtime.close()


@asynccontextmanager
async def command_services(settings: Settings, *, migrate: bool | None = None) -> AsyncIterator[Services]:
    """The Services a command runs on: the settings plus the admin's overrides.

    ``migrate``: apply migrations first (default: only on the embedded SQLite database; PostgreSQL
    is migrated with ``phone-agent db upgrade``).
    """
    from phone_agent.runtime import Runtime
    from phone_agent.storage.db import is_sqlite
    from phone_agent.storage.migrate import upgrade

    runtime = Runtime.create(settings, "all", os.environ)
    try:
        if is_sqlite(settings.database_url) if migrate is None else migrate:
            await upgrade(runtime.engine)
        try:
            await runtime.apply_overrides()
        except Exception:  # noqa: BLE001 - an unmigrated database: run on config.json + env
            pass
        async with runtime.use() as services:
            yield services
    finally:
        await runtime.close()
