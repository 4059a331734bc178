"""Forwarded headers, believed only from our own reverse proxies (setting ``trusted_proxies``).

Behind nginx every request arrives from nginx; nginx says who the client was (``X-Forwarded-For``),
which scheme and host it used (``X-Forwarded-Proto``/``-Host``). Anyone else can send the same
headers, so this middleware applies them only when the socket's peer is a trusted proxy, and the
rest of the app just reads ``request.client``, ``request.url``: the admin login's rate limit and
audit log see the real client, the Twilio signature check the URL Twilio really used. ``serve``
turns uvicorn's own proxy-header handling off so the socket's peer reaches this middleware.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = {"http": {"http", "https"}, "websocket": {"ws", "wss"}}
TO_WEBSOCKET = {"http": "ws", "https": "wss"}


def parse_networks(spec: str) -> list[Network]:
    """``"127.0.0.1, 10.0.0.0/8"`` as networks (the setting is validated when loaded)."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in spec.split(",") if entry.strip()]


def is_trusted(address: str, networks: Iterable[Network]) -> bool:
    """True when ``address`` is an IP address inside one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(header: str, networks: list[Network]) -> str | None:
    """The client in an ``X-Forwarded-For`` chain: the nearest hop that is not one of our proxies.

    Hops further left were written by the client itself and prove nothing; None when the nearest
    untrusted hop is not an IP address.
    """
    hops = [hop.strip() for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return None
    return hops[0] if hops else None


class TrustedProxyHeaders:
    """ASGI middleware applying ``X-Forwarded-For/Proto/Host`` from trusted proxies only."""

    def __init__(self, app: ASGIApp, *, trusted: str) -> None:
        self.app = app
        self.networks = parse_networks(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in SCHEMES:
            scope = self._resolved(scope)
        await self.app(scope, receive, send)

    def _resolved(self, scope: Scope) -> Scope:
        peer = scope.get("client")
        if not peer or not is_trusted(peer[0], self.networks):
            return scope
        headers = Headers(scope=scope)
        scope = dict(scope)
        client = forwarded_client(headers.get("x-forwarded-for", ""), self.networks)
        if client:
            scope["client"] = (client, 0)
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if scope["type"] == "websocket":
            proto = TO_WEBSOCKET.get(proto, proto)
        if proto in SCHEMES[scope["type"]]:
            scope["scheme"] = proto
        host = headers.get("x-forwarded-host", "").split(",")[0].strip()
        if host:
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
                (b"host", host.encode("latin-1"))
            ]
        return scope
