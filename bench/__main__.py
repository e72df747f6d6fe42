"""`python -m bench [NAME ...]`: run the benchmarks, print a table, write bench/results/latest.json.

A benchmark is a module in this package exposing `run(env) -> dict[str, float]` (or `run()`
with no arguments) and optionally `TARGETS = {"figure": (">=" | "<=", value)}`. Each one
gets a fresh database and Redis namespace (see bench/setup.py).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TypedDict

import bench
from bench.setup import RUN_ID, Options, Services, bench_env, start_services

ORDER = ["intake", "worker", "webhook_fanout", "flat_cost", "worker_rss"]
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--events", type=int, help="events per worker round (2000)")
    parser.add_argument("--rounds", type=int, help="rounds per figure, best kept (2)")
    parser.add_argument("--threads", type=int, help="worker threads (LEADLINE_WORKER_THREADS)")
    parser.add_argument("--leads", type=int, help="leads stored for flat_cost (1000000)")
    parser.add_argument("--rss-events", type=int, help="events for worker_rss (100000)")
    parser.add_argument("--duration", type=float, help="seconds per intake load run (10)")
    parser.add_argument("--connections", type=int, help="intake load connections (32)")
    parser.add_argument(
        "--intake-workers", type=int, help="uvicorn processes (`leadline intake`'s default)"
    )
    parser.add_argument("--no-wrk", action="store_true", help="use the httpx load generator")
    return parser.parse_args(argv)


def discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    ordered = [name for name in ORDER if name in found]
    return {name: found[name] for name in ordered + sorted(set(found) - set(ordered))}


# A benchmark's TARGETS: figure -> (">=" or "<=", value).
Targets = dict[str, tuple[str, float]]


class Result(TypedDict, total=False):
    """One benchmark in latest.json: its figures, or the error that stopped it."""

    figures: dict[str, float]
    targets: dict[str, list[str | float]]
    notes: list[str]
    seconds: float
    error: str


def call_run(
    module: ModuleType, services: Services, options: Options, name: str
) -> tuple[dict[str, float], list[str]]:
    if not inspect.signature(module.run).parameters:
        return module.run(), []
    with bench_env(services, options, name) as env:
        return module.run(env), env.notes


def verdict(value: float, target: tuple[str, float] | None) -> str:
    if target is None:
        return ""
    op, limit = target
    met = value >= limit if op == ">=" else value <= limit
    return f"{'ok  ' if met else 'MISS'} (target {op} {limit:g})"


def print_table(name: str, figures: dict[str, float], targets: Targets, notes: list[str]) -> None:
    print(f"\n{name}")
    for figure, value in figures.items():
        print(f"  {figure:<28} {value:>12,.3f}  {verdict(value, targets.get(figure))}")
    for note in notes:
        print(f"  · {note}")
    sys.stdout.flush()


def run_one(module: ModuleType, name: str, services: Services, options: Options) -> Result:
    targets: Targets = getattr(module, "TARGETS", {})
    started = time.perf_counter()
    try:
        figures, notes = call_run(module, services, options, name)
    except Exception as exc:
        traceback.print_exc()
        print(f"\n{name}\n  FAILED: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}
    figures = {key: float(value) for key, value in figures.items()}
    notes.append(f"load average {os.getloadavg()[0]:.2f} at the end (other work on the machine)")
    print_table(name, figures, targets, notes)
    return {
        "figures": figures,
        "targets": {key: list(value) for key, value in targets.items()},
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 1),
    }


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    options = {key: value for key, value in vars(args).items() if key != "names"}
    modules = discover()
    unknown = [name for name in args.names if name not in modules]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(modules)}")
        return 2
    selected = args.names or list(modules)
    services = start_services()
    print(
        f"leadline bench {RUN_ID}: {services.kind} services, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, Result] = {}
    try:
        for name in selected:
            results[name] = run_one(modules[name], name, services, options)
    finally:
        services.stop()
    write_results(results, options, services.kind)
    return 1 if any("error" in result for result in results.values()) else 0


def write_results(results: dict[str, Result], options: Options, kind: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    document = {
        "run_id": RUN_ID,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "services": kind,
        "options": {key: value for key, value in options.items() if value not in (None, False)},
        "results": results,
    }
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults written to {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
