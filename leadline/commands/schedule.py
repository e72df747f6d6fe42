"""`leadline scheduler` and `leadline schedule run|list`."""

from __future__ import annotations

import signal
import threading

import typer

from leadline.commands.common import JsonOption, emit, run_guarded
from tasks.context import open_runtime

schedule_app = typer.Typer(help="Scheduled jobs (for external cron too).", no_args_is_help=True)


def scheduler(as_json: bool = JsonOption) -> None:
    """Fire retention jobs and sweeps on their cron slots (one leader at a time); /metrics,
    /healthz and /readyz on LEADLINE_SCHEDULER_METRICS_HOST:PORT."""
    from leadline.commands.serve import serve_probes
    from models.db import sqlalchemy_url
    from scheduler.leader import AdvisoryLeader
    from scheduler.loop import Scheduler
    from workers.brokers import current_broker

    def run() -> None:
        context = open_runtime()
        settings = context.settings
        assert settings.leadline_database_url is not None  # open_runtime refuses settings without
        leader = AdvisoryLeader(sqlalchemy_url(settings.leadline_database_url))
        scheduler = Scheduler(context, leader, clock=context.clock)
        probes = scheduler.probes(current_broker(), settings.leadline_liveness_stale_seconds)
        host, port = (
            settings.leadline_scheduler_metrics_host,
            settings.leadline_scheduler_metrics_port,
        )
        serve_probes(host, port, "LEADLINE_SCHEDULER_METRICS_PORT", probes)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        emit({"scheduler": "running"}, as_json, "scheduler running (waits if another leads)")
        scheduler.run(stop, settings.leadline_scheduler_poll_seconds)

    run_guarded(run, as_json)


@schedule_app.command("run")
def schedule_run(
    jobs: list[str] = typer.Argument(..., help="Job name(s); see `leadline schedule list`."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Use the current instant as the slot, so it runs even if this cron slot already ran.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send JOB now for its current cron slot (a second firing of the slot is a no-op)."""
    from scheduler.jobs import latest_slot, send_job
    from tasks.jobs import get_job

    def run() -> None:
        chosen = [get_job(name) for name in jobs]  # unknown names fail before anything is sent
        context = open_runtime()
        now = context.clock()
        sent = []
        for job in chosen:
            slot = now if force else latest_slot(job.cron, now)
            message = send_job(job, slot)
            sent.append(
                {
                    "job": job.name,
                    "scheduled_for": slot.isoformat(),
                    "message_id": message.message_id,
                }
            )
        lines = "\n".join(f"sent {s['job']} for slot {s['scheduled_for']}" for s in sent)
        emit(sent, as_json, lines)

    run_guarded(run, as_json)


@schedule_app.command("list")
def schedule_list(as_json: bool = JsonOption) -> None:
    """Every job with its cron expression, last run and next slot."""
    from scheduler.status import job_statuses

    def run() -> None:
        context = open_runtime()
        statuses = job_statuses(context, context.clock())
        lines = [
            f"{s['job']:<18} {s['cron']:<12} last {s['last_slot'] or '-'} "
            f"({s['last_status'] or 'never'})  next {s['next_slot']}"
            for s in statuses
        ]
        emit(statuses, as_json, "\n".join(lines))

    run_guarded(run, as_json)
