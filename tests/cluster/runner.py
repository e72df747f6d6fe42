"""The cluster run from start to end: namespaces, servers, two application hosts, tenants,
the URL check, load, the loss of host a, quiescence, checks, figures.

Whatever happens (a violation, a failure, Ctrl-C), every process it started is stopped and
the namespaces, veths and bridge are removed (try/finally, and atexit should the interpreter
leave another way).

Exit codes: 0 no violation, 1 violations, 2 the run itself could not be carried out,
130 interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tests.chaos.collect import reader
from tests.chaos.load import Target
from tests.chaos.plan import PlanSpec, build_plan, business_numbers
from tests.chaos.quiesce import wait_for_quiescence
from tests.chaos.report import Phases, check_lines, requests_lines
from tests.chaos.stack import Secrets
from tests.chaos.tenants import Tenant, create_tenants
from tests.cluster import figures, guard, verdicts
from tests.cluster.cluster import Cluster, start
from tests.cluster.errors import ClusterError
from tests.cluster.failover import Failover
from tests.cluster.load import ClusterLoad, Sent
from tests.cluster.network import Network
from tests.cluster.stack import (
    APP_HOSTS,
    AWS,
    HOST_NAMES,
    UNINHERITED,
    AppHost,
)

IDLE_SECONDS = 10.0  # a window without load, for the background rates


@dataclass(frozen=True)
class Options:
    seed: int
    events: int
    duration: float
    kill_at: float
    orgs: int
    lanes: int
    quiet_timeout: float
    keep: bool


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="plan seed (default: random)")
    parser.add_argument("--events", type=int, default=700, help="requests to send")
    parser.add_argument("--duration", type=float, default=110.0, help="seconds of load")
    parser.add_argument("--kill-at", type=float, default=35.0, help="seconds into the load")
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--lanes", type=int, default=6, help="concurrent client threads")
    parser.add_argument("--quiet-timeout", type=float, default=150.0, help="seconds to settle")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if not 0 < args.kill_at < args.duration:
        parser.error("--kill-at must fall inside the load")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    return Options(
        seed, args.events, args.duration, args.kill_at, args.orgs, args.lanes,
        args.quiet_timeout, args.keep,
    )  # fmt: skip


def say(line: str) -> None:
    print(line, flush=True)


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def refusal() -> str | None:
    if os.geteuid() != 0:
        return "it must run as root (it creates network namespaces: sudo make cluster)"
    if shutil.which("ip") is None:
        return "no `ip` command (install iproute2)"
    return None


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    refused = refusal()
    if refused is not None:
        say(f"cluster: the run could not be carried out: {refused}")
        return 2
    signal.signal(signal.SIGTERM, interrupt)
    for name in [key for key in os.environ if key.upper().startswith(UNINHERITED)]:
        del os.environ[name]  # no proxy, no other AWS account for the runner's own clients
    os.environ.update(AWS)
    root = Path(tempfile.mkdtemp(prefix="leadline-cluster-"))
    network = Network(HOST_NAMES)
    atexit.register(tear_down, network)
    try:
        with ExitStack() as cleanup:
            cleanup.callback(tear_down, network)  # last: after every process has stopped
            return run(options, network, root, cleanup)
    except KeyboardInterrupt:
        say("cluster: interrupted; its processes and namespaces have been removed")
        return 130
    except ClusterError as exc:
        say(f"cluster: the run could not be carried out: {exc}")
        return 2
    except Exception:  # a defect of the runner itself: 2, never 1, which means violations
        traceback.print_exc()
        say("cluster: the run failed (traceback above); its processes and namespaces are gone")
        return 2
    finally:
        if options.keep:
            say(f"cluster: state kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def tear_down(network: Network) -> None:
    """Whatever still runs in the namespaces is killed, then they and the bridge go."""
    for host in list(network.hosts.values()):
        with contextlib.suppress(ClusterError):
            for pid in host.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    for problem in network.destroy():
        say(f"cluster: cleanup: {problem}")


def target_of(host: AppHost, run_secrets: Secrets, tenants: list[Tenant]) -> Target:
    return Target(
        intake_url=host.intake_url,
        public_url=host.env["LEADLINE_PUBLIC_URL"],
        twilio_token=run_secrets.twilio_auth_token,
        twilio_account_sid=run_secrets.twilio_account_sid,
        stripe_secret=run_secrets.stripe_webhook_secret,
        orgs=[tenant.target for tenant in tenants],
    )


@dataclass
class Loaded:
    sent: list[Sent]
    load: ClusterLoad
    failover: Failover
    idle: figures.Idle  # the background rate, measured before the load
    first: figures.Reading  # at the start of the load
    last: figures.Reading  # at its end

    @property
    def killed_at(self) -> float:
        assert self.failover.killed_at is not None
        return self.failover.killed_at

    def windows(self) -> list[tuple[str, figures.Window]]:
        before = self.failover.before_kill
        assert before is not None
        return [
            (
                "both hosts, before the kill",
                figures.Window(self.first, before, self.accepted(until=before.at)),
            ),
            (
                "host b alone, after the kill",
                figures.Window(before, self.last, self.accepted(since=self.killed_at)),
            ),
        ]

    def accepted(self, until: float | None = None, since: float | None = None) -> int:
        return sum(self.load.accepted(until=until, since=since).values())


def load_and_kill(
    options: Options,
    cluster: Cluster,
    tenants: list[Tenant],
    rng: random.Random,
    cleanup: ExitStack,
) -> Loaded:
    spec = PlanSpec(
        options.orgs, options.events, options.lanes,
        [tenant.target.customer for tenant in tenants], int(time.time()),
    )  # fmt: skip
    plan = build_plan(rng, spec)
    targets = {
        name: target_of(host, cluster.secrets, tenants) for name, host in cluster.hosts.items()
    }
    load = ClusterLoad(plan, targets, len(plan) / options.duration, options.duration + 30)
    failover = Failover(cluster, options.kill_at, cluster.a_brokers, say)
    stop = threading.Event()
    quiet = cluster.reading()
    time.sleep(IDLE_SECONDS)
    first = cluster.reading()
    began = time.time()
    thread = threading.Thread(target=failover.run, args=(began, stop), daemon=True)
    cleanup.callback(thread.join, 150)
    cleanup.callback(stop.set)
    thread.start()
    reported = [0.0]

    def progress(elapsed: float) -> None:
        if elapsed - reported[0] >= 20:
            reported[0] = elapsed
            tally = load.accepted()
            say(
                f"  +{elapsed:6.1f}s  {len(load.sent)}/{len(plan)} sent, 2xx from "
                + ", ".join(f"{host} {tally[host]}" for host in sorted(cluster.hosts))
            )

    sent = load.run(stop, progress)
    thread.join()
    if failover.error is not None:
        raise ClusterError(f"the failover could not be carried out: {failover.error}")
    if failover.killed_at is None:
        raise ClusterError("the load ended before host a was killed")
    idle = figures.Idle(figures.Window(quiet, first, 0))
    return Loaded(sent, load, failover, idle, first, cluster.reading())


def accepted_lines(loaded: Loaded) -> list[str]:
    before = loaded.load.accepted(until=loaded.killed_at)
    after = loaded.load.accepted(since=loaded.killed_at)
    failed_over = sum(1 for s in loaded.sent if s.failed_over and s.host is not None)
    return [
        "  accepted (2xx) per host, by when the request was sent:",
        *(f"    {host}: {before[host]} before the kill, {after[host]} after" for host in APP_HOSTS),
        f"    sent to b after a refused the connection: {failed_over}",
    ]


def run(options: Options, network: Network, root: Path, cleanup: ExitStack) -> int:
    phases = Phases()
    rng = random.Random(options.seed)
    say(
        f"leadline cluster: seed {options.seed}, {options.events} requests over "
        f"{options.duration:.0f} s, host a killed at +{options.kill_at:.0f} s, "
        f"{options.orgs} orgs, {options.lanes} client lanes"
    )
    with phases.phase("namespaces, servers, migrate, hosts"):
        cluster = start(network, root, options.seed, cleanup, say)
    with phases.phase("setup (CLI)"):
        numbers, alerts = business_numbers(rng, options.orgs)
        tenants = create_tenants(cluster.hosts["a"].env, cluster.shared.receiver, numbers, alerts)
    check_traffic(cluster, tenants)
    say("load, and the loss of host a:")
    with phases.phase("load, host a killed"):
        loaded = load_and_kill(options, cluster, tenants, rng, cleanup)
    context = reader(cluster.database_url, cluster.secrets.master_keys)
    cleanup.callback(context.db.dispose)
    say("quiescence:")
    env_b = cluster.hosts["b"].env
    with phases.phase("quiescence"):
        left = wait_for_quiescence(
            context, env_b, Path(env_b["LEADLINE_SPOOL_PATH"]), options.quiet_timeout, say
        )
    with phases.phase("checks"):
        results, lines = verdicts.check_all(cluster, tenants, loaded, context)
    for line in [
        "requests:", *requests_lines([s.answer for s in loaded.sent], len(loaded.load.plan)),
        *accepted_lines(loaded),
        "stack:", *lines, f"  left when quiescence ended: {left.describe()}",
        "checks:", *check_lines(results),
        "figures (this machine, shared with other work):",
        *figures.idle_lines(loaded.idle),
        *[
            line
            for name, window in loaded.windows()
            for line in figures.lines(name, window, loaded.idle)
        ],
        "timing:", *phases.lines(),
    ]:  # fmt: skip
        say(line)
    violations = sum(len(result.violations) for result in results)
    say(f"result: {violations} violations (seed {options.seed})")
    return 1 if violations else 0


def check_traffic(cluster: Cluster, tenants: list[Tenant]) -> None:
    """The load's targets and the webhook endpoints: on the run's hosts, or no load."""
    receiver = cluster.shared.receiver
    checked = guard.require_inside(
        [
            {f"load: {name} intake": host.intake_url for name, host in cluster.hosts.items()},
            {
                f"webhook endpoint org{index}": receiver.url(f"/org{index}")
                for index in range(len(tenants))
            },
        ],
        cluster.network.addresses(),
    )
    say(f"  {len(checked)} URLs of the load and the webhook endpoints, each on a host of this run")
