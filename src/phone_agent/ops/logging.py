"""Logging, set up once: loguru (Pipecat's logger) with the call SID on every line, secrets redacted.

Standard-library loggers (uvicorn, sqlalchemy, httpx) are routed into loguru so every line shares
one format. Inside a call, ``with bind_call(call_sid):`` tags all lines of that task.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from loguru import logger

from phone_agent.config import Settings, redact

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
    "<cyan>{extra[call_sid]}</cyan> | {name}:{line} - {message}"
)


class _Redactor:
    """Replaces configured secret values (and any password inside a URL) in a log message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = list(secrets)

    def __call__(self, record: Any) -> bool:
        record["extra"].setdefault("call_sid", "-")
        record["message"] = redact(record["message"], self.secrets)
        return True


class _InterceptHandler(logging.Handler):
    """Send standard-library log records to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(settings: Settings, *, sink: Any = None) -> None:
    """Configure logging for the process from Settings (idempotent)."""
    logger.remove()
    redact = _Redactor(settings.secret_values())
    target = sink if sink is not None else sys.stderr
    if settings.log_format == "json":
        logger.add(target, level=settings.log_level, serialize=True, filter=redact)
    else:
        logger.add(
            target,
            level=settings.log_level,
            format=TEXT_FORMAT,
            filter=redact,
            colorize=False if sink is not None else None,
        )
    if settings.log_file:  # a plain copy for operators and `phone-agent doctor` (counts its errors)
        Path(settings.log_file).parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            settings.log_file,
            level=settings.log_level,
            serialize=settings.log_format == "json",
            format=TEXT_FORMAT,
            filter=redact,
            colorize=False,
            rotation="50 MB",
            retention=5,
        )
    logger.configure(extra={"call_sid": "-"})
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False


_CALL_SID: ContextVar[str | None] = ContextVar("call_sid", default=None)


@contextmanager
def bind_call(call_sid: str) -> Iterator[None]:
    """Tag every log line written inside this block (and tasks it starts) with the call SID."""
    token = _CALL_SID.set(call_sid)
    try:
        with logger.contextualize(call_sid=call_sid):
            yield
    finally:
        _CALL_SID.reset(token)


def current_call_sid() -> str | None:
    """The call SID bound by ``bind_call`` around the running code, if any."""
    return _CALL_SID.get()
