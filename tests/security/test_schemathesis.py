"""A bounded schemathesis run over ``/openapi.json`` of the whole app, with credentials: no 5xx.

Every operation of every API is fuzzed from its published schema (request bodies, path and query
parameters, numbers at and beyond their bounds) against a served app whose API key, memory-service
token and status token are all one bearer token, so the fuzzer gets past authentication.
``max_examples`` keeps the run well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.api.test_memory import MemoryServiceThread, free_port
from tests.conftest import make_settings

TOKEN = "fuzz-token-sec13-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 8  # per operation, positive and negative cases mixed
BEARER_PREFIXES = ("/v1/", "/memory/", "/health", "/admin-status")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("fuzzed")
    app_settings = make_settings(
        root,
        PHONE_AGENT_API_KEY=TOKEN,
        PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN,
        PHONE_AGENT_ADMIN_STATUS_TOKEN=TOKEN,
        ADMIN_PASSWORD="fuzzing is not logging in",
        OPENAI_API_KEY="sk-unreachable-0123456789",
        PHONE_AGENT_LLM_BASE_URL="http://127.0.0.1:9/v1",  # refused at once: the agent's canned reply
        PHONE_AGENT_OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        PHONE_AGENT_EMBEDDINGS_ENABLED="false",
    )
    server = MemoryServiceThread(app_settings, free_port(), role="all")
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def test_no_operation_answers_5xx(served: str) -> None:
    schema = schemathesis.openapi.from_url(served + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    statuses: list[int] = []
    bearer_ok = (
        0  # 2xx answers of the operations a bearer token opens (admin needs a login, /phone a signature)
    )
    bearer_operations = [op for op in operations if op.path.startswith(BEARER_PREFIXES)]
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.generate],
        )
        def call(case: schemathesis.Case) -> None:
            nonlocal bearer_ok
            response = case.call(headers=AUTH, timeout=20)
            statuses.append(response.status_code)
            bearer_ok += case.operation.path.startswith(BEARER_PREFIXES) and 200 <= response.status_code < 300
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {case.as_curl_command()}\n{response.text[:300]}")

        call()
    assert len(operations) > 30  # every API is in the schema: /v1, the memory API, admin, phone
    assert len(statuses) >= 3 * len(operations)
    assert len(bearer_operations) > 10 and bearer_ok > len(bearer_operations)  # the fuzzer got past auth
    print(f"{len(statuses)} requests over {len(operations)} operations")
    assert not failures, "\n\n".join(failures)
