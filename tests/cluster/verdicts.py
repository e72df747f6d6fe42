"""The cluster run's checks: the chaos run's (tests/chaos/checks.py) over everything both
hosts accepted, then what losing host a must not break: b keeps accepting and processing,
the scheduler's leadership moves to b, what a had taken is finished by b, and the backup
taken after the loss is in the shared object store.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from tasks.context import TaskContext
from tests.chaos import checks
from tests.chaos.collect import provider_sms, read_stored, spool_count, spooled_total, unknown_count
from tests.chaos.report import counts_line
from tests.chaos.runner import as_request
from tests.chaos.tenants import Tenant
from tests.cluster.stack import APP_HOSTS, BUCKET, S3_PORT, SANDBOX_PORT, held_messages, url
from tests.support.s3 import raw_client

if TYPE_CHECKING:
    from tests.cluster.cluster import Cluster
    from tests.cluster.runner import Loaded

MIN_KILLED = 3  # intake, worker, scheduler
ESCROW = "backups/key-escrow.json"
# A row still waiting for, or in the middle of, the work a message or a claim stands for.
UNFINISHED = {
    "inbound_events": "status <> 'processed'",
    "outbound_messages": "state IN ('queued', 'sending')",
    "webhook_deliveries": "state IN ('pending', 'delivering')",
}


def check_all(
    cluster: Cluster, tenants: list[Tenant], loaded: Loaded, context: TaskContext
) -> tuple[list[checks.CheckResult], list[str]]:
    stored = read_stored(context, [tenant.target.org_id for tenant in tenants])
    provider = provider_sms(f"{url(cluster.network.host('ext'), SANDBOX_PORT)}")
    accepted, received = cluster.shared.receiver.snapshot()
    requests = [as_request(sent.answer, tenants) for sent in loaded.sent]
    endpoints = {tenant.target.org_id: [tenant.endpoint_id] for tenant in tenants}
    org_of_number = {tenant.target.number: tenant.target.org_id for tenant in tenants}
    spools = sum(spool_count(_spool(cluster, name)) for name in APP_HOSTS)
    results = [
        checks.processed_once(requests, stored.events, stored.deliveries, endpoints),
        checks.one_lead_per_phone(stored.leads),
        checks.sms_at_most_once(stored.outbound, provider),
        checks.nothing_after_stop(requests, stored.outbound, provider, org_of_number),
        checks.webhooks_delivered_or_scheduled(
            stored.deliveries, accepted, received["bad_signature"]
        ),
        checks.spool_drained(spooled_total(cluster.hosts["b"].intake_url), spools),
        b_kept_accepting(loaded),
        processed_after_kill(cluster, loaded.killed_at),
        leadership_moved(cluster, loaded),
        host_a_gone(loaded),
        stranded_finished(cluster, loaded),
        backups_stored(cluster, tenants, loaded.killed_at),
    ]
    lines = [
        counts_line("inbound events", Counter(event.status for event in stored.events)),
        f"  leads: {len(stored.leads)}",
        counts_line("outbound messages", stored.outbound_states),
        f"  provider sandbox received: {len(provider)} SMS",
        counts_line("webhook deliveries", Counter(d.state for d in stored.deliveries)),
        counts_line("webhook receiver", received),
        f"  unknown outbound messages: {unknown_count(context)}",
    ]
    return results, lines


def _spool(cluster: Cluster, name: str) -> Path:
    return Path(cluster.hosts[name].env["LEADLINE_SPOOL_PATH"])


def b_kept_accepting(loaded: Loaded) -> checks.CheckResult:
    result = checks.CheckResult("b kept accepting after a died")
    before = loaded.load.accepted(until=loaded.killed_at)
    after = loaded.load.accepted(since=loaded.killed_at)
    if not before["a"] or not before["b"]:
        result.violations.append(f"before the kill a accepted {before['a']}, b {before['b']}")
    if not after["b"]:
        result.violations.append("b accepted nothing after a was killed")
    if after["a"]:
        result.violations.append(f"a answered {after['a']} requests after it was killed")
    result.notes = {
        "a before": before["a"], "b before": before["b"],
        "a after": after["a"], "b after": after["b"],
    }  # fmt: skip
    return result


def processed_after_kill(cluster: Cluster, killed_at: float) -> checks.CheckResult:
    result = checks.CheckResult("events processed after the kill")
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE processed_at > to_timestamp(%s)), "
            "count(*) FILTER (WHERE received_at > to_timestamp(%s)) FROM inbound_events",
            (killed_at, killed_at),
        ).fetchone()
    processed, received = (int(row[0]), int(row[1])) if row else (0, 0)
    if not processed:
        result.violations.append("no event was processed after host a was killed")
    result.notes = {"processed after": processed, "received after": received}
    return result


def leadership_moved(cluster: Cluster, loaded: Loaded) -> checks.CheckResult:
    result = checks.CheckResult("scheduler leadership moved to b")
    moved = loaded.failover.leader_after
    if loaded.failover.leader_before != "a":
        result.violations.append(
            f"before the kill the leader was {loaded.failover.leader_before or 'nobody'}, not a"
        )
    if moved is None:
        result.violations.append("b's scheduler never took the lead")
    now = cluster.leader()
    if now != "b":
        result.violations.append(f"at the end the leader is {now or 'nobody'}")
    result.notes = {"ms after the kill": round(1000 * moved) if moved is not None else -1}
    return result


def host_a_gone(loaded: Loaded) -> checks.CheckResult:
    result = checks.CheckResult("every process on a killed")
    failover = loaded.failover
    if len(failover.killed) < MIN_KILLED:
        result.violations.append(f"only {len(failover.killed)} processes ran on a")
    if failover.left_on_a:
        result.violations.append(f"{len(failover.left_on_a)} processes survived on a")
    result.notes = {"killed": len(failover.killed), "left": len(failover.left_on_a)}
    return result


def stranded_finished(cluster: Cluster, loaded: Loaded) -> checks.CheckResult:
    """What a had taken when it died is finished by b: every row its unacknowledged messages
    name and every row it had claimed is out of its waiting and claimed states."""
    result = checks.CheckResult("work stranded on a finished by b")
    failover = loaded.failover
    stranded: dict[str, set[str]] = {}
    for source in (failover.held_rows, failover.claimed):
        for table, ids in source.items():
            stranded.setdefault(table, set()).update(ids)
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        for table, ids in sorted(stranded.items()):
            unfinished = _count(conn, table, UNFINISHED[table], sorted(ids))
            if unfinished:
                result.violations.append(f"{unfinished} of the {len(ids)} {table} rows a held")
    still_held = held_messages(cluster.broker, cluster.a_brokers)
    result.notes = {
        "messages a held": len(failover.held),
        **{f"{table} rows": len(ids) for table, ids in sorted(stranded.items())},
        "still unacknowledged in Redis": len(still_held),
    }
    return result


def _count(conn: psycopg.Connection[tuple[int]], table: str, where: str, ids: list[str]) -> int:
    if not ids:
        return 0
    row = conn.execute(
        f"SELECT count(*) FROM {table} WHERE {where} AND id = ANY(%s::uuid[])", (ids,)
    ).fetchone()
    return int(row[0]) if row else 0


def backups_stored(cluster: Cluster, tenants: list[Tenant], killed_at: float) -> checks.CheckResult:
    """Each org has a backup taken after a died: its manifest names the org, was written after
    the kill and counts rows, and its bundle is in the bucket with the manifest's size; the
    key escrow is there too."""
    result = checks.CheckResult("backups in the shared object store")
    client = raw_client(url(cluster.network.host("db"), S3_PORT))
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    sizes = {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}
    fresh = 0
    for tenant in tenants:
        org = tenant.target.org_id
        manifests = [
            json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            for key in sizes
            if key.startswith(f"backups/{org}/") and key.endswith(".manifest.json")
        ]
        after = [
            manifest
            for manifest in manifests
            if manifest["org_id"] == org
            and datetime.fromisoformat(manifest["created_at"]).timestamp() > killed_at
            and manifest["rows"] > 0
            and sizes.get(f"backups/{org}/{manifest['bundle']}") == manifest["size_bytes"]
        ]
        if not after:
            result.violations.append(
                f"org {org}: no backup after the kill with its bundle in the bucket "
                f"({len(manifests)} manifests)"
            )
        fresh += len(after)
    if ESCROW not in sizes:
        result.violations.append("no key escrow")
    result.notes = {"objects": len(sizes), "orgs": len(tenants), "backups after the kill": fresh}
    return result
