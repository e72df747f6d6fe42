"""Canonical forms of identifiers, so blind indexes match however a value was typed, and the
one check for control characters every piece of submitted text goes through."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# C0 and C1 controls, DEL, and lone surrogates (which cannot be stored or encoded as UTF-8)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_LINE_BREAKS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class InvalidPhoneNumber(ValueError):
    """The text is not a valid, dialable phone number."""


class NationalNumberWithoutRegion(InvalidPhoneNumber):
    """A national number, and no default region to read it in: +E.164 is required."""


class InvalidRegion(ValueError):
    """Not a region code phone numbers can be read in."""


class InvalidEmailAddress(ValueError):
    """Not an address email can be sent from or to."""


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """E.164 form of a phone number; raises InvalidPhoneNumber (without echoing it).

    A number without a leading `+` is read in `default_region` (the organisation's, see
    models.orgs.set_default_region); without one it is refused rather than guessed."""
    international = raw.strip().startswith("+")
    if not international and default_region is None:
        raise NationalNumberWithoutRegion(
            "must be in +E.164 form (the organisation has no default region)"
        )
    try:
        parsed = phonenumbers.parse(raw, None if international else default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_region(raw: str) -> str:
    """An ISO 3166-1 alpha-2 code phonenumbers knows (`us` → `US`); raises InvalidRegion."""
    code = raw.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidRegion("not a region code phone numbers can be read in, such as US or GB")
    return code


def has_control_characters(text: str, line_breaks_allowed: bool = False) -> bool:
    """NUL and other control characters; tab, CR and LF pass in free text (message bodies)."""
    pattern = _CONTROL_BUT_LINE_BREAKS if line_breaks_allowed else _CONTROL
    return pattern.search(text) is not None


def normalize_email(raw: str) -> str:
    return raw.strip().casefold()


def sender_address(raw: str) -> str:
    """An address in email-validator's normal form, checked for syntax only (whether its domain
    may send is Postmark's sender-signature check). Raises InvalidEmailAddress."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise InvalidEmailAddress("not a valid email address") from None
    return str(checked.normalized)
