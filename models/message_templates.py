"""Message templates: safe defaults, validation and rendering.

Templates use `{placeholder}` names from a fixed list and nothing else: no attribute access,
no format specs, so a template written by a tenant can only ever show the lead's own data and
the org's program details, never a secret or another object's attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from leadline.errors import LeadlineError
from models.normalize import has_control_characters

PLACEHOLDERS = frozenset(
    {
        "org",
        "program",
        "contact",
        "frequency",
        "name",
        "phone",
        "email",
        "message",
        "source",
        "lead_id",
    }
)
SMS_MAX_CHARS = 1600
TELEGRAM_MAX_CHARS = 4096
STOP_FOOTER = "Reply STOP to opt out."

DEFAULT_TEMPLATES: dict[str, str] = {
    "owner_alert_sms": "New lead for {org}: {name} {phone} {email}\n{message}",
    "owner_alert_telegram": (
        "New lead ({source})\nName: {name}\nPhone: {phone}\nEmail: {email}\nMessage: {message}"
    ),
    "lead_updated_sms": "Lead updated for {org}: {name} {phone} {email}\n{message}",
    "lead_updated_telegram": (
        "Lead updated ({source})\nName: {name}\nPhone: {phone}\nEmail: {email}\nMessage: {message}"
    ),
    "reply_alert_sms": "Reply from {name} {phone}: {message}",
    "reply_alert_telegram": "Reply from {name} ({phone}):\n{message}",
    "lead_autoreply": (
        "Thanks for contacting {org}! We will get back to you shortly. "
        "Msg&data rates may apply. Reply HELP for help, STOP to opt out."
    ),
    "help_reply": (
        "{program}: lead follow-ups from {org}. Help: {contact}. Msg frequency: {frequency}. "
        "Msg&data rates may apply. Reply STOP to opt out, START to resume."
    ),
}
TEMPLATE_LIMITS = {
    name: TELEGRAM_MAX_CHARS if name.endswith("_telegram") else SMS_MAX_CHARS
    for name in DEFAULT_TEMPLATES
}
DEFAULT_FREQUENCY = "varies"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SPACES = re.compile(r"[ \t]{2,}")


class TemplateError(LeadlineError):
    """A template uses an unknown placeholder or name, or is too long."""


def validate_template(name: str, template: str) -> None:
    if name not in DEFAULT_TEMPLATES and name != "campaign":
        raise TemplateError(f"unknown template {name!r}; known: {sorted(DEFAULT_TEMPLATES)}")
    if not template.strip():
        raise TemplateError("a template must not be empty")
    if has_control_characters(template, line_breaks_allowed=True):
        raise TemplateError("a template must not contain control characters")
    if len(template) > TEMPLATE_LIMITS.get(name, SMS_MAX_CHARS):
        raise TemplateError(f"template {name!r} is too long")
    unknown = {match for match in _PLACEHOLDER.findall(template) if match not in PLACEHOLDERS}
    if unknown:
        raise TemplateError(
            f"unknown placeholders {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}"
        )


def render(template: str, values: Mapping[str, str | None], limit: int = SMS_MAX_CHARS) -> str:
    """Fill placeholders; missing values become empty; the result is tidied and capped."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in PLACEHOLDERS:
            return match.group(0)
        return values.get(key) or ""

    text = _PLACEHOLDER.sub(fill, template)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    tidy = "\n".join(line for line in lines if line)
    return tidy if len(tidy) <= limit else tidy[: limit - 1] + "…"


def with_stop_footer(body: str, limit: int = SMS_MAX_CHARS) -> str:
    """Campaign texts always say how to opt out."""
    if "stop" in body.casefold():
        return body
    footer = " " + STOP_FOOTER
    return body[: limit - len(footer)] + footer
