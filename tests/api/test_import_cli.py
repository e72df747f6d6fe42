"""`leadline import ORG FILE.csv` as an operator runs it: progress while real workers write
the rows, the counts as JSON, the error CSV written 0600, and one-line refusals that store
nothing."""

from __future__ import annotations

import csv
import io
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadline.settings import Settings
from models.imports import LeadImport
from tasks.context import TaskContext
from tests.support.imports import lead_file, phones
from tests.support.messaging import run_leadline as leadline

pytestmark = pytest.mark.e2e


def imports_of(context: TaskContext, org_id: uuid.UUID) -> int:
    with context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count()).select_from(LeadImport)) or 0)


def test_import_waits_for_the_workers_and_writes_the_error_csv(
    make_org: Any, settings: Settings, worker: Any, tmp_path: Path
) -> None:
    org = str(make_org().id)
    file = lead_file(good=1_500, bad_per_kind=3)
    source, errors = tmp_path / "leads.csv", tmp_path / "errors.csv"
    source.write_bytes(file.content)

    done = leadline(settings, "import", org, str(source), "--errors", str(errors), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["imported"], report["rejected"]) == ("done", 1_500, 30)
    assert f"rows processed: 1530/1530 (100%) [{'#' * 30}]" in done.stderr
    assert stat.S_IMODE(errors.stat().st_mode) == 0o600
    lines = [int(row[0]) for row in list(csv.reader(io.StringIO(errors.read_text())))[1:]]
    assert lines == sorted(file.bad)

    again = leadline(settings, "import", org, str(source))
    assert again.returncode == 0, again.stderr
    assert "imported before; nothing new written" in again.stdout
    assert f"import {report['id']} done" in again.stdout


def test_refused_files_end_with_one_line_and_store_nothing(
    make_org: Any, context: TaskContext, settings: Settings, tmp_path: Path
) -> None:
    made = make_org()
    (phone,) = phones(1)
    cases = {
        "colour.csv": (f"name,phone,colour\r\nAda,{phone},red\r\n".encode(), "unknown columns"),
        "latin.csv": (f"name,phone\r\nZoë,{phone}\r\n".encode("latin-1"), "not UTF-8"),
        "nul.csv": (b"name,phone\r\nA\x00,+1\r\n", "binary content"),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        refused = leadline(settings, "import", str(made.id), str(path))
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and words in refused.stderr
        assert "Traceback" not in refused.stderr
    mapped = tmp_path / "colour.csv"
    wrong = leadline(settings, "import", str(made.id), str(mapped), "--map", "colour=hue")
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: unknown field 'hue'")
    assert imports_of(context, made.id) == 0
