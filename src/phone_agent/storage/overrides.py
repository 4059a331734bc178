"""Admin overrides (the strongest config layer) and the audit log."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.config import Settings, shown_value
from phone_agent.storage.tables import AuditEntry, ConfigOverride


async def load_overrides(session: AsyncSession) -> dict[str, Any]:
    """All admin overrides as {setting: value}."""
    rows = (await session.execute(select(ConfigOverride))).scalars()
    return {row.key: row.value for row in rows}


def _shown(name: str, value: Any) -> str | None:
    shown = shown_value(name, value)
    if shown is None:
        return None
    return shown if isinstance(shown, str) else json.dumps(shown)


async def save_overrides(
    session: AsyncSession, settings: Settings, changes: dict[str, Any], *, actor: str
) -> Settings:
    """Validate changes with the Settings rules, store them and audit old → new (secrets masked).

    Returns the new Settings. Raises ConfigError (nothing stored) when a value is invalid.
    """
    new_settings = settings.with_overrides(changes)
    for name, value in changes.items():
        old = getattr(settings, name)
        old_plain = old.get_secret_value() if hasattr(old, "get_secret_value") else old
        row = await session.get(ConfigOverride, name)
        if row is None:
            session.add(ConfigOverride(key=name, value=value, updated_by=actor))
        else:
            row.value = value
            row.updated_by = actor
        session.add(
            AuditEntry(
                actor=actor,
                action="config.set",
                target=name,
                old_value=_shown(name, old_plain),
                new_value=_shown(name, value),
            )
        )
    return new_settings


async def clear_override(session: AsyncSession, settings: Settings, name: str, *, actor: str) -> None:
    """Remove an override so the value falls back to env/config.json/default."""
    row = await session.get(ConfigOverride, name)
    if row is not None:
        session.add(
            AuditEntry(
                actor=actor,
                action="config.reset",
                target=name,
                old_value=_shown(name, row.value),
                new_value=None,
            )
        )
        await session.delete(row)
