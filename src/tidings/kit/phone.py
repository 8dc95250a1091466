"""Phone numbers, parsed and normalised to E.164 with `phonenumbers`."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


class InvalidPhoneNumber(ValueError):
    pass


# Parsing costs tens of microseconds and every send parses its recipient: remember the
# answers (a pure function of its arguments; refusals raise, so they are not remembered).
@lru_cache(maxsize=65_536)
def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """Return the E.164 form of `raw`, or raise InvalidPhoneNumber saying why."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if len(text) > 32:
        raise InvalidPhoneNumber("phone number is too long")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(
            f"cannot parse {text!r} as a phone number: use international format, e.g. +15550100001"
        ) from exc
    if not (phonenumbers.is_valid_number(parsed) or _is_demo_number(parsed)):
        raise InvalidPhoneNumber(f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _is_demo_number(parsed: phonenumbers.PhoneNumber) -> bool:
    """North American +1 555 01x xxxx numbers: unassigned, kept for demos and tests.

    `phonenumbers` rightly calls them invalid (area code 555 is not in service), but operators
    need numbers that can never reach a real person when they try Tidings out.
    """
    national = str(parsed.national_number)
    return parsed.country_code == 1 and len(national) == 10 and national.startswith("55501")
