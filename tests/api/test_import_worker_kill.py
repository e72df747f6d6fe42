"""SIGKILL a real worker process in the middle of a CSV import: after the sweep and a new
worker, every good row is one lead, every bad row one line of the error CSV, and the counters
say so; nothing lost, nothing written twice."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from leadline.settings import Settings
from models.imports import LeadImport, LeadImportError
from models.tables import Lead
from tasks.context import TaskContext
from tasks.imports.batches import sweep_imports
from tests.helpers import wait_for
from tests.support.imports import lead_file, upload
from tests.support.processes import child_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
GOOD = 12_000
BAD_PER_KIND = 20


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "leadline"), "worker", "--processes", "1"]
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            env=child_env(settings, LEADLINE_WORKER_THREADS="2"),
            stdout=output,
            stderr=output,
        )


def state(context: TaskContext, org_id: uuid.UUID, import_id: str) -> LeadImport:
    with context.db.tenant(org_id) as session:
        found = session.get(LeadImport, uuid.UUID(import_id))
        assert found is not None
        session.expunge(found)
        return found


def count(context: TaskContext, org_id: uuid.UUID, *columns: Any) -> int:
    with context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count(*columns))) or 0)


def test_a_worker_killed_mid_import_loses_and_duplicates_nothing(
    broker: Any,
    client: TestClient,
    make_tenant: Any,
    context: TaskContext,
    settings: Settings,
    tmp_path: Path,
) -> None:
    broker.flush_all()
    tenant = make_tenant()
    file = lead_file(good=GOOD, bad_per_kind=BAD_PER_KIND)
    response = upload(client, tenant.auth("admin"), file.content)
    assert response.status_code == 202
    import_id = response.json()["id"]

    first = start_worker(settings, tmp_path / "worker-1.log")
    try:
        wait_for(lambda: state(context, tenant.id, import_id).imported >= 3_000, timeout=120)
    finally:
        first.kill()  # SIGKILL: mid-batch, the batch's transaction is never committed
        first.wait(timeout=10)
    at_kill = state(context, tenant.id, import_id)
    assert at_kill.status == "running" and at_kill.imported < GOOD

    assert sweep_imports(context, older_than=0) >= 1  # what the scheduler's inbox sweep does
    second = start_worker(settings, tmp_path / "worker-2.log")
    try:
        wait_for(lambda: state(context, tenant.id, import_id).status == "done", timeout=180)
    finally:
        second.terminate()
        second.wait(timeout=20)

    done = state(context, tenant.id, import_id)
    assert (done.rows, done.imported, done.updated, done.rejected) == (
        GOOD + 10 * BAD_PER_KIND,
        GOOD,
        0,
        10 * BAD_PER_KIND,
    )
    assert count(context, tenant.id, Lead.id) == GOOD
    assert count(context, tenant.id, func.distinct(Lead.phone_bidx)) == GOOD
    assert count(context, tenant.id, LeadImportError.id) == 10 * BAD_PER_KIND
    assert done.next_line == done.rows + 2  # past the last line (the header is line 1)
    print(f"killed at {at_kill.imported} of {GOOD} imported rows, next line {at_kill.next_line}")
