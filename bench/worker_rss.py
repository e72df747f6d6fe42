"""Worker memory: resident set size of a `leadline worker` process (a real subprocess with
its default settings) while it processes 100,000 API lead events, read from
/proc/PID/status. The events (encrypted inbound rows plus their messages, as the intake
stores them, in batches) are stored while the worker runs.

Target: VmRSS ≤ 200 MB after the events are processed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from contextlib import AbstractContextManager

from sqlalchemy import func, select

from bench.pipeline import store_lead_events_batched
from bench.setup import BenchEnv, BenchOrg, leadline_worker, rss_megabytes

TARGETS = {"rss_mb_after": ("<=", 200.0)}
BATCH = 200
WARM_EVENTS = 1000


def worker_process(env: BenchEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
    # One process, so its RSS is the figure (the default of one per core runs a supervisor).
    options = ["--processes", "1"]
    if env.options.get("threads"):
        options += ["--threads", str(env.options["threads"])]
    return leadline_worker(env, *options)


def pending_events(env: BenchEnv, org: BenchOrg) -> int:
    from models.tables import InboundEvent

    with env.context.db.tenant(org.id) as session:
        count = session.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "pending")
        )
    return int(count or 0)


def wait_processed(env: BenchEnv, org: BenchOrg, worker: subprocess.Popen[bytes]) -> None:
    while pending_events(env, org):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        time.sleep(0.5)


class PeakSampler:
    """Samples a process's RSS every half second, remembering the highest value."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_megabytes(self.pid).get("VmRSS", 0.0))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run(env: BenchEnv) -> dict[str, float]:
    events = int(env.option("rss_events", 100_000))
    org = env.make_org()
    with worker_process(env) as worker:
        store_lead_events_batched(env, org, 0, WARM_EVENTS)
        wait_processed(env, org, worker)
        warm = rss_megabytes(worker.pid)["VmRSS"]
        started = time.perf_counter()
        with PeakSampler(worker.pid) as sampler:
            for first in range(WARM_EVENTS, WARM_EVENTS + events, BATCH):
                store_lead_events_batched(env, org, first, min(BATCH, WARM_EVENTS + events - first))
            wait_processed(env, org, worker)
        elapsed = time.perf_counter() - started
        after = rss_megabytes(worker.pid)
    env.note(
        f"{events:,} events after {WARM_EVENTS:,} warm-up events; one worker process, "
        f"{env.options.get('threads') or env.settings.leadline_worker_threads} threads"
    )
    return {
        "rss_mb_warm": warm,
        "rss_mb_after": after["VmRSS"],
        "rss_mb_peak": max(sampler.peak, after["VmRSS"]),
        "events": float(events),
        "events_per_s_while_storing": events / elapsed,
    }
