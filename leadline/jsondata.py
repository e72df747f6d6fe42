"""JSON from outside (providers' webhooks, stored payloads): typed as plain objects, read
through these accessors, so nothing assumes a shape that an untrusted sender did not send."""

from __future__ import annotations

JsonObject = dict[str, object]


def as_object(value: object) -> JsonObject:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def text_of(data: JsonObject, key: str) -> str | None:
    return text(data.get(key))
