"""Doctor checks of HTTPS: the public host's certificate (valid, days left) and certbot's renewal."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from phone_agent.ops.doctor.model import DoctorContext, Outcome, check, fail, ok, warn


def fetch_certificate(host: str, port: int, *, cafile: str | None, timeout: float) -> dict[str, Any]:
    """Handshake with ``host:port`` verifying chain + hostname; returns the peer certificate."""
    context = ssl.create_default_context()
    if cafile:
        context.load_verify_locations(cafile=cafile)
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    return cert


def _issuer(cert: dict[str, Any]) -> str:
    for rdn in cert.get("issuer", ()):
        for key, value in rdn:
            if key in ("organizationName", "commonName"):
                return str(value)
    return "unknown issuer"


@check("tls.certificate", "tls", on_timeout="The public host did not complete a TLS handshake.")
async def tls_certificate(ctx: DoctorContext) -> Outcome:
    """PUBLIC_URL's certificate is valid for its host, with days to expiry (warn under 14)."""
    public_url = ctx.settings.public_url
    if not public_url:
        return warn("PUBLIC_URL is not set: no public host to check", "Set PUBLIC_URL=https://your-host.")
    parts = urlsplit(public_url)
    if parts.scheme != "https" or not parts.hostname:
        return fail(
            f"PUBLIC_URL {public_url} is not https: Twilio media streams need wss://",
            "Put nginx with a Let's Encrypt certificate in front (docs/deploy.md) and use https://.",
        )
    host, port = parts.hostname, parts.port or 443
    try:
        cert = await asyncio.to_thread(
            fetch_certificate, host, port, cafile=ctx.tls_cafile, timeout=ctx.timeout
        )
    except ssl.SSLCertVerificationError as exc:
        return fail(
            f"certificate of {host}:{port} is not valid: {exc.verify_message or exc.reason}",
            "Issue a certificate for this host name: certbot certonly --webroot -w /var/www/certbot "
            f"-d {host}, then reload nginx.",
        )
    except (ssl.SSLError, OSError) as exc:
        return fail(
            f"no TLS handshake with {host}:{port}: {type(exc).__name__}: {exc}",
            "Is nginx running and listening on 443, and does DNS point here?",
        )
    expires = ssl.cert_time_to_seconds(cert["notAfter"])
    days = int((expires - time.time()) // 86400)
    detail = f"{host}: valid, {days} days to expiry ({cert['notAfter']}, {_issuer(cert)})"
    if days < ctx.thresholds.tls_warn_days:
        return warn(detail, "Renew now: certbot renew && systemctl reload nginx; check the renewal timer.")
    return ok(detail)


@check("tls.renewal", "tls")
async def tls_renewal(ctx: DoctorContext) -> Outcome:
    """When certbot manages certificates here, a systemd timer or cron job renews them."""
    return await asyncio.to_thread(_renewal_outcome, ctx.letsencrypt_dir, ctx.renewal_paths)


def _renewal_outcome(letsencrypt_dir: Path, renewal_paths: tuple[Path, ...]) -> Outcome:
    renewal = letsencrypt_dir / "renewal"
    confs = sorted(renewal.glob("*.conf")) if renewal.is_dir() else []
    if not confs:
        return ok(f"certbot is not used on this host (no {renewal}/*.conf)")
    names = ", ".join(c.stem for c in confs)
    for path in renewal_paths:
        try:
            text = path.read_text(errors="replace") if path.is_file() else ""
        except OSError:
            continue
        if path.suffix == ".timer" and path.is_file() or "certbot" in text:
            return ok(f"certificates ({names}) renewed by {path}")
    return fail(
        f"certbot manages {names} but no renewal timer or cron job was found",
        "sudo systemctl enable --now certbot.timer, or add to /etc/cron.d/certbot: "
        "'0 3 * * * root certbot renew -q --deploy-hook \"systemctl reload nginx\"'.",
    )
