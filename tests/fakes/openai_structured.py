"""OpenAI structured output (``response_format``) for the fake chat completions: translation only.

As the real API: ``json_object`` needs the word "json" in the messages; ``json_schema`` needs a
``name`` (``^[a-zA-Z0-9_-]{1,64}$``) and a ``schema`` whose root is an object, and with
``strict: true`` every object of the schema must list all its properties in ``required`` and set
``additionalProperties: false`` (400 with OpenAI's wording otherwise). An unscripted reply to a
``json_schema`` request is an instance of the schema (what a compliant model returns): enums take
their first value, nullable fields null, arrays are empty, strings quote the last user message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.openai_chat import OpenAIError, missing, text_of

FORMAT_TYPES = ("json_object", "json_schema", "text")
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def validate_response_format(body: dict[str, Any]) -> None:
    """Raise ``OpenAIError`` for a ``response_format`` the real endpoint refuses."""
    fmt = body.get("response_format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise OpenAIError(
            400,
            f"Invalid type for 'response_format': expected an object, but got {type(fmt).__name__} instead.",
            param="response_format",
            code="invalid_type",
        )
    kind = fmt.get("type")
    if kind is None:
        raise missing("response_format.type")
    if kind not in FORMAT_TYPES:
        raise OpenAIError(
            400,
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
            param="response_format.type",
            code="invalid_value",
        )
    if kind == "json_object":
        said = " ".join(text_of(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict))
        if "json" not in said.lower():
            raise OpenAIError(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                "'json_object'.",
                param="messages",
            )
    if kind == "json_schema":
        _validate_json_schema(fmt.get("json_schema"))


def _validate_json_schema(spec: Any) -> None:
    if not isinstance(spec, dict):
        raise missing("response_format.json_schema")
    name = spec.get("name")
    if name is None:
        raise missing("response_format.json_schema.name")
    if not isinstance(name, str) or not SCHEMA_NAME.match(name):
        raise OpenAIError(
            400,
            "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a "
            "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param="response_format.json_schema.name",
            code="invalid_value",
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        got = schema.get("type") if isinstance(schema, dict) else None
        raise OpenAIError(
            400,
            f"Invalid schema for response_format '{name}': schema must be a JSON Schema of "
            f"'type: \"object\"', got 'type: \"{got}\"'.",
            param="response_format",
        )
    if spec.get("strict"):
        _check_strict(name, schema, ())


def _check_strict(name: str, schema: dict[str, Any], context: tuple[str, ...]) -> None:
    where = f"In context=({', '.join(repr(c) for c in context)}{',' if len(context) == 1 else ''})"
    types = schema.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types):
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            raise OpenAIError(
                400,
                f"Invalid schema for response_format '{name}': {where}, 'additionalProperties' is "
                "required to be supplied and to be false.",
                param="response_format",
            )
        required = schema.get("required")
        absent = [key for key in properties if not isinstance(required, list) or key not in required]
        if absent:
            raise OpenAIError(
                400,
                f"Invalid schema for response_format '{name}': {where}, 'required' is required to be "
                "supplied and to be an array including every key in properties. "
                f"Missing '{absent[0]}'.",
                param="response_format",
            )
        for key, sub in properties.items():
            _check_strict(name, sub, (*context, "properties", key))
    if isinstance(schema.get("items"), dict):
        _check_strict(name, schema["items"], (*context, "items"))
    for i, sub in enumerate(schema.get("anyOf") or []):
        _check_strict(name, sub, (*context, "anyOf", str(i)))


def wants_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks its reply to follow, if any."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return dict((fmt.get("json_schema") or {}).get("schema") or {})
    return None


def schema_instance(schema: dict[str, Any], said: str) -> Any:
    """A value valid for ``schema`` (see the module docstring for the choices)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        options = schema["anyOf"]
        nullable = any(o.get("type") == "null" for o in options)
        return None if nullable else schema_instance(options[0], said)
    types = schema.get("type")
    if isinstance(types, list):
        if "null" in types:
            return None
        types = types[0]
    if types == "object":
        return {key: schema_instance(sub, said) for key, sub in (schema.get("properties") or {}).items()}
    if types == "array":
        return []
    if types in ("integer", "number"):
        return 0
    if types == "boolean":
        return False
    return f"The caller said: {said[:160]}" if said else "Nothing was said."


def structured_reply(body: dict[str, Any]) -> str:
    """The JSON text of an unscripted reply to a ``json_schema`` request."""
    schema = wants_schema(body) or {"type": "object"}
    said = ""
    for message in reversed(body.get("messages", [])):
        if isinstance(message, dict) and message.get("role") == "user":
            said = " ".join(text_of(message.get("content")).split())
            break
    return json.dumps(schema_instance(schema, said))
