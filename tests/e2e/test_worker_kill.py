"""SIGKILL a real worker process in the middle of 1,000 alerts: after a restart every message
is sent exactly once or marked `unknown`, none is lost, and reconciliation with the provider's
message list then settles every `unknown` one (found → `sent`; not found → an alert is sent
again), still with no message reaching the provider twice."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from leadline.sandbox import SandboxState
from leadline.settings import Settings
from tasks.reconcile import reconcile_message
from tasks.sending import sweep_outbound
from tests.helpers import wait_for
from tests.messaging_support import (
    outbound_rows,
    process_environment,
    queue_alerts,
    random_phone,
)

# A thousand messages through two worker processes: more than the default 120 s on a busy box.
pytestmark = pytest.mark.timeout(300)
ALERTS = 1000
RECIPIENTS = 20
THREADS = 8


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "leadline"), "worker"]
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            env=process_environment(settings, LEADLINE_WORKER_THREADS=str(THREADS)),
            stdout=output,
            stderr=output,
        )


def unfinished(context: Any, org_id: uuid.UUID) -> int:
    return sum(row.state in ("queued", "sending") for row in outbound_rows(context, org_id))


def test_sigkill_mid_run_loses_nothing_and_sends_nothing_twice(
    broker: Any,
    make_org: Any,
    context: Any,
    settings: Settings,
    sandbox_state: SandboxState,
    tmp_path: Path,
) -> None:
    broker.flush_all()
    org = make_org()
    # Each request takes a little while, so some are in flight when the worker dies.
    sandbox_state.push_behaviour([{"delay": 0.02}] * ALERTS, channel="sms")
    for recipient in (random_phone() for _ in range(RECIPIENTS)):
        queue_alerts(context, org.id, recipient, ALERTS // RECIPIENTS)

    first = start_worker(settings, tmp_path / "worker-1.log")
    try:
        wait_for(lambda: sandbox_state.stats()["accepted"] >= 250, timeout=60)
    finally:
        first.kill()  # SIGKILL: no shutdown, no acks, rows left `sending`
        first.wait(timeout=10)
    accepted_at_kill = sandbox_state.stats()["accepted"]
    assert accepted_at_kill < ALERTS

    # What the scheduler's inbox sweep does: re-enqueue rows the dead worker held.
    assert sweep_outbound(context, queued_older_than=0, sending_older_than=0) > 0
    second = start_worker(settings, tmp_path / "worker-2.log")
    try:
        wait_for(lambda: unfinished(context, org.id) == 0, timeout=90)
        check_after_restart(context, org.id, sandbox_state, accepted_at_kill)
        for row in outbound_rows(context, org.id, state="unknown"):
            reconcile_message(context, org.id, row.id, grace=timedelta(0))
        wait_for(lambda: unfinished(context, org.id) == 0, timeout=90)
    finally:
        second.terminate()
        second.wait(timeout=20)

    rows = outbound_rows(context, org.id)
    assert Counter(row.state for row in rows) == {"sent": ALERTS}
    deliveries = Counter(record["body"] for record in sandbox_state.sent())
    assert len(deliveries) == ALERTS
    assert max(deliveries.values()) == 1, "a message reached the provider twice"
    assert {row.provider_sid for row in rows} == {r["sid"] for r in sandbox_state.sent()}


def check_after_restart(
    context: Any, org_id: uuid.UUID, sandbox_state: SandboxState, accepted_at_kill: int
) -> None:
    rows = outbound_rows(context, org_id)
    final = Counter(row.state for row in rows)
    records = sandbox_state.sent()
    assert len(rows) == ALERTS
    assert set(final) <= {"sent", "unknown"}, final
    assert sandbox_state.stats()["accepted"] > accepted_at_kill
    deliveries = Counter(record["body"] for record in records)
    assert max(deliveries.values()) == 1, "a message reached the provider twice"
    sent_sids = Counter(row.provider_sid for row in rows if row.state == "sent")
    recorded_sids = {record["sid"] for record in records}
    assert all(count == 1 for count in sent_sids.values())
    assert set(sent_sids) <= recorded_sids
    # Every record the provider holds is a sent row, or one of the rows marked unknown.
    assert len(records) - final["sent"] <= final["unknown"]
    reached = {record["body"] for record in records}
    unknown_rows = [row for row in rows if row.state == "unknown"]
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        bodies = [
            cipher.decrypt(r.body_ct, "outbound_messages", "body_ct", r.id).decode()
            for r in unknown_rows
        ]
    never_reached = sum(body not in reached for body in bodies)
    print(
        f"after SIGKILL: {dict(final)}, provider received {len(records)}, "
        f"unknown that never reached it: {never_reached}"
    )
