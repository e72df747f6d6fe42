"""The metrics port of a worker or scheduler: `/metrics`, `/healthz` and `/readyz`.

A worker is one process with many threads, so its counters and histograms (dead letters,
processing latency per actor, provider errors, webhook attempts) live in that process; it
serves them on LEADLINE_WORKER_METRICS_HOST:PORT for Prometheus to scrape, one target per
worker process. No multiprocess mode, no shared directory to clean up. The scheduler serves
the same three paths on LEADLINE_SCHEDULER_METRICS_HOST:PORT.

`/healthz` is liveness (the process answers and its loop turns: the worker's consumer loops,
the scheduler's tick) and `/readyz` readiness (it can reach what it needs: Postgres, the
broker); each answers 200 or 503 with a JSON body of codes and counts, never hosts or URLs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from leadline.jsondata import JsonObject
from models.db import Database
from workers.brokers import LeadlineBroker
from workers.readiness import readiness

ProbeAnswer = tuple[bool, JsonObject]
Probe = Callable[[], ProbeAnswer]
JSON_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))


@dataclass(frozen=True)
class Probes:
    healthz: Probe
    readyz: Probe


@dataclass(frozen=True)
class MetricsServer:
    server: WSGIServer

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(WSGIRequestHandler):
    """No access lines on stderr: probes come every few seconds, and logs are JSON lines."""

    def log_message(self, format: str, *args: object) -> None:
        return


def probe_app(probes: Probes) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(REGISTRY)
    routes = {"/healthz": probes.healthz, "/readyz": probes.readyz}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            scraped: Iterable[bytes] = metrics(environ, start_response)
            return scraped
        probe = routes.get(path)
        if probe is None:
            start_response("404 Not Found", list(JSON_HEADERS))
            return [b'{"error": "not found"}']
        ok, body = answer_of(probe)
        # A new list each time: wsgiref adds Content-Length to the one it is given.
        start_response("200 OK" if ok else "503 Service Unavailable", list(JSON_HEADERS))
        return [json.dumps(body).encode()]

    return app


def answer_of(probe: Probe) -> ProbeAnswer:
    try:
        return probe()
    except Exception as exc:  # a probe that breaks is a failing probe, never a 500 page
        return False, {"status": "error", "error": type(exc).__name__}


def serve_metrics_and_probes(host: str, port: int, probes: Probes) -> MetricsServer:
    """Serve in a daemon thread; port 0 picks a free port (tests). OSError when it is busy."""
    server = make_server(host, port, probe_app(probes), ThreadingWSGIServer, QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return MetricsServer(server)


def worker_probes(db: Database, broker: LeadlineBroker, stale_after: float) -> Probes:
    """A worker is alive while its consumer loops turn, ready while Postgres and its broker
    answer."""

    def healthz() -> ProbeAnswer:
        liveness = broker.heartbeat.liveness(stale_after)
        return liveness.alive, liveness.as_dict()

    def readyz() -> ProbeAnswer:
        report = readiness(db, broker)
        return report.ready, report.as_dict()

    return Probes(healthz, readyz)
