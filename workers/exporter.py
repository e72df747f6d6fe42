"""The worker's own /metrics endpoint.

A worker is one process with many threads, so its counters and histograms (dead letters,
processing latency per actor, provider errors, webhook attempts) live in that process; it
serves them on LEADLINE_WORKER_METRICS_HOST:PORT for Prometheus to scrape, one target per
worker process. No multiprocess mode, no shared directory to clean up.
"""

from __future__ import annotations

from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, start_http_server


@dataclass(frozen=True)
class MetricsServer:
    server: WSGIServer

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_worker_metrics(host: str, port: int) -> MetricsServer:
    """Start the exporter in a daemon thread; port 0 picks a free port (tests)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsServer(server)
