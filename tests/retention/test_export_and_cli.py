"""Export opens safely in a spreadsheet; every job runs from `schedule run` with no scheduler."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.retention import JobRun
from models.tables import Organization
from tasks.context import TaskContext
from tasks.jobs import JOBS_BY_NAME
from tests.helpers import wait_for
from tests.support.retention import add_lead
from tests.support.services import MakeOrg
from tests.support.webhooks import cancel_other_tests_deliveries

pytestmark = pytest.mark.integration


FORMULA = '=HYPERLINK("http://x")'


def leads_csv(archive: bytes) -> list[dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        text = bundle.read("leads.csv").decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_api_export_escapes_formulas_and_holds_only_own_org(
    context: TaskContext, client: TestClient, make_org: MakeOrg
) -> None:
    org, other = make_org(), make_org()
    add_lead(context, org.id, name=FORMULA, phone="+14155550155", email="x@example.org")
    add_lead(context, other.id, name="Other Org Lead", phone="+14155550166")

    response = client.get("/v1/export?format=csv", headers=org.auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    rows = leads_csv(response.content)
    assert [row["name"] for row in rows] == ["'" + FORMULA]
    assert rows[0]["phone"] == "'+14155550155" and rows[0]["email"] == "x@example.org"
    assert not any(column.endswith(("_bidx", "_ct")) for column in rows[0])

    document = client.get("/v1/export", headers=org.auth).json()
    assert [lead["name"] for lead in document["leads"]] == [FORMULA]
    assert client.get("/v1/export").status_code == 401
    assert client.get("/v1/export?format=xml", headers=org.auth).status_code == 422


def test_cli_export_writes_escaped_csv(
    context: TaskContext, make_org: MakeOrg, cli: Callable[..., Any], tmp_path: Path
) -> None:
    org = make_org()
    add_lead(context, org.id, name=FORMULA, email="cli@example.org")
    out = tmp_path / "export.zip"
    result = cli("export", str(org.id), "--format", "csv", "--out", str(out))
    assert result["rows"]["leads"] == 1
    assert leads_csv(out.read_bytes())[0]["name"] == "'" + FORMULA
    assert out.stat().st_mode & 0o077 == 0


def test_schedule_run_each_job_without_a_scheduler(
    context: TaskContext, worker: dramatiq.Worker, cli: Callable[..., Any]
) -> None:
    cancel_other_tests_deliveries(context)  # the webhook sweep must not wait on theirs
    sent = cli("schedule", "run", *JOBS_BY_NAME)
    assert [item["job"] for item in sent] == list(JOBS_BY_NAME)

    def finished() -> set[str]:
        with context.db.maintenance() as session:
            rows = session.execute(select(JobRun.job, JobRun.scheduled_for, JobRun.status)).all()
        slots = {(item["job"], item["scheduled_for"]) for item in sent}
        return {
            job
            for job, slot, status in rows
            if (job, slot.isoformat()) in slots and status == "done"
        }

    # Each job covers every org of the run's shared database (backups encrypt all their rows),
    # so late in a full run they take a while: wait long, and name the ones that did not end.
    try:
        wait_for(lambda: finished() == set(JOBS_BY_NAME), timeout=120)
    except AssertionError:
        raise AssertionError(f"jobs not done: {sorted(set(JOBS_BY_NAME) - finished())}") from None
    listed = {item["job"]: item for item in cli("schedule", "list")}
    assert set(listed) == set(JOBS_BY_NAME)
    assert all(item["last_status"] == "done" and item["next_slot"] for item in listed.values())


def test_org_delete_now_from_the_cli(
    context: TaskContext, make_org: MakeOrg, cli: Callable[..., Any]
) -> None:
    org = make_org()
    add_lead(context, org.id, name="Leaving Soon", phone="+14155550177")
    result = cli("org", "delete", str(org.id), "--now", "--yes")
    assert result["deleted"] is True and result["rows"]["leads"] == 1
    with context.db.maintenance() as session:
        assert session.get(Organization, org.id) is None
    assert "Leaving Soon" not in json.dumps(result)
