"""Lookups of the ``callers`` table shared by call records, tools and webhooks.

A caller's row is made at their first call (``ensure_caller``, from ``open_call``), named or not,
so the call, its messages and anything learnt later hang on one caller from the start; the memory
store fills in the profile and memories. A withheld number makes no row.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import Caller


async def caller_by_phone(session: AsyncSession, phone: str | None) -> Caller | None:
    """The caller with this number, if memory knows one."""
    if not phone:
        return None
    return await session.scalar(select(Caller).where(Caller.phone == normalise_phone(phone)))


async def caller_id(session: AsyncSession, phone: str | None) -> int | None:
    """``callers.id`` of a known caller, else None."""
    if not phone:
        return None
    return await session.scalar(select(Caller.id).where(Caller.phone == normalise_phone(phone)))


E164 = re.compile(r"\+[1-9]\d{6,14}")
# What Twilio puts in ``From`` when the caller withholds their number (ANONYMOUS, RESTRICTED,
# BLOCKED, UNAVAILABLE spelt on a keypad): not a person's number.
WITHHELD = {"+266696687", "+7378742833", "+2562533", "+8656696"}


def is_caller_number(phone: str | None) -> bool:
    """True for a real E.164 number (not withheld, not a client: or sip: identity)."""
    return bool(phone) and bool(E164.fullmatch(phone or "")) and phone not in WITHHELD


async def ensure_caller(session: AsyncSession, phone: str | None) -> Caller | None:
    """The caller with this number, made (unnamed) if it is their first call; None when withheld."""
    existing = await caller_by_phone(session, phone)
    if existing is not None or phone is None:
        return existing
    phone = normalise_phone(phone)
    if not is_caller_number(phone):
        return None
    try:
        async with session.begin_nested():  # two first calls at once: the second reads the first's row
            caller = Caller(phone=phone, profile={})
            session.add(caller)
    except IntegrityError:
        return await caller_by_phone(session, phone)
    return caller
