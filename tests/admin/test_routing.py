"""The admin's Call routing section over HTTP: add (checked), edit, reorder, switch off, delete rules,
"Test a rule", destinations and max call length as settings, the fired rule in the call log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.routing import list_rules
from phone_agent.storage.tables import AuditEntry, Call
from tests.admin.conftest import PASSWORD, log_in
from tests.conftest import make_settings

ENV = {
    "ADMIN_PASSWORD": PASSWORD,
    "PHONE_AGENT_TRANSFER_DESTINATIONS": "Claims=+15550100001; Sales=+15550100002",
    "PHONE_AGENT_BUSINESS_HOURS": "Mon-Fri 09:00-17:00",
    "PHONE_AGENT_EMBEDDINGS_ENABLED": "false",
}


@pytest.fixture
def admin(tmp_path: Path):
    with TestClient(create_app(make_settings(tmp_path, **ENV)), client=("192.0.2.10", 5000)) as client:
        yield client, log_in(client)


def rules(client: TestClient) -> list[tuple[int, str, bool]]:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert client.portal is not None
    rows = client.portal.call(list_rules, runtime.sessions)
    return [(r.position, r.name, r.enabled) for r in rows]


def post(client: TestClient, csrf: str, path: str, **form: str):
    return client.post(path, data={"csrf_token": csrf, **form}, follow_redirects=False)


def test_add_reorder_disable_edit_delete(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    answer = post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Blocked",
        enabled="on",
        numbers="(555) 010-6666\n+15550106667",
        action="reject",
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("#routing")
    post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Press 0",
        enabled="on",
        digit="0",
        action="transfer",
        destination="Sales",
    )
    post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Night",
        enabled="on",
        hours="after_hours",
        action="voicemail",
    )
    assert rules(client) == [(1, "Blocked", True), (2, "Press 0", True), (3, "Night", True)]
    stored = client.get("/admin/api/routing/rules").json()["rules"]
    assert stored[0]["conditions"]["numbers"] == ["+15550106666", "+15550106667"]
    assert stored[1]["action"] == {
        "type": "transfer",
        "destination": "Sales",
        "to": "caller",
        "text": "",
        "tag": "",
    }
    ids = {r["name"]: r["id"] for r in stored}

    post(client, csrf, f"/admin/routing/rules/{ids['Night']}/move", direction="up")
    assert [name for _, name, _ in rules(client)] == ["Blocked", "Night", "Press 0"]
    post(client, csrf, f"/admin/routing/rules/{ids['Blocked']}/move", direction="up")  # already first
    post(client, csrf, f"/admin/routing/rules/{ids['Blocked']}/move", direction="down")
    assert [name for _, name, _ in rules(client)] == ["Night", "Blocked", "Press 0"]
    post(client, csrf, f"/admin/routing/rules/{ids['Night']}/enable", enabled="")
    assert rules(client)[0] == (1, "Night", False)

    page = client.get(f"/admin?edit_rule={ids['Press 0']}")
    assert 'action="/admin/routing/rules/' + str(ids["Press 0"]) + '"' in page.text
    post(
        client,
        csrf,
        f"/admin/routing/rules/{ids['Press 0']}",
        name="Press 9",
        enabled="on",
        digit="9",
        action="transfer",
        destination="Claims",
    )
    edited = client.get("/admin/api/routing/rules").json()["rules"][2]
    assert edited["name"] == "Press 9" and edited["conditions"]["digit"] == "9" and edited["position"] == 3

    post(client, csrf, f"/admin/routing/rules/{ids['Blocked']}/delete")
    assert rules(client) == [(1, "Night", False), (2, "Press 9", True)]
    page = client.get("/admin").text
    assert (
        page.index("Night") < page.index("Press 9") and "presses 9" in page and "transfer to Claims" in page
    )
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def audit() -> list[str]:
        async with runtime.sessions() as session:
            from sqlalchemy import select

            return list(
                (
                    await session.execute(
                        select(AuditEntry.action).where(AuditEntry.action.like("routing.%"))
                    )
                ).scalars()
            )

    assert client.portal is not None
    assert sorted(set(client.portal.call(audit))) == [
        "routing.add",
        "routing.delete",
        "routing.disable",
        "routing.edit",
        "routing.move",
    ]


def test_a_bad_rule_is_refused_with_the_reason_and_kept_in_the_form(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    answer = post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Billing",
        keywords="invoice, bill",
        action="transfer",
        destination="Billing",
    )
    assert answer.status_code == 422
    assert "Nothing was saved: Transfer to which destination? Known: Claims, Sales." in answer.text
    assert 'value="invoice, bill"' in answer.text and rules(client) == []
    answer = post(
        client, csrf, "/admin/routing/rules", name="Odd", numbers="call me maybe", action="voicemail"
    )
    assert (
        answer.status_code == 422 and "numbers: &#39;call me maybe&#39; is not a phone number" in answer.text
    )
    assert post(client, csrf, "/admin/routing/rules/999/delete").status_code == 404
    assert (
        client.post("/admin/routing/rules", data={"name": "x", "action": "voicemail"}).status_code == 403
    )  # no CSRF


def test_test_a_rule(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Blocked",
        enabled="on",
        numbers="+15550106666",
        action="reject",
    )
    post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Night",
        enabled="on",
        hours="after_hours",
        action="voicemail",
    )
    post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Person",
        enabled="on",
        keywords="speak to a person",
        action="transfer",
        destination="Sales",
    )
    post(
        client,
        csrf,
        "/admin/routing/rules",
        name="Zero",
        enabled="on",
        digit="0",
        action="transfer",
        destination="Claims",
    )

    def fired(**query: str) -> list[str]:
        page = client.get("/admin", params=query)
        assert page.status_code == 200
        result = page.text[page.text.index('id="routing-test-result"') :]
        return re.findall(r'class="fired-rule">([^<]+)<', result[: result.index("</div>")])

    # Wednesday 2026-12-02 in New York
    assert fired(rt_when="2026-12-02T10:00", rt_number="+15550106666", rt_text="") == ["Blocked"]
    assert fired(rt_when="2026-12-02T21:00", rt_number="+15550100009", rt_text="hello") == ["Night"]
    assert fired(
        rt_when="2026-12-02T10:00", rt_number="(555) 010-0009", rt_text="Can I speak to a person?"
    ) == ["Person"]
    assert fired(rt_when="2026-12-02T10:00", rt_number="+15550100009", rt_text="", rt_digit="0") == ["Zero"]
    none = client.get(
        "/admin", params={"rt_when": "2026-12-02T10:00", "rt_number": "+15550100009", "rt_text": "hi"}
    )
    assert "No rule fires: the agent takes the call." in none.text
    bad = client.get("/admin", params={"rt_when": "yesterday", "rt_number": "", "rt_text": ""})
    assert "Give the time as YYYY-MM-DD HH:MM." in bad.text


def test_routing_settings_and_the_call_log(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    answer = client.post(
        "/admin/settings/routing",
        data={
            "csrf_token": csrf,
            "max_call_seconds": "600",
            "closed_days": "2026-12-25",
            "transfer_destinations": "Claims=+15550100001; Sales=+15550100002; Sales=+15550100003",
        },
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 422 and "listed twice" in answer.json()["errors"]["transfer_destinations"]
    answer = client.post(
        "/admin/settings/routing",
        data={"csrf_token": csrf, "max_call_seconds": "600", "max_call_action": "hang_up"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert (
        runtime.current.settings.max_call_seconds == 600
        and runtime.current.settings.max_call_action == "hang_up"
    )

    async def calls() -> None:
        from datetime import UTC, datetime

        async with transaction(runtime.sessions) as session:
            now = datetime.now(UTC)
            session.add(
                Call(
                    call_sid="CA-routed",
                    from_number="+15550106666",
                    status="completed",
                    started_at=now,
                    ended_at=now,
                    routing_rule="Blocked",
                    tags=["spam"],
                    routing_events=[
                        {
                            "rule_id": 1,
                            "name": "Blocked",
                            "action": "reject",
                            "stage": "incoming",
                            "detail": "caller +15550106666 at Wed 10:00",
                        }
                    ],
                )
            )
            session.add(
                Call(
                    call_sid="CA-plain",
                    from_number="+15550100009",
                    status="completed",
                    started_at=now,
                    ended_at=now,
                )
            )

    assert client.portal is not None
    client.portal.call(calls)
    log = client.get("/admin").text
    log = log[log.index('id="call-log"') :]
    assert re.search(r'class="routing-rule">Blocked <span class="tag">spam</span>', log)
    assert 'class="routing-rule">none' in log
    assert client.get("/admin/api/calls").json()["log"][0]["routing_rule"] in ("Blocked", None)
    detail = client.get("/admin/calls/CA-routed").text
    assert "<strong>Blocked</strong> (reject, incoming: caller +15550106666 at Wed 10:00)" in detail
