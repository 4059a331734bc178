"""Admin login: one account (argon2 hash), server-side sessions, CSRF tokens, login rate limiting.

The password comes from ``ADMIN_PASSWORD`` (hashed into the ``admin_account`` row on first use and
re-hashed when the variable changes) or is set once on ``/admin/setup`` with a one-time code written
to ``<data_dir>/admin-setup-code``. A session is a random cookie token whose SHA-256 is stored with
its CSRF token; the cookie is HttpOnly, SameSite=Strict and Secure behind HTTPS. Login attempts
are throttled per client and for the account in the shared database (``admin/throttle.py``) and
audited under the client's real address (forwarded headers only from ``trusted_proxies``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import delete
from starlette.requests import HTTPConnection

from phone_agent.api.deps import ServicesDep
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import AdminAccount, AdminSession, AuditEntry, utcnow

SESSION_COOKIE = "pa_admin"
LOGIN_CSRF_COOKIE = "pa_login_csrf"
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 10
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and fields around an upload of the maximum size

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Admin:
    """The logged-in admin of one request."""

    token_hash: str
    csrf_token: str
    client: str

    @property
    def actor(self) -> str:
        """How audit entries name this admin."""
        return f"admin@{self.client}"


def client_address(request: HTTPConnection) -> str:
    """The client's address: the socket's peer, or who a trusted proxy says it forwarded (api.proxy)."""
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    """True when the browser talks HTTPS to us, directly or through a trusted proxy that says so."""
    return request.url.scheme == "https"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- the account ---------------------------------------------------------------------------------
async def _sync_env_password(runtime: Runtime, services: Services) -> None:
    """Make the stored hash match ADMIN_PASSWORD when it is set (env wins over a setup password)."""
    env_password = services.settings.secret("admin_password")
    if not env_password:
        return
    fingerprint = _digest(env_password)
    if runtime.admin_password_fingerprint == fingerprint:
        return
    async with transaction(services.sessions) as session:
        account = await session.get(AdminAccount, 1)
        if account is None or not await asyncio.to_thread(_verify, account.password_hash, env_password):
            hashed = await asyncio.to_thread(_hasher.hash, env_password)
            if account is None:
                session.add(AdminAccount(id=1, password_hash=hashed, password_from="env"))
            else:
                account.password_hash, account.password_from = hashed, "env"
    runtime.admin_password_fingerprint = fingerprint


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def account_exists(runtime: Runtime, services: Services) -> bool:
    """True once an admin password is known (from ADMIN_PASSWORD or set on /admin/setup)."""
    await _sync_env_password(runtime, services)
    async with services.sessions() as session:
        return await session.get(AdminAccount, 1) is not None


async def check_password(runtime: Runtime, services: Services, password: str) -> bool:
    """Verify a password against the stored argon2 hash."""
    await _sync_env_password(runtime, services)
    async with services.sessions() as session:
        account = await session.get(AdminAccount, 1)
    if account is None:
        return False
    return await asyncio.to_thread(_verify, account.password_hash, password)


async def set_password(services: Services, password: str, *, actor: str) -> None:
    """Store a new admin password (first-run setup). The caller checks length and setup code."""
    hashed = await asyncio.to_thread(_hasher.hash, password)
    async with transaction(services.sessions) as session:
        account = await session.get(AdminAccount, 1)
        if account is None:
            session.add(AdminAccount(id=1, password_hash=hashed, password_from="setup"))
        else:
            account.password_hash, account.password_from = hashed, "setup"
        session.add(AuditEntry(actor=actor, action="admin.password_set", target="admin", new_value="…****"))


def setup_code_path(services: Services) -> Path:
    """Where the one-time first-run code is written (readable by the machine's owner only)."""
    return Path(services.settings.data_dir) / "admin-setup-code"


async def prepare_first_run(runtime: Runtime) -> Path | None:
    """At start, with no admin password yet: write the one-time setup code now (not when
    /admin/setup is first opened) and return the file's absolute path; None once a password exists."""
    async with runtime.use() as services:
        if await account_exists(runtime, services):
            return None
        await asyncio.to_thread(setup_code, services)
        return setup_code_path(services).resolve()


def setup_code(services: Services) -> str:
    """The first-run setup code, created on first use with mode 0600."""
    path = setup_code_path(services)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    code = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(code + "\n")
    return code


# --- login attempts (the rate limit itself: admin/throttle.py) ---------------------------------
async def record_login(services: Services, client: str, *, ok: bool) -> None:
    """Audit a login attempt, under the client's real address."""
    async with transaction(services.sessions) as session:
        session.add(
            AuditEntry(
                actor=f"admin@{client}" if ok else f"anonymous@{client}",
                action="admin.login" if ok else "admin.login_failed",
                target=client,
            )
        )


# --- sessions ------------------------------------------------------------------------------------
async def start_session(services: Services, response: Response, request: Request) -> None:
    """Create a session and set its cookie on ``response``."""
    token = secrets.token_urlsafe(32)
    async with transaction(services.sessions) as session:
        await session.execute(delete(AdminSession).where(AdminSession.expires_at < utcnow()))
        session.add(
            AdminSession(
                token_hash=_digest(token),
                csrf_token=secrets.token_urlsafe(32),
                client=client_address(request)[:100],
                expires_at=utcnow() + SESSION_LIFETIME,
            )
        )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


async def end_session(services: Services, admin: Admin, response: Response) -> None:
    """Delete the session server-side and clear its cookie."""
    async with transaction(services.sessions) as session:
        await session.execute(delete(AdminSession).where(AdminSession.token_hash == admin.token_hash))
        session.add(AuditEntry(actor=admin.actor, action="admin.logout", target=admin.client))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


async def session_for(services: Services, request: HTTPConnection) -> Admin | None:
    """The admin of a request's (or a websocket handshake's) session cookie, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with services.sessions() as session:
        row = await session.get(AdminSession, _digest(token))
    if row is None or row.expires_at <= utcnow():
        return None
    return Admin(token_hash=row.token_hash, csrf_token=row.csrf_token, client=client_address(request))


def wants_html(request: Request) -> bool:
    """Browsers navigating to a page get redirects; API clients get JSON status codes."""
    return request.method in SAFE_METHODS and "text/html" in request.headers.get("accept", "")


def upload_too_large(max_upload_mb: int) -> HTTPException:
    """The 413 of an upload above ``max_upload_mb``."""
    return HTTPException(
        status_code=413,
        detail=f"The file is larger than the upload limit of {max_upload_mb} MB (setting max_upload_mb).",
    )


def refuse_oversize(request: Request, max_upload_mb: int) -> None:
    """413 before a body larger than ``max_upload_mb`` is read (checked on Content-Length)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_upload_mb * 1024 * 1024 + FORM_OVERHEAD:
        raise upload_too_large(max_upload_mb)


def wants_json(request: Request) -> bool:
    """``admin.js`` and API clients ask for JSON; plain form posts get redirects and pages."""
    return "application/json" in request.headers.get("accept", "")


async def _submitted_csrf(request: Request, max_upload_mb: int) -> str:
    token = request.headers.get("x-csrf-token")
    if token:
        return token
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        refuse_oversize(request, max_upload_mb)  # never parse an oversize form to find its token
        form = await request.form()  # cached on the request; the route reads it again for free
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def require_admin(request: Request, services: ServicesDep) -> Admin:
    """Dependency of every admin route: a live session, and a CSRF token on every unsafe method."""
    admin = await session_for(services, request)
    if admin is None:
        if wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(status_code=303, headers={"Location": f"/admin/login?next={target}"})
        raise HTTPException(status_code=401, detail="Log in on /admin/login first.")
    if request.method not in SAFE_METHODS:
        given = await _submitted_csrf(request, services.settings.max_upload_mb)
        if not given or not hmac.compare_digest(given.encode(), admin.csrf_token.encode()):
            raise HTTPException(status_code=403, detail="Missing or wrong CSRF token; reload the page.")
    return admin


AdminDep = Annotated[Admin, Depends(require_admin)]


def safe_next(target: str | None) -> str:
    """Only same-site admin paths are followed after login (no open redirect)."""
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"
