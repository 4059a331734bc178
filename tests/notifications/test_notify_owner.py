"""``notify_owner`` end to end: SMS through the Twilio REST fake, e-mail into a real SMTP server
(aiosmtpd), the per-kind hourly limit in the database, and every way a channel is skipped or fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from phone_agent.config import Settings
from phone_agent.notifications import OwnerEvent, notify_owner
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.migrate import upgrade
from tests.fakes.smtp import FakeSMTP
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings

OWNER_SMS = "+15550001111"
OWNER_EMAIL = "owner@example.com"
EVENT = OwnerEvent(
    kind="message",
    subject="Message for our office from Dana (+15551112222)",
    text="Please call me back about the invoice.\nI am free after 3 pm.",
    call_sid="CA123",
    caller="+15551112222",
)


def notify_settings(tmp_path: Path, twilio: FakeTwilioREST, smtp: FakeSMTP, **env: str) -> Settings:
    """Both channels configured: SMS to OWNER_SMS, e-mail through ``smtp`` with its login."""
    values = {
        "PHONE_AGENT_OWNER_SMS_NUMBER": OWNER_SMS,
        "PHONE_AGENT_OWNER_EMAIL": OWNER_EMAIL,
        "PHONE_AGENT_SMTP_HOST": smtp.host,
        "PHONE_AGENT_SMTP_PORT": str(smtp.port),
        "PHONE_AGENT_SMTP_USERNAME": "owner-bot",
        "PHONE_AGENT_SMTP_PASSWORD": "smtp-secret-pw",
        "PHONE_AGENT_SMTP_FROM": "agent@example.com",
        "PHONE_AGENT_SMTP_STARTTLS": "false",
    }
    values.update(env)
    return twilio_settings(tmp_path, twilio, **values)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """A runtime on ``settings`` with its database migrated; closed on the way out."""
    runtime = Runtime.create(settings, "all")
    await upgrade(runtime.engine)
    try:
        async with runtime.use() as services:
            yield services
    finally:
        await runtime.close()


ServicesWith = Callable[..., AbstractAsyncContextManager[Services]]


@pytest.fixture
def services_with(tmp_path: Path, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP) -> ServicesWith:
    """``services_with(**env)``: services on ``notify_settings`` with these variables changed."""

    def open_with(**env: str) -> AbstractAsyncContextManager[Services]:
        return open_services(notify_settings(tmp_path, fake_twilio, fake_smtp, **env))

    return open_with


@pytest.fixture
async def services(services_with: ServicesWith) -> AsyncIterator[Services]:
    async with services_with() as services:
        yield services


async def test_the_owner_gets_an_sms_and_an_email(
    services: Services, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    result = await notify_owner(services, EVENT)

    assert sorted(result.sent) == ["email", "sms"] and not result.failed and not result.skipped
    (sms,) = [r for r in fake_twilio.requests if r.path.endswith("/Messages.json")]
    assert sms.form == {
        "To": OWNER_SMS,
        "From": "+15005550006",
        "Body": "Message for our office from Dana (+15551112222): Please call me back about the invoice. "
        "I am free after 3 pm.",
    }
    assert result.sms_sid == fake_twilio.messages[0]["sid"]
    (email,) = fake_smtp.emails
    assert (email.mail_from, email.rcpt_tos, email.login) == ("agent@example.com", [OWNER_EMAIL], "owner-bot")
    assert email.subject == EVENT.subject
    assert email.message["To"] == OWNER_EMAIL and email.message["Message-ID"]
    assert email.text.splitlines() == [
        "Please call me back about the invoice.",
        "I am free after 3 pm.",
        "",
        "Caller: +15551112222",
        "Call: CA123",
    ]


async def test_a_long_text_is_cut_for_sms_but_whole_by_email(
    services: Services, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    long_text = "word " * 200
    await notify_owner(services, OwnerEvent(kind="voicemail", subject="Voicemail", text=long_text))
    body = fake_twilio.messages[0]["body"]
    assert len(body) == 320 and body.startswith("Voicemail: word word") and body.endswith("…")
    assert fake_smtp.emails[0].text.split() == long_text.split()


async def test_at_most_notify_max_per_hour_of_one_kind_across_workers(
    tmp_path: Path, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    # Two runtimes on one database file stand for two worker processes.
    settings = notify_settings(tmp_path, fake_twilio, fake_smtp, PHONE_AGENT_NOTIFY_MAX_PER_HOUR="3")
    async with open_services(settings) as a, open_services(settings) as b:
        results = await asyncio.gather(*(notify_owner(s, EVENT) for s in (a, b) * 4))
        other_kind = await notify_owner(a, OwnerEvent(kind="voicemail", subject="Voicemail", text="hi"))
    delivered = [r for r in results if r.delivered]
    limited = [r for r in results if not r.delivered]
    assert len(delivered) == 3 and len(limited) == 5
    assert all(
        r.skipped == dict.fromkeys(("sms", "email"), "rate limited (notify_max_per_hour)") for r in limited
    )
    assert len(fake_twilio.messages) == 4 and len(fake_smtp.emails) == 4  # 3 messages + the voicemail
    assert other_kind.delivered  # the limit is per kind


async def test_channels_without_what_they_need_are_skipped(
    services_with: ServicesWith, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    async with services_with(PHONE_AGENT_OWNER_SMS_NUMBER="", PHONE_AGENT_SMTP_HOST="") as services:
        result = await notify_owner(services, EVENT)
    assert result.sent == [] and result.skipped == {
        "sms": "owner_sms_number is not set",
        "email": "smtp_host is not set",
    }
    assert fake_twilio.messages == [] and fake_smtp.emails == []


async def test_kinds_left_out_of_notify_events_are_not_sent(
    services_with: ServicesWith, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    async with services_with(
        PHONE_AGENT_NOTIFY_EVENTS="voicemail", PHONE_AGENT_NOTIFY_CHANNELS="email"
    ) as services:
        message = await notify_owner(services, EVENT)
        voicemail = await notify_owner(services, OwnerEvent(kind="voicemail", subject="Voicemail", text="x"))
    assert message.skipped == {"email": "message events are not in notify_events"} and not message.sent
    assert voicemail.sent == ["email"] and "sms" not in voicemail.skipped  # sms is not a chosen channel
    assert fake_twilio.messages == [] and [e.subject for e in fake_smtp.emails] == ["Voicemail"]


async def test_one_channel_failing_does_not_stop_the_other(
    services: Services, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    fake_twilio.fail_next(1, status=503)
    sms_down = await notify_owner(services, EVENT)
    assert sms_down.sent == ["email"] and "send SMS failed" in sms_down.failed["sms"]
    assert sms_down.sms_sid is None

    fake_smtp.fail_next(1, code=451)
    email_down = await notify_owner(services, EVENT)
    assert email_down.sent == ["sms"] and "451" in email_down.failed["email"]
    assert len(fake_smtp.emails) == 1 and len(fake_twilio.messages) == 1


async def test_a_wrong_smtp_password_fails_without_showing_it(
    services_with: ServicesWith, fake_smtp: FakeSMTP
) -> None:
    async with services_with(
        PHONE_AGENT_SMTP_PASSWORD="wrong-password-123", PHONE_AGENT_NOTIFY_CHANNELS="email"
    ) as services:
        result = await notify_owner(services, EVENT)
    assert (
        result.sent == []
        and "refused the login" in result.failed["email"]
        and "535" in result.failed["email"]
    )
    assert "wrong-password-123" not in result.failed["email"]
    assert fake_smtp.auth_failures >= 1 and fake_smtp.emails == []


async def test_starttls_is_required_when_set(services_with: ServicesWith, fake_smtp: FakeSMTP) -> None:
    # The fake offers no STARTTLS: with smtp_starttls on, nothing goes out in the clear.
    async with services_with(
        PHONE_AGENT_SMTP_STARTTLS="true", PHONE_AGENT_NOTIFY_CHANNELS="email"
    ) as services:
        result = await notify_owner(services, EVENT)
    assert result.sent == [] and "STARTTLS" in result.failed["email"].upper()
    assert fake_smtp.emails == []


async def test_an_unreachable_smtp_server_is_a_failure_not_an_exception(
    services_with: ServicesWith, fake_smtp: FakeSMTP
) -> None:
    port = fake_smtp.port
    fake_smtp.stop()
    async with services_with(PHONE_AGENT_SMTP_PORT=str(port)) as services:
        result = await notify_owner(services, EVENT)
    assert result.sent == ["sms"] and "sending e-mail failed" in result.failed["email"]
