"""The customers' webhook endpoint: fails about half its requests with 500, on purpose.

It verifies every request's Standard Webhooks signature with the endpoint's secret (the
standardwebhooks library, independently of Leadline's signer) and records the `webhook-id`s
it accepted with 204. It keeps ids and counts only; lead fields are not shared with it.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from leadline.ports import LOOPBACK

FAILURE_RATE = 0.5


class QuietServer(ThreadingHTTPServer):
    """A worker SIGKILLed mid-request resets its connection: expected here, not a traceback
    in the report."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class WebhookReceiver:
    """Endpoints at /org0, /org1, ...; `accepted` holds every webhook-id answered 2xx."""

    def __init__(self, seed: int, failure_rate: float = FAILURE_RATE, host: str = LOOPBACK) -> None:
        self.failure_rate = failure_rate
        self.host = host  # the cluster run binds it to a namespace's address
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.secrets: dict[str, str] = {}
        self.accepted: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.server = QuietServer((host, 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def register(self, path: str, secret: str) -> None:
        with self.lock:
            self.secrets[path] = secret

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The status for one request; counts it and records an accepted webhook-id."""
        with self.lock:
            self.counts["requests"] += 1
            secret = self.secrets.get(path)
            fail = self.rng.random() < self.failure_rate
        if secret is None or not verified(secret, body, headers):
            return self._count("bad_signature", 400)
        if fail:
            return self._count("failed_on_purpose", 500)
        webhook_id = headers.get("webhook-id", "")
        with self.lock:
            self.counts["accepted"] += 1
            if webhook_id in self.accepted:
                self.counts["accepted_again"] += 1
            self.accepted.add(webhook_id)
        return 204

    def count_cut_off(self) -> None:
        self._count("cut_off", 0)

    def _count(self, name: str, status: int) -> int:
        with self.lock:
            self.counts[name] += 1
        return status

    def snapshot(self) -> tuple[set[str], Counter[str]]:
        with self.lock:
            return set(self.accepted), Counter(self.counts)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died between its headers and its body (a SIGKILLed worker):
                    # nothing to verify or answer, and no signature was wrong.
                    receiver.count_cut_off()
                    self.close_connection = True
                    return
                headers = {key.lower(): value for key, value in self.headers.items()}
                status = receiver.answer(self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log: the run prints counts only

        return Handler


def verified(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError):
        return False
    return True
