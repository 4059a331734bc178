"""Render deploy/nginx.conf for loopback (ephemeral ports, a self-signed certificate) and run nginx
unprivileged under a temporary prefix, alone (``running``) or in front of the orchestrator and voice
bridge roles (``roles_behind_nginx``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from phone_agent.app import create_app
from phone_agent.config import Settings
from tests.ops.servers import free_port, self_signed
from tests.running_agent import serve

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx.conf"
VARIABLES = (
    "DOMAIN",
    "ORCHESTRATOR_ADDR",
    "VOICE_BRIDGE_ADDR",
    "HTTP_PORT",
    "HTTPS_PORT",
    "CERT_DIR",
    "ACME_ROOT",
)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render(values: dict[str, str], template: Path = TEMPLATE) -> str:
    """envsubst with only our variables, as the docs and the nginx image do it."""
    assert set(values) == set(VARIABLES)
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    config_lines = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    leftover = re.findall(r"\$\{\w+\}", config_lines)
    assert not leftover, f"unrendered variables: {leftover}"
    return text


def main_config(prefix: Path, site: Path) -> str:
    """A whole nginx.conf around the site file: every path inside ``prefix``."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temp dirs we made
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n    access_log {prefix}/access.log;\n{temp}\n    include {site};\n}}\n"
    )


@dataclass
class Nginx:
    """A configured (and maybe running) nginx on loopback."""

    prefix: Path
    conf: Path
    cert: Path
    http_port: int
    https_port: int

    @property
    def https(self) -> str:
        return f"https://localhost:{self.https_port}"

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NGINX, "-t", "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "error.log")],
            capture_output=True,
            text=True,
            timeout=30,
        )


def configure(
    tmp: Path, orchestrator: str, voice_bridge: str, *, http_port: int = 0, https_port: int = 0
) -> Nginx:
    """Write the rendered site + main config with a fresh self-signed certificate for localhost."""
    prefix = tmp / "nginx"
    certs = prefix / "certs"
    certs.mkdir(parents=True)
    cert, key = self_signed(certs, days=30)
    cert.rename(certs / "fullchain.pem")
    key.rename(certs / "privkey.pem")
    http_port, https_port = http_port or free_port(), https_port or free_port()
    site = prefix / "phone-agent.conf"
    site.write_text(
        render(
            {
                "DOMAIN": "localhost",
                "ORCHESTRATOR_ADDR": orchestrator,
                "VOICE_BRIDGE_ADDR": voice_bridge,
                "HTTP_PORT": f"127.0.0.1:{http_port}",
                "HTTPS_PORT": f"127.0.0.1:{https_port}",
                "CERT_DIR": str(certs),
                "ACME_ROOT": str(prefix / "acme"),
            }
        )
    )
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site))
    return Nginx(prefix, conf, certs / "fullchain.pem", http_port, https_port)


@contextmanager
def running(nginx: Nginx) -> Iterator[Nginx]:
    """Run nginx in the foreground (a child process we stop ourselves)."""
    with subprocess.Popen(
        [
            NGINX,
            "-p",
            str(nginx.prefix),
            "-c",
            str(nginx.conf),
            "-e",
            str(nginx.prefix / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:  # its pipe is closed on exit
        try:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, (nginx.prefix / "error.log").read_text()
                try:
                    httpx.get(f"http://127.0.0.1:{nginx.http_port}/", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "nginx did not start listening"
                    time.sleep(0.05)
            yield nginx
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def roles_behind_nginx(
    tmp: Path, settings: Settings, *, http_port: int = 0, https_port: int = 0
) -> Iterator[Nginx]:
    """The orchestrator and voice-bridge roles of ``settings`` served in this process, nginx in front.

    Pass ``https_port`` when the settings must know it first (``PUBLIC_URL``).
    """
    with (
        serve(create_app(settings, "orchestrator")) as orchestrator,
        serve(create_app(settings, "voice-bridge")) as bridge,
    ):
        nginx = configure(
            tmp,
            orchestrator.removeprefix("ws://"),
            bridge.removeprefix("ws://"),
            http_port=http_port,
            https_port=https_port,
        )
        with running(nginx):
            yield nginx
