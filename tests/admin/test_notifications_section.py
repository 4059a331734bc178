"""The Notifications section: the owner's number, e-mail and SMTP login are editable; the SMTP
password is stored but never sent back to the browser, and an empty password field keeps it."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from sqlalchemy import select

from phone_agent.storage.tables import AuditEntry, ConfigOverride

JSON = {"Accept": "application/json"}
PASSWORD = "smtp-pass-7f3a9c2e"


def overrides(client: TestClient) -> dict[str, object]:
    async def fetch() -> dict[str, object]:
        async with client.app.state.runtime.sessions() as s:
            return {r.key: r.value for r in (await s.execute(select(ConfigOverride))).scalars()}

    return asyncio.run(fetch())


def audit(client: TestClient) -> list[tuple[str | None, str | None, str | None]]:
    async def fetch() -> list[tuple[str | None, str | None, str | None]]:
        async with client.app.state.runtime.sessions() as s:
            rows = (await s.execute(select(AuditEntry).where(AuditEntry.action == "config.set"))).scalars()
            return [(a.target, a.old_value, a.new_value) for a in rows]

    return asyncio.run(fetch())


def test_notification_settings_are_saved_and_the_password_is_never_shown(
    admin: tuple[TestClient, str],
) -> None:
    client, csrf = admin
    page = client.get("/admin").text
    assert (
        'id="notifications"' in page and 'name="owner_sms_number"' in page and 'name="smtp_password"' in page
    )
    saved = client.post(
        "/admin/settings/notifications",
        data={
            "csrf_token": csrf,
            "owner_sms_number": "(555) 010-0200",
            "owner_email": "owner@example.com",
            "smtp_host": "smtp.example.com",
            "smtp_port": "465",
            "smtp_username": "agent@example.com",
            "smtp_password": PASSWORD,
            "smtp_starttls": "false",
            "notify_channels": "SMS, email",
            "notify_max_per_hour": "5",
        },
        headers=JSON,
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["values"]["owner_sms_number"] == "+15550100200"
    assert body["values"]["notify_channels"] == "sms,email" and body["values"]["smtp_starttls"] is False
    assert PASSWORD not in saved.text and body["values"]["smtp_password"] == "smt…9c2e"
    settings = client.app.state.runtime.current.settings
    assert settings.secret("smtp_password") == PASSWORD and settings.smtp_port == 465
    assert overrides(client)["smtp_password"] == PASSWORD  # the next start reads it back
    assert ("smtp_password", None, "smt…9c2e") in audit(client)

    page = client.get("/admin").text
    assert PASSWORD not in page and 'placeholder="set (smt…9c2e)"' in page
    status = client.get("/admin-status").text
    assert PASSWORD not in status

    # Saving the section again with the password field left empty keeps the password.
    again = client.post(
        "/admin/settings/notifications",
        data={
            "csrf_token": csrf,
            "smtp_password": "",
            "smtp_starttls": "false",
            "smtp_host": "mail.example.com",
        },
        headers=JSON,
    )
    assert again.json()["changed"] == ["smtp_host"]
    assert client.app.state.runtime.current.settings.secret("smtp_password") == PASSWORD


def test_bad_notification_values_are_refused_with_the_reason(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    refused = client.post(
        "/admin/settings/notifications",
        data={"csrf_token": csrf, "owner_email": "not-an-address", "notify_channels": "sms,pager"},
        headers=JSON,
    )
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert (
        "e-mail address" in errors["owner_email"] and "unknown channel 'pager'" in errors["notify_channels"]
    )
    assert overrides(client) == {}
