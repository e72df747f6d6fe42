"""Request bodies. Unknown fields are rejected; sizes are capped; errors never echo input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.normalize import InvalidPhoneNumber, normalize_phone


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConsentIn(StrictModel):
    sms: bool = False
    text: str | None = Field(default=None, max_length=1000)


class LeadIn(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: EmailStr | None = Field(default=None, max_length=254)
    message: str | None = Field(default=None, max_length=5000)
    source: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    consent: ConsentIn | None = None

    @field_validator("phone")
    @classmethod
    def phone_must_be_valid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_phone(value)
        except InvalidPhoneNumber as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def phone_or_email(self) -> LeadIn:
        if not self.phone and not self.email:
            raise ValueError("phone or email is required")
        return self


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the submitted values, safe to return to the client."""
    return safe_errors(error.errors(include_url=False, include_input=False))


def safe_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep location, message and type; drop `input` and `ctx`, which may hold PII."""
    return [
        {
            "loc": [str(part) for part in item.get("loc", ())],
            "msg": str(item.get("msg", "")),
            "type": str(item.get("type", "")),
        }
        for item in errors
    ]
