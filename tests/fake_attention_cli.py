"""`python -m tests.fake_attention_cli ...`: the real CLI with one fake attention source
registered, as other modules register theirs (unknown SMS, disabled endpoints)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from leadline.cli import main
from tasks.registry import attention

FAKE_ROWS = [{"message_id": "SM-test-0001", "state": "unknown", "org_id": "org-test"}]


@attention("test_fake_unknown_sms")
def fake_unknown_sms(_session: Session) -> list[dict[str, Any]]:
    return FAKE_ROWS


if __name__ == "__main__":
    main()
