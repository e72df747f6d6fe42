"""What an outbound email row's body_ct holds: sender, subject, text and extra headers, as
one JSON document encrypted like an SMS body (the subject and the text name the lead)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from leadline.jsondata import as_list, as_object, text_of

# Postmark's default transactional stream; campaigns go on the broadcast stream
# (POSTMARK_BROADCAST_STREAM), which Postmark keeps apart for reputation and unsubscribes.
TRANSACTIONAL_STREAM = "outbound"
StreamKind = Literal["transactional", "broadcast"]


@dataclass(frozen=True)
class EmailContent:
    sender: str
    subject: str
    text: str
    stream: StreamKind = "transactional"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def encode(self) -> str:
        document = {
            "from": self.sender,
            "subject": self.subject,
            "text": self.text,
            "stream": self.stream,
            "headers": [list(pair) for pair in self.headers],
        }
        return json.dumps(document, separators=(",", ":"))


def decode_email(stored: str) -> EmailContent:
    """The row's own document (written by EmailContent.encode, then encrypted)."""
    document = as_object(json.loads(stored))
    headers = tuple(
        (str(pair[0]), str(pair[1]))
        for pair in (as_list(item) for item in as_list(document.get("headers")))
        if len(pair) == 2
    )
    stream: StreamKind = (
        "broadcast" if text_of(document, "stream") == "broadcast" else "transactional"
    )
    return EmailContent(
        sender=text_of(document, "from") or "",
        subject=text_of(document, "subject") or "",
        text=text_of(document, "text") or "",
        stream=stream,
        headers=headers,
    )
