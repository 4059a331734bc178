"""Owner e-mail over SMTP (``aiosmtplib``): ``smtp_host``:``smtp_port``, STARTTLS or TLS, optional login.

Port 465 speaks TLS from the first byte; any other port upgrades with STARTTLS when
``smtp_starttls`` is on. Failures become ``ProviderError("smtp", ...)`` without the password.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from phone_agent.config import Settings
from phone_agent.errors import ConfigError, ProviderError

SMTP_TIMEOUT_SECONDS = 10.0
IMPLICIT_TLS_PORT = 465


def email_configured(settings: Settings) -> str | None:
    """None when owner e-mail can be sent; else what is missing, for the owner to fix."""
    if not settings.owner_email:
        return "owner_email is not set"
    if not settings.smtp_host:
        return "smtp_host is not set"
    if not sender(settings):
        return "smtp_from is not set"
    return None


def sender(settings: Settings) -> str | None:
    """The From address: ``smtp_from``, else a login that is an address, else ``owner_email``."""
    login = settings.smtp_username if settings.smtp_username and "@" in settings.smtp_username else None
    return settings.smtp_from or login or settings.owner_email


def build_email(settings: Settings, *, subject: str, text: str) -> EmailMessage:
    """The message: plain text, one-line subject, dated, with its own Message-ID."""
    message = EmailMessage()
    message["From"] = sender(settings) or ""
    message["To"] = settings.owner_email or ""
    message["Subject"] = " ".join(subject.split())[:200]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=(sender(settings) or "phone-agent").rpartition("@")[2] or None)
    message.set_content(text)
    return message


async def send_email(settings: Settings, *, subject: str, text: str) -> str:
    """Send one e-mail to ``owner_email``; returns the server's answer to the message.

    Raises:
        ConfigError: e-mail is not configured (``email_configured`` says what is missing).
        ProviderError: the SMTP server refused, timed out or could not be reached.
    """
    missing = email_configured(settings)
    if missing:
        raise ConfigError(f"Owner e-mail needs {missing.split(' is ')[0]}: set it on the admin page.")
    message = build_email(settings, subject=subject, text=text)
    implicit_tls = settings.smtp_port == IMPLICIT_TLS_PORT
    try:
        _errors, answer = await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.secret("smtp_password"),
            use_tls=implicit_tls,
            start_tls=False if implicit_tls else settings.smtp_starttls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ProviderError(
            "smtp",
            "the SMTP server refused the login (check smtp_username and smtp_password): "
            f"{exc.code} {exc.message}",
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise ProviderError("smtp", f"the SMTP server refused the e-mail: {exc.code} {exc.message}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise ProviderError("smtp", f"sending e-mail failed: {type(exc).__name__}: {exc}") from exc
    return answer
