"""The control bus: live-call commands and config-change fan-out between the roles' processes.

An admin clicks "hang up" in the orchestrator, but the call's pipeline lives in the voice bridge
process. ``send_call_command`` publishes the command; every process's bus delivers it to the call
handlers registered there, and to the call itself where a pipeline holds it (``hold_call``). Likewise
``announce_config_change`` makes every process reload admin overrides from the database.

With ``redis_url`` set, messages go through Redis pub/sub; without it (one process) they are
delivered in-process. Handlers run as tasks; a failing handler is logged and never stops the bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger

CALLS_CHANNEL = "phone-agent:calls"
CONFIG_CHANNEL = "phone-agent:config"

CallHandler = Callable[[str, str, dict[str, Any]], Awaitable[Any]]  # (call_sid, action, params)
HeldCallHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]  # (action, params)
ConfigHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class ControlBus:
    """Publish/subscribe of call commands and config changes (Redis when configured, else local)."""

    def __init__(self, *, redis_url: str | None = None, channel_prefix: str = "") -> None:
        self.redis_url = redis_url
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._calls = channel_prefix + CALLS_CHANNEL
        self._config = channel_prefix + CONFIG_CHANNEL
        self._call_handlers: list[CallHandler] = []
        self._held: dict[str, HeldCallHandler] = {}
        self._config_handlers: list[ConfigHandler] = []
        self._redis: Any = None
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def distributed(self) -> bool:
        """True when messages cross processes (Redis)."""
        return self.redis_url is not None

    def on_call_command(self, handler: CallHandler) -> None:
        """Run ``handler(call_sid, action, params)`` for every call command (any process may send it)."""
        self._call_handlers.append(handler)

    @contextmanager
    def hold_call(self, call_sid: str, handler: HeldCallHandler) -> Iterator[None]:
        """While the block runs (the call lives in this process), commands for ``call_sid`` sent from
        any process go to ``handler(action, params)``."""
        self._held[call_sid] = handler
        try:
            yield
        finally:
            if self._held.get(call_sid) is handler:
                del self._held[call_sid]

    def held_calls(self) -> list[str]:
        """Call SIDs whose pipeline runs in this process."""
        return sorted(self._held)

    def on_config_change(self, handler: ConfigHandler) -> None:
        """Run ``handler(info)`` whenever any process announces a config change."""
        self._config_handlers.append(handler)

    async def start(self) -> None:
        """Connect and subscribe (no-op without Redis)."""
        if self.redis_url is None or self._listener is not None:
            return
        import redis.asyncio as redis

        self._redis = redis.from_url(self.redis_url, decode_responses=True, socket_connect_timeout=5)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await self._pubsub.subscribe(self._calls, self._config)
        except Exception as exc:  # Redis down at start: the listener keeps retrying
            logger.error("control bus: cannot subscribe to Redis ({}); retrying", type(exc).__name__)
        self._listener = asyncio.create_task(self._listen(), name="control-bus")

    async def close(self) -> None:
        """Stop listening and disconnect."""
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        for task in list(self._tasks):
            task.cancel()

    async def send_call_command(self, call_sid: str, action: str, **params: Any) -> int:
        """Ask whichever process holds ``call_sid`` to do ``action`` (hangup, transfer, say, ...).

        Returns how many processes received it (Redis) or handlers ran (local).
        """
        message = {"call_sid": call_sid, "action": action, "params": params, "origin": self.origin}
        return await self._publish(self._calls, message)

    async def announce_config_change(self, **info: Any) -> int:
        """Tell every other process that admin settings changed (they reload overrides)."""
        return await self._publish(self._config, {"info": info, "origin": self.origin})

    async def _publish(self, channel: str, message: dict[str, Any]) -> int:
        if self._redis is None:
            await self._dispatch(channel, message, wait=True)
            if channel != self._calls:
                return 0
            return len(self._call_handlers) + (message["call_sid"] in self._held)
        return int(await self._redis.publish(channel, json.dumps(message)))

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                if not self._pubsub.subscribed:
                    await self._pubsub.subscribe(self._calls, self._config)
                raw = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: keep trying, calls must not notice
                logger.warning("control bus: Redis read failed ({}), retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if raw is None or raw.get("type") != "message":
                continue
            try:
                message = json.loads(raw["data"])
            except (TypeError, ValueError):
                logger.warning("control bus: ignored a malformed message on {}", raw.get("channel"))
                continue
            await self._dispatch(raw["channel"], message, wait=False)

    async def _dispatch(self, channel: str, message: dict[str, Any], *, wait: bool) -> None:
        if channel == self._calls:
            call_sid, action = str(message.get("call_sid")), str(message.get("action"))
            params = dict(message.get("params") or {})
            coros = [h(call_sid, action, params) for h in self._call_handlers]
            if call_sid in self._held:
                coros.append(self._held[call_sid](action, params))
        elif message.get("origin") == self.origin:
            return  # this process made the change and has applied it already
        else:
            coros = [h(dict(message.get("info") or {})) for h in self._config_handlers]
        for coro in coros:
            if wait:
                await self._run(coro)
                continue
            task = asyncio.create_task(self._run(coro))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(coro: Awaitable[Any]) -> None:
        try:
            await coro
        except Exception:
            logger.exception("control bus handler failed")


async def broadcast_config_change(bus: ControlBus, keys: Iterable[str]) -> None:
    """After an admin change in this process: make the other roles reload (never fails the caller)."""
    if not bus.distributed:
        return
    try:
        await bus.announce_config_change(keys=sorted(keys))
    except Exception as exc:  # Redis down: the change is saved; other roles get it on restart
        logger.warning("could not announce a config change over Redis: {}", type(exc).__name__)
