"""Twilio request signatures: which URL Twilio signed, and the check itself (the SDK's validator).

Twilio signs the full URL it was configured with (``PUBLIC_URL`` + path + query). With
``PUBLIC_URL`` set that is the only URL checked: whatever Host or X-Forwarded-* headers a request
carries cannot make a signature computed for another URL pass. Without it, the URL is the
request's own as a trusted proxy forwarded it (``api.proxy``: X-Forwarded-Proto/Host are applied
only from ``trusted_proxies``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request
from loguru import logger
from twilio.request_validator import RequestValidator

from phone_agent.config import Settings


def request_base_url(request: Request) -> str:
    """scheme://host of the request as the client saw it (through a trusted proxy: as it forwarded)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def signed_url_candidates(request: Request, settings: Settings) -> list[str]:
    """The URL Twilio signed for this request: ``PUBLIC_URL`` + path when set, else the request's own."""
    suffix = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return [(settings.public_url or request_base_url(request)) + suffix]


def is_valid_signature(
    settings: Settings, urls: list[str], params: Mapping[str, Any], signature: str | None
) -> bool:
    """True when ``signature`` is Twilio's for one of ``urls`` with ``params``."""
    token = settings.secret("twilio_auth_token")
    if not token:
        logger.warning("twilio_auth_token is not set: refusing a Twilio request (set TWILIO_AUTH_TOKEN)")
        return False
    if not signature:
        return False
    validator = RequestValidator(token)
    return any(validator.validate(url, dict(params), signature) for url in urls)


async def verified_twilio_form(request: Request, settings: Settings) -> dict[str, str]:
    """The POST form of a Twilio webhook; HTTP 403 unless its signature is valid."""
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    signature = request.headers.get("x-twilio-signature")
    if not is_valid_signature(settings, signed_url_candidates(request, settings), params, signature):
        logger.warning(
            "rejected {} {}: {} Twilio signature",
            request.method,
            request.url.path,
            "missing" if not signature else "invalid",
        )
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return params
