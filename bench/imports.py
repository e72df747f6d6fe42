"""CSV import: a 100,000-row file with 1,000 bad rows of ten kinds (tests/support/imports.py)
uploaded to a real `leadline intake` process and written by a real `leadline worker` (one
process per core, as deployed): the time from the start of the upload until the import is
`done`, and the cost of one imported row relative to one POST /v1/leads measured in the same
run on the same processes (wall time per lead from the first POST until the worker has
stored them all, posted over 16 connections). The counts are checked (99,000 imported, 1,000
rejected) and the same file uploaded again must answer 200 with the same import and add no
lead.

Target (issue 14): the 100,000 rows imported in ≤ 60 s.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from bench.intake import server
from bench.pipeline import lead_body
from bench.setup import BenchEnv, BenchOrg, leadline_worker
from tasks.imports.report import ImportReport
from tests.support.imports import lead_file

TARGETS = {"import_seconds": ("<=", 60.0)}
Worker = subprocess.Popen[bytes]
ROWS = 100_000
BAD_PER_KIND = 100
POSTED = 2_000
CONNECTIONS = 16
# Polling more often takes CPU from the work measured (the figure's resolution is this).
POLL_SECONDS = 0.5


def stored_leads(env: BenchEnv, org_id: uuid.UUID) -> int:
    from models.tables import Lead

    with env.context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count()).select_from(Lead)) or 0)


def wait(check: Callable[[], bool], worker: Worker, timeout: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out")
        time.sleep(POLL_SECONDS)


def post_leads(env: BenchEnv, base: str, org: BenchOrg, worker: Worker) -> float:
    """Milliseconds per lead: POST_ED leads posted, until all are stored."""
    headers = {"Content-Type": "application/json", **org.auth}
    started = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:

        def post(serial: int) -> None:
            response = http.post("/v1/leads", json=lead_body(serial))
            if response.status_code != 202:
                raise RuntimeError(f"POST /v1/leads answered {response.status_code}")

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(post, range(POSTED)))
    wait(lambda: stored_leads(env, org.id) >= POSTED, worker)
    return (time.perf_counter() - started) * 1000 / POSTED


def upload(base: str, org: BenchOrg, content: bytes) -> httpx.Response:
    files = {"file": ("leads.csv", content, "text/csv")}
    return httpx.post(base + "/v1/imports", files=files, headers=org.auth, timeout=120)


def report(base: str, org: BenchOrg, import_id: str) -> ImportReport:
    response = httpx.get(f"{base}/v1/imports/{import_id}", headers=org.auth, timeout=30)
    body: ImportReport = response.json()
    return body


def import_file(
    env: BenchEnv, base: str, org: BenchOrg, content: bytes, worker: Worker
) -> tuple[float, float, ImportReport]:
    """(seconds until the 202, seconds until done, the final report)."""
    started = time.perf_counter()
    response = upload(base, org, content)
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/imports answered {response.status_code}: {response.text}")
    accepted = time.perf_counter() - started
    import_id = response.json()["id"]
    wait(lambda: report(base, org, import_id)["status"] == "done", worker)
    return accepted, time.perf_counter() - started, report(base, org, import_id)


def check(final: ImportReport, good: int, bad: int) -> None:
    counts = (final["rows"], final["imported"], final["updated"], final["rejected"])
    if counts != (good + bad, good, 0, bad):
        raise RuntimeError(f"unexpected counts {counts}")


def run(env: BenchEnv) -> dict[str, float]:
    file = lead_file(good=ROWS - 10 * BAD_PER_KIND, bad_per_kind=BAD_PER_KIND, seed=14)
    posting, importing = env.make_org("Posted"), env.make_org("Imported")
    command = [sys.executable, "-m", "leadline", "intake", "--workers", "1"]
    # `leadline worker` as deployed: one process per core (several write one import).
    with server(env, command, "imports", "/healthz") as target, leadline_worker(env) as worker:
        post_ms = post_leads(env, target.base, posting, worker)
        accepted, seconds, final = import_file(env, target.base, importing, file.content, worker)
        check(final, len(file.good), len(file.bad))
        again = upload(target.base, importing, file.content)
        if again.status_code != 200 or again.json()["id"] != final["id"]:
            raise RuntimeError(f"the second upload answered {again.status_code}")
        if stored_leads(env, importing.id) != len(file.good):
            raise RuntimeError("the second upload changed the leads")
    per_row_ms = seconds * 1000 / ROWS
    env.note(
        f"{ROWS:,} rows ({len(file.content) / 1e6:.1f} MB, {len(file.bad):,} bad of 10 kinds), "
        "one intake process, `leadline worker` (one process per core); POST /v1/leads: "
        f"{POSTED:,} leads over {CONNECTIONS} connections until stored; second upload: 200, "
        "no new lead"
    )
    return {
        "import_seconds": seconds,
        "upload_accepted_seconds": accepted,
        "rows_per_second": ROWS / seconds,
        "import_ms_per_row": per_row_ms,
        "post_lead_ms_per_lead": post_ms,
        "row_cost_vs_post_lead": per_row_ms / post_ms,
    }
