"""Twilio request signatures: which URL Twilio signed, and the check itself (the SDK's validator).

Twilio signs the full URL it was configured with (``PUBLIC_URL`` + path + query). Behind nginx the
app sees an internal URL, so the candidates are: ``PUBLIC_URL`` (when set) and the URL rebuilt from
``X-Forwarded-Proto``/``X-Forwarded-Host``/``Host``. A request passes when the signature matches
one of them; without the auth token nobody can produce a match, so trying both is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request
from loguru import logger
from twilio.request_validator import RequestValidator

from phone_agent.config import Settings


def forwarded_base_url(request: Request) -> str:
    """scheme://host of the request as the client saw it (honours X-Forwarded-Proto/Host)."""
    headers = request.headers
    proto = headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = headers.get("x-forwarded-host") or headers.get("host") or request.url.netloc
    return f"{proto}://{host.split(',')[0].strip()}"


def signed_url_candidates(request: Request, settings: Settings) -> list[str]:
    """The URLs Twilio may have signed for this request, most trusted first."""
    suffix = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    candidates = []
    if settings.public_url:
        candidates.append(settings.public_url + suffix)
    forwarded = forwarded_base_url(request) + suffix
    if forwarded not in candidates:
        candidates.append(forwarded)
    return candidates


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
