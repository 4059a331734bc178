"""FakeOpenAI's structured output driven by the official SDK: schema instances, strict-schema 400s."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.fakes.openai import FakeOpenAI

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "outcome": {"type": "string", "enum": ["answered", "spam"]},
        "name": {"type": ["string", "null"]},
        "facts": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "outcome", "name", "facts"],
    "additionalProperties": False,
}


def schema_format(schema: dict[str, Any], *, name: str = "review", strict: bool = True) -> Any:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": strict, "schema": schema}}


async def ask(fake: FakeOpenAI, response_format: Any, text: str = "Hi, it's Dana.") -> str:
    async with openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.url + "/v1", max_retries=0) as client:
        response = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], response_format=response_format
        )
    return response.choices[0].message.content or ""


async def test_an_unscripted_json_schema_reply_is_an_instance_of_the_schema(fake_openai: FakeOpenAI) -> None:
    fake_openai.default_reply_text = "plain text for conversations"  # not for structured requests
    data = json.loads(await ask(fake_openai, schema_format(SCHEMA)))
    assert data == {
        "summary": "The caller said: Hi, it's Dana.",
        "outcome": "answered",
        "name": None,
        "facts": [],
    }
    fake_openai.structured_for = lambda body: {
        "summary": "S",
        "outcome": "spam",
        "name": "Dana",
        "facts": ["x"],
    }
    assert json.loads(await ask(fake_openai, schema_format(SCHEMA)))["outcome"] == "spam"
    fake_openai.script("scripted replies still come first")
    assert await ask(fake_openai, schema_format(SCHEMA)) == "scripted replies still come first"


@pytest.mark.parametrize(
    ("response_format", "message"),
    [
        (schema_format({**SCHEMA, "additionalProperties": True}), "'additionalProperties' is required"),
        (schema_format({**SCHEMA, "required": ["summary"]}), "Missing 'outcome'"),
        (schema_format({"type": "array"}), "schema must be a JSON Schema of 'type: \"object\"'"),
        (schema_format(SCHEMA, name="a review"), "does not match pattern"),
        ({"type": "json_schema"}, "Missing required parameter: 'response_format.json_schema'"),
        ({"type": "xml"}, "Supported values are: 'json_object', 'json_schema', and 'text'"),
        ({"type": "json_object"}, "must contain the word 'json'"),
    ],
)
async def test_structured_output_is_refused_as_the_real_api_refuses_it(
    fake_openai: FakeOpenAI, response_format: Any, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await ask(fake_openai, response_format)
    assert message in refused.value.message


async def test_a_loose_schema_is_accepted_without_strict(fake_openai: FakeOpenAI) -> None:
    loose = {"type": "object", "properties": {"summary": {"type": "string"}}}
    assert json.loads(await ask(fake_openai, schema_format(loose, strict=False))) == {
        "summary": "The caller said: Hi, it's Dana."
    }
    assert await ask(fake_openai, {"type": "json_object"}, "answer in JSON please")  # the word is there
