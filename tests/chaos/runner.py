"""The chaos run from start to end: servers, stack, tenants, load with faults, quiescence,
checks, report. Whatever happens (a violation, a failure, Ctrl-C), every process it started
is stopped and its temporary directory removed.

Exit codes: 0 no violation, 1 violations, 2 the run itself could not be carried out,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tasks.context import TaskContext
from tests.chaos import checks
from tests.chaos.collect import (
    provider_sms,
    read_stored,
    reader,
    spool_count,
    spooled_total,
    unknown_count,
)
from tests.chaos.errors import ChaosError
from tests.chaos.faults import Injector, fault_plan
from tests.chaos.load import Answer, Load, Target
from tests.chaos.plan import LEAD, SMS, PlanSpec, build_plan, business_numbers
from tests.chaos.quiesce import wait_for_quiescence
from tests.chaos.receiver import WebhookReceiver
from tests.chaos.report import Phases, check_lines, counts_line, requests_lines
from tests.chaos.services import OwnPostgres, OwnRedis
from tests.chaos.stack import Layout, Ports, Secrets, Stack, leadline_cli, stack_environment
from tests.chaos.tenants import Tenant, create_tenants

SOURCES = {LEAD: "api", SMS: "twilio_sms"}


@dataclass(frozen=True)
class Options:
    seed: int
    events: int
    duration: float
    orgs: int
    lanes: int
    worker_kills: int
    quiet_timeout: float
    keep: bool


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="plan seed (default: random)")
    parser.add_argument("--events", type=int, default=3000, help="requests to send")
    parser.add_argument("--duration", type=float, default=170.0, help="seconds of load")
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--lanes", type=int, default=6, help="concurrent client threads")
    parser.add_argument("--worker-kills", type=int, default=6)
    parser.add_argument("--quiet-timeout", type=float, default=240.0, help="seconds to settle")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    return Options(
        seed, args.events, args.duration, args.orgs, args.lanes, args.worker_kills,
        args.quiet_timeout, args.keep,
    )  # fmt: skip


def say(line: str) -> None:
    print(line, flush=True)


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, interrupt)
    root = Path(tempfile.mkdtemp(prefix="leadline-chaos-"))
    try:
        with ExitStack() as cleanup:
            return run(options, Layout(root), cleanup)
    except KeyboardInterrupt:
        say("chaos: interrupted; every process it started has been stopped")
        return 130
    except ChaosError as exc:
        say(f"chaos: the run could not be carried out: {exc}")
        return 2
    finally:
        if options.keep:
            say(f"chaos: state kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Running:
    """What the run started, for the phases after start-up."""

    postgres: OwnPostgres
    redis: OwnRedis
    receiver: WebhookReceiver
    stack: Stack
    secrets: Secrets
    ports: Ports
    env: dict[str, str]


def start(layout: Layout, cleanup: ExitStack, seed: int) -> Running:
    layout.create()
    postgres = OwnPostgres.create(layout.root)
    cleanup.callback(postgres.shutdown)
    redis_server = OwnRedis(layout.root / "redis")
    cleanup.callback(redis_server.shutdown)
    redis_server.start()
    receiver = WebhookReceiver(seed)
    receiver.start()
    cleanup.callback(receiver.stop)
    ports, run_secrets = Ports(), Secrets()
    env = stack_environment(os.environ, layout, postgres.url, redis_server.url, ports, run_secrets)
    leadline_cli(env, "migrate", "migrate")
    stack = Stack(env, ports, layout.logs)
    cleanup.callback(stack.stop)
    stack.start()
    say(
        f"  PostgreSQL 127.0.0.1:{postgres.port}, Redis 127.0.0.1:{redis_server.port} (AOF), "
        f"intake {ports.intake_url}, sandbox {ports.sandbox_url}, receiver :{receiver.port}"
    )
    return Running(postgres, redis_server, receiver, stack, run_secrets, ports, env)


def target_of(running: Running, tenants: list[Tenant]) -> Target:
    return Target(
        intake_url=running.ports.intake_url,
        public_url=running.ports.intake_url,
        twilio_token=running.secrets.twilio_auth_token,
        twilio_account_sid=running.secrets.twilio_account_sid,
        stripe_secret=running.secrets.stripe_webhook_secret,
        orgs=[tenant.target for tenant in tenants],
    )


def load_with_faults(
    options: Options,
    running: Running,
    tenants: list[Tenant],
    rng: random.Random,
    cleanup: ExitStack,
) -> tuple[list[Answer], Injector, int]:
    spec = PlanSpec(
        options.orgs, options.events, options.lanes,
        [tenant.target.customer for tenant in tenants], int(time.time()),
    )  # fmt: skip
    plan = build_plan(rng, spec)
    faults = fault_plan(rng, options.duration, options.worker_kills)
    injector = Injector(faults, running.stack, running.postgres, running.redis, say)
    stop = threading.Event()
    load = Load(
        plan, target_of(running, tenants), len(plan) / options.duration, options.duration + 60
    )
    began = time.time()
    faulting = threading.Thread(target=injector.run, args=(began, stop), daemon=True)
    # Callbacks run last-in first: on the way out, stop the faults and let the one under way
    # finish (a PostgreSQL start) before anything is shut down.
    cleanup.callback(join_if_started, faulting)
    cleanup.callback(stop.set)
    faulting.start()
    reported = [0.0]

    def progress(elapsed: float) -> None:
        if elapsed - reported[0] >= 30:
            reported[0] = elapsed
            tally = load.tally()
            say(f"  +{elapsed:6.1f}s  {sum(tally.values())}/{len(plan)} sent, {tally['2xx']} 2xx")

    answers = load.run(stop, progress)
    faulting.join()
    return answers, injector, len(plan)


def join_if_started(thread: threading.Thread) -> None:
    if thread.is_alive():
        thread.join(timeout=120)


def as_request(answer: Answer, tenants: list[Tenant]) -> checks.Request:
    step = answer.step
    return checks.Request(
        index=step.index,
        intent=step.intent,
        org_id=tenants[step.org].target.org_id,
        source=SOURCES.get(step.kind, "stripe"),
        external_id=step.key,
        phone=step.phone,
        started=answer.started,
        finished=answer.finished,
        status=answer.status,
        event_id=answer.event_id,
        lead=checks.lead_fingerprint(step.body) if step.kind == LEAD and step.body else None,
    )


def run(options: Options, layout: Layout, cleanup: ExitStack) -> int:
    phases = Phases()
    rng = random.Random(options.seed)
    say(
        f"leadline chaos: seed {options.seed}, {options.events} requests over "
        f"{options.duration:.0f} s, {options.orgs} orgs, {options.lanes} client lanes"
    )
    with phases.phase("servers, migrate, stack"):
        running = start(layout, cleanup, options.seed)
    with phases.phase("setup (CLI)"):
        numbers, alerts = business_numbers(rng, options.orgs)
        tenants = create_tenants(running.env, running.receiver, numbers, alerts)
    say("faults and progress:")
    with phases.phase("load with faults"):
        answers, injector, planned = load_with_faults(options, running, tenants, rng, cleanup)
    if injector.error is not None:
        raise ChaosError(f"fault injection failed: {injector.error}")
    exited = running.stack.exited()
    context = reader(running.postgres.url, running.secrets.master_keys)
    cleanup.callback(context.db.dispose)
    say("quiescence:")
    with phases.phase("quiescence"):
        left = wait_for_quiescence(context, running.env, layout.spool, options.quiet_timeout, say)
    with phases.phase("checks"):
        results, lines = check_everything(running, tenants, answers, context, layout)
    exited.update(running.stack.exited())
    results.append(stack_check(exited))
    for line in [
        "requests:", *requests_lines(answers, planned),
        "stack:", *lines, f"  left when quiescence ended: {left.describe()}",
        "checks:", *check_lines(results),
        "timing:", *phases.lines(),
    ]:  # fmt: skip
        say(line)
    violations = sum(len(result.violations) for result in results)
    say(f"result: {violations} violations (seed {options.seed})")
    return 1 if violations else 0


def stack_check(exited: dict[str, int | None]) -> checks.CheckResult:
    result = checks.CheckResult("every role still running")
    result.violations = [
        f"{name} exited on its own with code {code}" for name, code in exited.items()
    ]
    return result


def check_everything(
    running: Running,
    tenants: list[Tenant],
    answers: list[Answer],
    context: TaskContext,
    layout: Layout,
) -> tuple[list[checks.CheckResult], list[str]]:
    stored = read_stored(context, [tenant.target.org_id for tenant in tenants])
    provider = provider_sms(running.ports.sandbox_url)
    accepted, received = running.receiver.snapshot()
    requests = [as_request(answer, tenants) for answer in answers]
    endpoints = {tenant.target.org_id: [tenant.endpoint_id] for tenant in tenants}
    org_of_number = {tenant.target.number: tenant.target.org_id for tenant in tenants}
    results = [
        checks.processed_once(requests, stored.events, stored.deliveries, endpoints),
        checks.one_lead_per_phone(stored.leads),
        checks.sms_at_most_once(stored.outbound, provider),
        checks.nothing_after_stop(requests, stored.outbound, provider, org_of_number),
        checks.webhooks_delivered_or_scheduled(
            stored.deliveries, accepted, received["bad_signature"]
        ),
        checks.spool_drained(spooled_total(running.ports.intake_url), spool_count(layout.spool)),
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
