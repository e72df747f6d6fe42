"""`python -m tests.support.fake_attention_cli ...`: the real CLI with one fake attention source
registered, as other modules register theirs (unknown SMS, disabled endpoints).

`--batch '[["dlq", "list"], ...]'` runs several commands in this one process (each opens its
own runtime, as separate invocations would) and prints a JSON list of {code, stdout}: the
interpreter start-up is most of a command's cost, and tests run several in a row.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

from sqlalchemy.orm import Session

from leadline.cli import app, main
from tasks.attention import ATTENTION_LISTS
from tests.support.operations import FAKE_ROWS


def fake_unknown_sms(_session: Session) -> list[dict[str, Any]]:
    return FAKE_ROWS


ATTENTION_LISTS["test_fake_unknown_sms"] = fake_unknown_sms


def run_batch(commands: list[list[str]]) -> list[dict[str, Any]]:
    results = []
    for argv in commands:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = app(args=argv, standalone_mode=False, prog_name="leadline")
        results.append({"code": code or 0, "stdout": out.getvalue()})
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--batch"]:
        print(json.dumps(run_batch(json.loads(sys.argv[2]))))
    else:
        main()
