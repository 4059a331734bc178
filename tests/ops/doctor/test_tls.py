"""TLS certificate check against a local TLS server with openssl-made certificates; certbot renewal."""

from __future__ import annotations

from pathlib import Path

from phone_agent.ops.doctor import Check, run_doctor
from tests.conftest import make_settings
from tests.ops.servers import TLSServer, free_port, self_signed


async def tls_check(tmp_path: Path, public_url: str, cafile: Path | None) -> Check:
    settings = make_settings(tmp_path, PUBLIC_URL=public_url)
    report = await run_doctor(
        settings, check_timeout=10, only=["tls.certificate"], tls_cafile=str(cafile) if cafile else None
    )
    return report.checks[0]


async def test_valid_certificate_passes_with_days_left(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, days=90)
    with TLSServer(cert, key) as server:
        result = await tls_check(tmp_path, f"https://localhost:{server.port}", cert)
    assert result.status == "pass", result
    assert "89 days to expiry" in result.detail or "90 days to expiry" in result.detail


async def test_certificate_expiring_soon_warns(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, days=5)
    with TLSServer(cert, key) as server:
        result = await tls_check(tmp_path, f"https://localhost:{server.port}", cert)
    assert result.status == "warn" and "days to expiry" in result.detail
    assert "certbot renew" in (result.fix or "")


async def test_untrusted_or_wrong_host_certificate_fails(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, days=90)
    with TLSServer(cert, key) as server:
        untrusted = await tls_check(tmp_path, f"https://localhost:{server.port}", None)
    assert untrusted.status == "fail" and "not valid" in untrusted.detail
    other, other_key = self_signed(tmp_path, days=90, host="other.example.com", name="other")
    with TLSServer(other, other_key) as server:
        mismatch = await tls_check(tmp_path, f"https://localhost:{server.port}", other)
    assert mismatch.status == "fail" and "localhost" in mismatch.detail


async def test_nothing_listening_and_plain_http_fail(tmp_path: Path) -> None:
    closed = await tls_check(tmp_path, f"https://localhost:{free_port()}", None)
    assert closed.status == "fail" and "no TLS handshake" in closed.detail
    plain = await tls_check(tmp_path, "http://agent.example.com", None)
    assert plain.status == "fail" and "not https" in plain.detail


async def renewal(tmp_path: Path, paths: tuple[Path, ...]) -> Check:
    report = await run_doctor(
        make_settings(tmp_path),
        only=["tls.renewal"],
        letsencrypt_dir=tmp_path / "letsencrypt",
        renewal_paths=paths,
    )
    return report.checks[0]


async def test_certbot_renewal_timer_or_cron(tmp_path: Path) -> None:
    timer, cron = tmp_path / "certbot.timer", tmp_path / "crontab"
    assert (await renewal(tmp_path, (timer, cron))).detail.startswith("certbot is not used")
    (tmp_path / "letsencrypt" / "renewal").mkdir(parents=True)
    (tmp_path / "letsencrypt" / "renewal" / "agent.example.com.conf").write_text("[renewalparams]\n")
    missing = await renewal(tmp_path, (timer, cron))
    assert missing.status == "fail" and "agent.example.com" in missing.detail
    cron.write_text("17 3 * * * root certbot renew -q\n")
    assert (await renewal(tmp_path, (timer, cron))).status == "pass"
    cron.unlink()
    timer.write_text("[Timer]\nOnCalendar=*-*-* 00,12:00:00\n")
    by_timer = await renewal(tmp_path, (timer, cron))
    assert by_timer.status == "pass" and "certbot.timer" in by_timer.detail
