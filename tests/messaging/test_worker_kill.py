"""SIGKILL a real worker process in the middle of 1,000 alerts: after a restart every message
is sent exactly once or marked `unknown`, none is lost, and reconciliation with the provider's
message list then settles every `unknown` one (found → `sent`; not found → an alert is sent
again), still with no message reaching the provider twice.

The sandbox and the database are shared by the whole session, and the inbox sweep re-enqueues
stranded rows of every org (as the scheduler does), so the provider may also receive messages
that are not this test's: every count below is over this test's alerts, told apart by their
bodies (each carries a random batch tag)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from leadline.sandbox import SandboxState, SentMessage
from leadline.settings import Settings
from tasks.context import TaskContext
from tasks.reconcile import reconcile_message
from tasks.sending import sweep_outbound
from tests.helpers import wait_for
from tests.support.messaging import (
    distinct_phones,
    outbound_rows,
    queue_alerts,
)

# A thousand messages through two worker processes: more than the default 120 s on a busy box.
from tests.support.processes import child_env
from tests.support.services import MakeOrg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ALERTS = 1000
RECIPIENTS = 20
THREADS = 8


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "leadline"), "worker"]
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            env=child_env(settings, LEADLINE_WORKER_THREADS=str(THREADS)),
            stdout=output,
            stderr=output,
        )


def unfinished(context: TaskContext, org_id: uuid.UUID) -> int:
    return sum(row.state in ("queued", "sending") for row in outbound_rows(context, org_id))


def bodies_of(context: TaskContext, org_id: uuid.UUID, rows: list[Any]) -> list[str]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [
            cipher.decrypt(r.body_ct, "outbound_messages", "body_ct", r.id).decode() for r in rows
        ]


def records_of(
    sandbox_state: SandboxState, bodies: set[str], recipients: set[str]
) -> list[SentMessage]:
    """What the provider holds of this test's alerts; nothing else reached their recipients."""
    records = sandbox_state.sent()
    strays = [r["body"] for r in records if r["to"] in recipients and r["body"] not in bodies]
    assert strays == [], "the provider received a message to these recipients that is no alert"
    return [record for record in records if record["body"] in bodies]


def test_sigkill_mid_run_loses_nothing_and_sends_nothing_twice(
    broker: dramatiq.Broker,
    make_org: MakeOrg,
    context: TaskContext,
    settings: Settings,
    sandbox_state: SandboxState,
    tmp_path: Path,
) -> None:
    broker.flush_all()
    org = make_org()
    # Each request takes a little while, so some are in flight when the worker dies.
    sandbox_state.push_behaviour([{"delay": 0.02}] * ALERTS, channel="sms")
    recipients = distinct_phones(RECIPIENTS + 1)
    # Another org's older message stranded `queued`, as a stack stopped mid-send leaves one:
    # the sweep below sends it too (first), to the same provider; it is not one of ours.
    other = make_org()
    (stranded,) = queue_alerts(context, other.id, recipients[-1], 1, enqueue=False)
    (stranded_body,) = bodies_of(context, other.id, outbound_rows(context, other.id))
    for recipient in recipients[:RECIPIENTS]:
        queue_alerts(context, org.id, recipient, ALERTS // RECIPIENTS)
    bodies = set(bodies_of(context, org.id, outbound_rows(context, org.id)))
    ours = partial(records_of, sandbox_state, bodies, set(recipients[:RECIPIENTS]))

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
        check_after_restart(context, org.id, ours(), accepted_at_kill, sandbox_state)
        for row in outbound_rows(context, org.id, state="unknown"):
            reconcile_message(context, org.id, row.id, grace=timedelta(0))
        wait_for(lambda: unfinished(context, org.id) == 0, timeout=90)
        wait_for(lambda: unfinished(context, other.id) == 0, timeout=90)
    finally:
        second.terminate()
        second.wait(timeout=20)

    rows = outbound_rows(context, org.id)
    assert Counter(row.state for row in rows) == {"sent": ALERTS}
    records = ours()
    deliveries = Counter(record["body"] for record in records)
    assert len(deliveries) == ALERTS
    assert max(deliveries.values()) == 1, "a message reached the provider twice"
    assert {row.provider_sid for row in rows} == {r["sid"] for r in records}
    assert [(r.id, r.state) for r in outbound_rows(context, other.id)] == [(stranded, "sent")]
    assert [r["body"] for r in sandbox_state.sent()].count(stranded_body) == 1


def check_after_restart(
    context: TaskContext,
    org_id: uuid.UUID,
    records: list[dict[str, Any]],
    accepted_at_kill: int,
    sandbox_state: SandboxState,
) -> None:
    """`records`: what the provider holds of this test's alerts (see records_of)."""
    rows = outbound_rows(context, org_id)
    final = Counter(row.state for row in rows)
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
    bodies = bodies_of(context, org_id, unknown_rows)
    never_reached = sum(body not in reached for body in bodies)
    print(
        f"after SIGKILL: {dict(final)}, provider received {len(records)}, "
        f"unknown that never reached it: {never_reached}"
    )
