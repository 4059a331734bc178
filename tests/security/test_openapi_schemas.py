"""Finding 12 (part): the request bodies of ``/v1/*`` and the memory API are in ``/openapi.json``.

``/v1`` parsed its bodies by hand, so the published schema showed no request body at all and
clients and fuzzers could not see what to send. Every JSON route of both APIs now declares it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.conftest import make_settings

JSON_BODIES = {
    ("post", "/v1/chat"): {"caller", "message"},
    ("post", "/v1/chat/completions"): {"model", "messages"},
    ("post", "/memory/store"): {"phone"},
    ("post", "/memory/retrieve"): {"query"},
    ("post", "/memory/purge"): set(),
    ("post", "/knowledge/search"): {"query"},
    ("post", "/knowledge/documents"): {"title", "text"},
}


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def test_json_request_bodies_are_published(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        spec = client.get("/openapi.json").json()
    for (method, path), required in JSON_BODIES.items():
        operation = spec["paths"][path][method]
        body = operation.get("requestBody")
        assert body is not None, f"{method.upper()} {path} publishes no request body"
        schema = resolve(spec, body["content"]["application/json"]["schema"])
        assert set(schema.get("required", [])) == required, path
        assert schema["properties"], path


def test_numeric_fields_carry_their_bounds(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        spec = client.get("/openapi.json").json()
    completions = resolve(spec, {"$ref": "#/components/schemas/ChatCompletionRequest"})
    temperature = completions["properties"]["temperature"]["anyOf"][0]
    assert (temperature["minimum"], temperature["maximum"]) == (0, 2)
    purge = resolve(spec, {"$ref": "#/components/schemas/PurgeRequest"})
    assert purge["properties"]["days"]["anyOf"][0]["maximum"] == 36_500
    delete = spec["paths"]["/knowledge/documents/{document_id}"]["delete"]["parameters"][0]["schema"]
    assert (delete["minimum"], delete["maximum"]) == (1, 2**63 - 1)
