"""deploy/: docker-compose.yml (parsed: Docker cannot run here), the Dockerfile, the systemd units
(checked by `systemd-analyze verify`), all consistent with config-internal.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ROLES = ("orchestrator", "voice-bridge", "memory")


def internal_ports() -> dict[str, int]:
    services = json.loads((ROOT / "config-internal.json").read_text())["services"]
    return {s["name"]: s["port"] for s in services}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_services_healthchecks_and_ports() -> None:
    services = compose()["services"]
    ports = internal_ports()
    assert set(services) == {*ROLES, "migrate", "postgres", "redis", "nginx", "certbot"}
    for role in ROLES:
        service = services[role]
        port = ports[role]
        assert service["command"] == ["serve", "--role", role, "--port", str(port)]
        assert service["expose"] == [str(port)]
        assert service["environment"]["PORT"] == str(port)
        assert f"http://127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])
        assert service["restart"] == "unless-stopped"
        assert service["ulimits"]["nofile"]["soft"] >= 65536
        assert service["deploy"]["resources"]["limits"]["memory"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = service["environment"]
        assert env["PHONE_AGENT_ORCHESTRATOR_PORT"] == str(ports["orchestrator"])
        assert env["PHONE_AGENT_VOICE_BRIDGE_PORT"] == str(ports["voice-bridge"])
        assert env["PHONE_AGENT_MEMORY_PORT"] == str(ports["memory"])
        assert env["PHONE_AGENT_MEMORY_URL"] == f"http://memory:{ports['memory']}"
        assert env["REDIS_URL"] == f"redis://redis:{ports['redis']}/0"
        assert f"@postgres:{ports['postgres']}/" in env["DATABASE_URL"]
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["postgres"]["expose"] == [str(ports["postgres"])]
    assert services["redis"]["expose"] == [str(ports["redis"])]
    for name in ("postgres", "redis", "nginx", "certbot"):
        assert services[name]["healthcheck"]["test"], name
    nginx = services["nginx"]
    assert nginx["ports"] == ["80:80", "443:443"]  # the only published ports
    assert all("ports" not in services[n] for n in services if n != "nginx")
    assert nginx["environment"]["ORCHESTRATOR_ADDR"] == f"orchestrator:{ports['orchestrator']}"
    assert nginx["environment"]["VOICE_BRIDGE_ADDR"] == f"voice-bridge:{ports['voice-bridge']}"
    assert "./nginx.conf:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    # every variable the template uses is provided (and only those are substituted)
    template_vars = set(re.findall(r"\$\{(\w+)\}", (DEPLOY / "nginx.conf").read_text()))
    assert template_vars == set(nginx["environment"]) - {"NGINX_ENVSUBST_FILTER"}
    filtered = re.match(r"\^\((.*)\)\$", nginx["environment"]["NGINX_ENVSUBST_FILTER"].rstrip("$") + "$")
    assert filtered and set(filtered[1].split("|")) == template_vars
    assert "certbot renew" in " ".join(services["certbot"]["entrypoint"])


def test_dockerfile_is_multi_stage_and_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, flags=re.M)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert "COPY --from=build /opt/phone-agent/.venv /opt/phone-agent/.venv" in text
    assert re.search(r"^USER phone-agent$", text, flags=re.M)
    assert "HEALTHCHECK" in text and 'ENTRYPOINT ["phone-agent"]' in text
    ports = internal_ports()
    exposed = re.search(r"^EXPOSE (.+)$", text, flags=re.M)
    assert exposed and set(exposed[1].split()) == {str(ports[r]) for r in ROLES}
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignore and ".git" in ignore


UNITS = [f"phone-agent-{role}.service" for role in ROLES] + ["phone-agent-voice-bridge@.service"]


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit(name: str, tmp_path: Path) -> None:
    unit = DEPLOY / "systemd" / name
    role = name.removeprefix("phone-agent-").split(".")[0].rstrip("@")
    text = unit.read_text()
    fields = dict(re.findall(r"^(\w+)=(.*)$", text, flags=re.M))
    port = " --port %i" if "@" in name else ""
    assert fields["ExecStart"].endswith(f"phone-agent serve --role {role} --host 127.0.0.1{port}")
    assert fields["Restart"] == "always" and fields["RestartSec"]
    assert int(fields["LimitNOFILE"]) >= 65536
    assert fields["MemoryMax"] and fields["CPUQuota"] and fields["TasksMax"]
    assert fields["User"] == "phone-agent" and fields["NoNewPrivileges"] == "true"
    assert fields["StateDirectory"] == "phone-agent" and fields["ProtectSystem"] == "strict"
    assert fields["EnvironmentFile"] == "/etc/phone-agent/phone-agent.env"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify with the ExecStart pointed at this checkout's executable (the unit's path is the install's)
    local = tmp_path / unit.name.replace("@.", "@9101.")  # a template is verified as an instance
    local.write_text(
        text.replace(
            "/opt/phone-agent/.venv/bin/phone-agent", str(Path(sys.executable).parent / "phone-agent")
        )
    )
    result = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert local.name not in result.stderr, result.stderr  # systemd names the file in every complaint


@pytest.mark.parametrize("role", ROLES)
def test_config_internal_routes_are_served_by_the_role(role: str) -> None:
    from phone_agent.app import routers_for

    service = next(
        s for s in json.loads((ROOT / "config-internal.json").read_text())["services"] if s["name"] == role
    )
    paths = {getattr(route, "path", "") for router in routers_for(role) for route in router.routes}
    for served in service["serves"]:
        if served.endswith("/*"):
            assert any(p.startswith(served[:-1]) for p in paths), (role, served, sorted(paths))
        else:
            assert served in paths, (role, served, sorted(paths))
