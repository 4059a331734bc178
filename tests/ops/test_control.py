"""The control bus: call commands and config changes cross processes through the machine's Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from phone_agent.admin.settings_form import reset_setting, save_section
from phone_agent.ops.control import ControlBus
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from tests.conftest import make_settings

REDIS = "redis://127.0.0.1:6379/0"


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_call_command_reaches_the_other_process_bus() -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"  # other test runs share this Redis
    orchestrator = ControlBus(redis_url=REDIS, channel_prefix=prefix)
    voice_bridge = ControlBus(redis_url=REDIS, channel_prefix=prefix)
    received: list[tuple[str, str, dict[str, Any]]] = []

    async def hold_call(call_sid: str, action: str, params: dict[str, Any]) -> None:
        received.append((call_sid, action, params))

    voice_bridge.on_call_command(hold_call)
    await orchestrator.start()
    await voice_bridge.start()
    try:
        assert orchestrator.distributed
        receivers = await orchestrator.send_call_command("CA123", "transfer", to="+15550001111")
        await wait_for(lambda: received)
    finally:
        await orchestrator.close()
        await voice_bridge.close()
    assert receivers == 2  # both processes' buses are subscribed
    assert received == [("CA123", "transfer", {"to": "+15550001111"})]


async def test_without_redis_commands_are_delivered_in_process() -> None:
    bus = ControlBus()
    seen: list[str] = []

    async def broken(call_sid: str, action: str, params: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    async def audit(call_sid: str, action: str, params: dict[str, Any]) -> None:
        seen.append(f"audit {action}:{call_sid}")

    async def live_call(action: str, params: dict[str, Any]) -> None:
        seen.append(f"call {action} {params}")

    bus.on_call_command(broken)
    bus.on_call_command(audit)
    await bus.start()
    with bus.hold_call("CA9", live_call):
        assert bus.held_calls() == ["CA9"]
        assert await bus.send_call_command("CA9", "hangup", reason="admin") == 3
        assert await bus.send_call_command("CA-other", "hangup") == 2  # nobody holds that call here
    assert bus.held_calls() == []
    await bus.send_call_command("CA9", "hangup")  # the call ended: only the audit handler sees it
    await bus.close()
    assert seen == [
        "audit hangup:CA9",
        "call hangup {'reason': 'admin'}",
        "audit hangup:CA-other",
        "audit hangup:CA9",
    ]  # a failing handler does not stop the others


async def test_held_call_receives_commands_from_another_process() -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    orchestrator = ControlBus(redis_url=REDIS, channel_prefix=prefix)
    bridge = ControlBus(redis_url=REDIS, channel_prefix=prefix)
    got: list[tuple[str, dict[str, Any]]] = []

    async def live_call(action: str, params: dict[str, Any]) -> None:
        got.append((action, params))

    await orchestrator.start()
    await bridge.start()
    try:
        with bridge.hold_call("CA77", live_call):
            await orchestrator.send_call_command("CA77", "hangup", reason="admin")
            await wait_for(lambda: got)
    finally:
        await orchestrator.close()
        await bridge.close()
    assert got == [("hangup", {"reason": "admin"})]


async def test_admin_change_fans_out_to_other_runtimes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, REDIS_URL=REDIS)
    admin, bridge = Runtime.create(settings, "orchestrator"), Runtime.create(settings, "voice-bridge")
    await upgrade(admin.engine)
    await admin.start()
    await bridge.start()
    bus_a = admin.bus
    reloads: list[dict[str, Any]] = []

    async def seen(info: dict[str, Any]) -> None:
        reloads.append(info)

    bus_a.on_config_change(seen)  # the saving process already applied it: it gets no echo
    try:
        changed = await save_section(admin, "personality", {"agent_name": "Nova"}, actor="test")
        assert changed == ["agent_name"] and admin.current.settings.agent_name == "Nova"
        await wait_for(lambda: bridge.current.settings.agent_name == "Nova")
        assert bridge.current.settings.source_of("agent_name") == "admin"
        await reset_setting(admin, "agent_name", actor="test")
        await wait_for(lambda: bridge.current.settings.agent_name == "Ava")
    finally:
        await admin.close()
        await bridge.close()
    assert reloads == []


async def test_config_change_without_redis_stays_local(tmp_path: Path) -> None:
    runtime = Runtime.create(make_settings(tmp_path), "all")
    await upgrade(runtime.engine)
    await runtime.start()
    try:
        assert not runtime.bus.distributed
        await save_section(runtime, "personality", {"business_name": "Nova Dental"}, actor="test")
        assert runtime.current.settings.business_name == "Nova Dental"  # applied in-process, no bus needed
    finally:
        await runtime.close()
