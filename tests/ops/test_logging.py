"""Logging: the call SID is on every line of a call, secrets are redacted, JSON lines option."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from loguru import logger

from phone_agent.ops.logging import bind_call, setup_logging
from tests.conftest import make_settings


def test_call_sid_bound_and_secret_redacted(tmp_path: Path) -> None:
    sink = io.StringIO()
    settings = make_settings(tmp_path, OPENAI_API_KEY="sk-secret-value-123456")
    setup_logging(settings, sink=sink)
    with bind_call("CA0001"):
        logger.info("calling OpenAI with sk-secret-value-123456")
    logger.info("outside")
    lines = sink.getvalue().splitlines()
    assert (
        "CA0001" in lines[0] and "[redacted]" in lines[0] and "sk-secret-value-123456" not in sink.getvalue()
    )
    assert "| - |" in lines[1]


def test_json_lines_and_stdlib_routed(tmp_path: Path) -> None:
    sink = io.StringIO()
    setup_logging(make_settings(tmp_path, PHONE_AGENT_LOG_FORMAT="json"), sink=sink)
    with bind_call("CA0002"):
        logging.getLogger("uvicorn.error").warning("from stdlib")
    record = json.loads(sink.getvalue().splitlines()[-1])
    assert record["record"]["message"] == "from stdlib"
    assert record["record"]["extra"]["call_sid"] == "CA0002"
