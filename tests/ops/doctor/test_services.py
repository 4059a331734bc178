"""Doctor checks of the database, migrations, memory service, Redis and the roles' ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from phone_agent.app import create_app
from phone_agent.config import Settings
from phone_agent.ops.doctor import Check, run_doctor
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from tests.conftest import make_settings
from tests.ops.servers import AppServer, free_port

REDIS = "redis://127.0.0.1:6379/0"


async def checks(settings: Settings, *names: str, wait: float = 5.0, **ctx: object) -> dict[str, Check]:
    report = await run_doctor(settings, check_timeout=wait, only=list(names), **ctx)
    return {c.name: c for c in report.checks}


async def test_database_and_migrations_on_both_backends(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url)
    empty = await checks(settings, "storage")
    assert empty["database"].status == "pass", empty
    assert empty["migrations"].status == "fail"
    assert "phone-agent db upgrade" in (empty["migrations"].fix or "")
    runtime = Runtime.create(settings, "all")
    try:
        await upgrade(runtime.engine)
        current = await checks(settings, "storage", engine=runtime.engine)
    finally:
        await runtime.close()
    assert current["migrations"].status == "pass", current
    assert current["migrations"].detail.startswith("schema at ")


async def test_database_unreachable_fails(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://nobody:secret-pw@127.0.0.1:{free_port()}/nothing"
    result = await checks(make_settings(tmp_path, DATABASE_URL=url), "database")
    assert result["database"].status == "fail"
    assert "unreachable" in result["database"].detail and "secret-pw" not in result["database"].detail


@pytest.fixture
def memory_service(tmp_path: Path) -> Iterator[AppServer]:
    """The real memory role app on loopback."""
    (tmp_path / "mem").mkdir()
    app = create_app(make_settings(tmp_path / "mem"), "memory")
    with AppServer(app) as server:
        yield server


async def test_memory_service_health(tmp_path: Path, memory_service: AppServer) -> None:
    up = make_settings(tmp_path, PHONE_AGENT_MEMORY_BACKEND="http", PHONE_AGENT_MEMORY_URL=memory_service.url)
    result = await checks(up, "memory.service")
    assert result["memory.service"].status == "pass", result
    down = make_settings(
        tmp_path, PHONE_AGENT_MEMORY_BACKEND="http", PHONE_AGENT_MEMORY_URL=f"http://127.0.0.1:{free_port()}"
    )
    assert (await checks(down, "memory.service"))["memory.service"].status == "fail"
    memory_service.hang_next()
    slow = await checks(up, "memory.service", wait=1.0)
    assert slow["memory.service"].status == "fail" and "no answer" in slow["memory.service"].detail
    local = await checks(make_settings(tmp_path), "memory.service")
    assert local["memory.service"].status == "pass" and "in-process" in local["memory.service"].detail


async def test_redis_reachable_unreachable_and_unset(tmp_path: Path) -> None:
    good = await checks(make_settings(tmp_path, REDIS_URL=REDIS), "redis")
    assert good["redis"].status == "pass" and "answers PING" in good["redis"].detail
    bad = await checks(make_settings(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), "redis")
    assert bad["redis"].status == "fail" and "REDIS_URL" in (bad["redis"].fix or "")
    unset = await checks(make_settings(tmp_path), "redis")
    assert unset["redis"].status == "pass"


def ports_env(orchestrator: int, voice: int, memory: int) -> dict[str, str]:
    return {
        "PHONE_AGENT_ORCHESTRATOR_PORT": str(orchestrator),
        "PHONE_AGENT_VOICE_BRIDGE_PORT": str(voice),
        "PHONE_AGENT_MEMORY_PORT": str(memory),
    }


async def test_ports_listening_and_closed(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        settings = make_settings(tmp_path, **ports_env(open_port, open_port, open_port))
        up = await checks(settings, "ports")
    assert up["ports.orchestrator"].status == "pass" and up["ports.voice-bridge"].status == "pass"
    closed = free_port()
    down = await checks(make_settings(tmp_path, **ports_env(closed, closed, closed)), "ports")
    assert down["ports.orchestrator"].status == "fail"
    assert down["ports.voice-bridge"].status == "warn"


async def test_split_orchestrator_without_voice_bridge_fails(tmp_path: Path) -> None:
    orchestrator = create_app(make_settings(tmp_path), "orchestrator")
    with AppServer(orchestrator) as server:
        settings = make_settings(tmp_path, **ports_env(server.port, free_port(), free_port()))
        result = await checks(settings, "ports", "redis")
    assert result["ports.orchestrator"].status == "pass"
    assert result["ports.voice-bridge"].status == "fail"
    assert "phone-agent-voice-bridge" in (result["ports.voice-bridge"].fix or "")
    assert result["redis"].status == "warn"  # split roles without Redis cannot control live calls


async def test_all_in_one_process_serves_every_port(tmp_path: Path) -> None:
    everything = create_app(make_settings(tmp_path), "all")
    with AppServer(everything) as server:
        settings = make_settings(tmp_path, **ports_env(server.port, free_port(), free_port()))
        result = await checks(settings, "ports")
    assert result["ports.voice-bridge"].status == "pass"
    assert "all-in-one" in result["ports.voice-bridge"].detail


async def test_ports_probed_where_each_role_runs(tmp_path: Path) -> None:
    with socket.socket() as listener:  # a role on another host (127.0.0.2 stands in for a container)
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = ports_env(free_port(), port, port) | {
            "PHONE_AGENT_MEMORY_BACKEND": "http",
            "PHONE_AGENT_MEMORY_URL": f"http://127.0.0.2:{port}",
        }
        settings = make_settings(tmp_path, **env)
        local = await checks(settings, "ports.voice-bridge", "ports.memory")
        remote = await checks(settings, "ports.voice-bridge", role_hosts={"voice-bridge": "127.0.0.2"})
    assert local["ports.voice-bridge"].status == "warn"  # nothing on 127.0.0.1
    assert local["ports.memory"].status == "pass"  # the memory_url host is probed
    assert local["ports.memory"].detail == f"memory listening on 127.0.0.2:{port}"
    assert remote["ports.voice-bridge"].status == "pass"
    assert remote["ports.voice-bridge"].detail == f"voice-bridge listening on 127.0.0.2:{port}"
