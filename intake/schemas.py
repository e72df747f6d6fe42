"""Request bodies. Unknown fields are rejected; sizes are capped; errors never echo input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

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
    free_text = frozenset({"text"})

    sms: bool = False
    text: str | None = Field(default=None, max_length=1000)


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
