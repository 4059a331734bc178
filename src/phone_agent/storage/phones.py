"""Phone numbers as the database keys them. A number is normalised once, where it enters the system
(the Twilio webhook, an API request, a CLI argument), and travels in that one form afterwards."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")


def normalise_phone(phone: str) -> str:
    """E.164-ish: no spaces, dashes, dots or brackets (``"+1 (555) 010-0200"`` → ``"+15550100200"``)."""
    return _SEPARATORS.sub("", phone.strip())


def normalise_optional(phone: str | None) -> str | None:
    """``normalise_phone`` for a number that may be withheld (None or blank → None)."""
    if phone is None or not phone.strip():
        return None
    return normalise_phone(phone)
