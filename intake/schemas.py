"""Request bodies. Unknown fields are rejected; sizes are capped; errors never echo input."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from intake.api_errors import ApiError, FieldError
from models.normalize import (
    InvalidPhoneNumber,
    NationalNumberWithoutRegion,
    has_control_characters,
    normalize_phone,
)

# Validation context key: the org's default phone region (None: +E.164 required)
DEFAULT_REGION = "default_region"
# Error type of a national number validated without a region (the route may retry with one)
NEEDS_REGION = "phone_needs_region"


class StrictModel(BaseModel):
    """Every request body: no unknown fields, and no control characters in any string.

    NUL cannot be stored in PostgreSQL text and other controls have no place in a form field;
    fields listed in `free_text` (message bodies) may keep tab, CR and LF."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    free_text: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")  # before any field's own parsing (phone, email)
    @classmethod
    def no_control_characters(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and has_control_characters(
            value, line_breaks_allowed=info.field_name in cls.free_text
        ):
            raise PydanticCustomError("control_character", "must not contain control characters")
        return value


class ConsentIn(StrictModel):
    """SMS consent and its evidence: the text shown, and where it was given. Stored encrypted
    with the lead (models/leads.py), with the text's SHA-256."""

    free_text = frozenset({"text"})

    sms: bool = False
    # Marketing email (docs/messaging.md "Email consent"): counts only with the wording the
    # person agreed to (`text`) and an email address to send to.
    email: bool = False
    text: str | None = Field(default=None, max_length=1000)
    ip: str | None = Field(default=None, max_length=45, description="The visitor's IP address.")
    user_agent: str | None = Field(default=None, max_length=512)
    page_url: str | None = Field(
        default=None, max_length=2048, description="The http(s) page the form was on."
    )
    form_id: str | None = Field(default=None, max_length=128)

    @field_validator("ip")
    @classmethod
    def ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address") from None

    @field_validator("page_url")
    @classmethod
    def web_page(cls, value: str | None) -> str | None:
        """An absolute http(s) URL with a host and no credentials or spaces in it."""
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            raise ValueError("not a valid URL") from None
        good = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.username is None
            and port_ok
            and not any(ch.isspace() for ch in value)
        )
        if not good:
            raise ValueError("must be an absolute http(s) URL without credentials")
        return value

    @model_validator(mode="after")
    def email_consent_needs_its_wording(self) -> ConsentIn:
        if self.email and not (self.text and self.text.strip()):
            raise ValueError("email consent needs the consent text the person agreed to")
        return self


class LeadIn(StrictModel):
    free_text = frozenset({"message"})

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: EmailStr | None = Field(default=None, max_length=254)
    message: str | None = Field(default=None, max_length=5000)
    source: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    consent: ConsentIn | None = None

    @field_validator("phone")
    @classmethod
    def phone_must_be_valid(cls, value: str | None, info: ValidationInfo) -> str | None:
        """E.164, or a national number read in the org's default region (context)."""
        if value is None:
            return None
        context = info.context if isinstance(info.context, dict) else {}
        region = context.get(DEFAULT_REGION)
        try:
            return normalize_phone(value, region if isinstance(region, str) else None)
        except NationalNumberWithoutRegion as exc:
            raise PydanticCustomError(NEEDS_REGION, str(exc)) from None
        except InvalidPhoneNumber as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def phone_or_email(self) -> LeadIn:
        if not self.phone and not self.email:
            raise ValueError("phone or email is required")
        if self.consent is not None and self.consent.email and not self.email:
            raise ValueError("email consent needs an email address")
        return self


def e164_or_422(phone: str, loc: list[str]) -> str:
    """A phone number given to the tenant API (in the body or the query, `loc`) in E.164, or
    the 422 that names the field and never echoes the value."""
    try:
        return normalize_phone(phone)
    except InvalidPhoneNumber:
        field: FieldError = {"loc": loc, "msg": "not an E.164 number", "type": "phone"}
        raise ApiError(422, "invalid request", fields=[field]) from None


def field_errors(error: ValidationError) -> list[FieldError]:
    """Pydantic errors without the submitted values, safe to return to the client."""
    return safe_errors(error.errors(include_url=False, include_input=False))


def safe_errors(errors: Sequence[Mapping[str, object]]) -> list[FieldError]:
    """Keep location, message and type; drop `input` and `ctx`, which may hold PII."""
    return [
        {
            "loc": error_location(item.get("loc", ())),
            "msg": str(item.get("msg", "")),
            "type": str(item.get("type", "")),
        }
        for item in errors
    ]


def error_location(loc: object) -> list[str]:
    """Pydantic's `loc`, a tuple of names and indexes, as text."""
    return [str(part) for part in loc] if isinstance(loc, tuple | list) else []
