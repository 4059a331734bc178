"""`FakeSMTP`: a real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every e-mail it accepts.

It speaks SMTP as a mail provider's submission port does: EHLO, optional AUTH PLAIN/LOGIN (with
``username``/``password`` set, a wrong login gets ``535``; ``auth_required`` refuses mail before a
login with ``530``), MAIL/RCPT/DATA. ``fail_next(n, code)`` answers the next n messages' DATA with
an error (``451`` = try later, ``554`` = refused). No TLS: tests set ``smtp_starttls=false``.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class ReceivedEmail:
    """One accepted message: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        return body.get_content() if body is not None else ""


class _QuietLegacyLogin(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation of its own ``login_data`` on every AUTH: not ours to fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietLegacyLogin())


def _free_port(host: str) -> int:
    """An ephemeral port that was free a moment ago (aiosmtpd's controller needs a number up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class FakeSMTP:
    """Local SMTP server; ``host``/``port`` to point ``smtp_host``/``smtp_port`` at, ``.emails`` received."""

    def __init__(
        self, *, username: str | None = None, password: str | None = None, auth_required: bool = False
    ):
        self.username, self.password, self.auth_required = username, password, auth_required
        self.emails: list[ReceivedEmail] = []
        self.auth_failures = 0
        self._fail: list[int] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- faults -----------------------------------------------------------------------------------
    def fail_next(self, count: int = 1, *, code: int = 451) -> None:
        """Refuse the next ``count`` messages at DATA with ``code``."""
        with self._lock:
            self._fail.extend([code] * count)

    # -- aiosmtpd handler hooks -------------------------------------------------------------------
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            code = self._fail.pop(0) if self._fail else None
        if code is not None:
            return f"{code} Injected failure"
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self._lock:
            self.emails.append(
                ReceivedEmail(str(envelope.mail_from), list(envelope.rcpt_tos), message, login)
            )
        return "250 OK: queued"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeSMTP:
        kwargs: dict[str, Any] = {"auth_require_tls": False, "auth_required": self.auth_required}
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
        self.port = _free_port(self.host)
        controller = Controller(self, hostname=self.host, port=self.port, ready_timeout=10, **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
