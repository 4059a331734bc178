"""What routing rules cost at ``/phone/incoming``: answer time with no rules, with 20 rules none of
which fires (the call gets its stream), and with 20 rules the last of which rejects the call.

    .venv/bin/python -m bench.routing [--calls 200]

In-process (Starlette's TestClient, embedded SQLite in a temporary directory), signed webhooks;
prints p50/p95 in ms and the load average. Figures only: nothing passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.brain.routing.rules import check_rule
from phone_agent.config import load_settings
from phone_agent.storage.routing import add_rule

TOKEN = "bench-auth-token"
PUBLIC = "https://agent.example.com"


def _client(directory: Path) -> TestClient:
    (directory / "config.json").write_text("{}")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory}/bench.db",
        "PHONE_AGENT_DATA_DIR": str(directory),
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_URL": PUBLIC,
        "PHONE_AGENT_SESSION_SECRET": "bench-secret",
        "OPENAI_API_KEY": "sk-bench",
        "ELEVENLABS_API_KEY": "xi-bench",
        "PHONE_AGENT_TRANSFER_DESTINATIONS": "Claims=+15550100001",
    }
    return TestClient(create_app(load_settings(env, config_path=directory / "config.json")))


def _add_rules(client: TestClient, count: int, last_rejects: bool) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    settings = runtime.current.settings
    for index in range(count):
        final = index == count - 1
        conditions = (
            {"numbers": ["+15550199999"]} if final and last_rejects else {"prefixes": [f"+4{index % 10}"]}
        )
        action = (
            {"type": "reject"} if final and last_rejects else {"type": "transfer", "destination": "Claims"}
        )
        checked, act = check_rule(settings, name=f"rule {index}", conditions=conditions, action=action)
        client.portal.call(  # type: ignore[union-attr]
            lambda c=checked, a=act, i=index: add_rule(
                runtime.sessions, name=f"rule {i}", conditions=c.model_dump(), action=a.model_dump()
            )
        )


def _ring(client: TestClient, calls: int, caller: str, first: int = 0) -> list[float]:
    timings = []
    for index in range(first, first + calls):  # a fresh CallSid each (a repeat is a retried webhook)
        form = {"CallSid": f"CA{index:032d}", "From": caller, "To": "+15005550006"}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/phone/incoming", form)
        start = time.perf_counter()
        answer = client.post("/phone/incoming", data=form, headers={"X-Twilio-Signature": signature})
        timings.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.text
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    calls = parser.parse_args().calls
    for label, rules, caller, last_rejects in (
        ("no rules", 0, "+15550100009", False),
        ("20 rules, none fires", 20, "+15550100009", False),
        ("20 rules, the last rejects", 20, "+15550199999", True),
    ):
        with tempfile.TemporaryDirectory() as directory, _client(Path(directory)) as client:
            _add_rules(client, rules, last_rejects)
            _ring(client, 10, caller)  # warm up (first queries, templates)
            timings = sorted(_ring(client, calls, caller, first=10))
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(f"/phone/incoming, {label:28s}: p50 {statistics.median(timings):6.1f} ms  p95 {p95:6.1f} ms")
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
