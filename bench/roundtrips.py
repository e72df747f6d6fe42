"""Round trips to PostgreSQL and Redis, counted on the wire by a loopback TCP proxy.

`CountingProxy` sits between a process (the bench itself, or a server it starts) and one
server. For every connection it counts flights: a flight starts when the client sends bytes
after the server last answered (or for the first time). That is a round trip whatever the
protocol or library: BEGIN, a statement, COMMIT, a pool pre-ping, EVALSHA, LPUSH each cost one
unless the client pipelines them into one flight. Counts are read before and after the
measured operations, so connection start-up (authentication) is left out.

The proxy adds latency, so throughput and CPU figures come from separate runs without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

LOOPBACK = "127.0.0.1"


class CountingProxy:
    """Forwards 127.0.0.1:<port> to one TCP server and counts the clients' flights."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._flights = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-proxy")

    @property
    def round_trips(self) -> int:
        with self._lock:
            return self._flights

    def start(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("counting proxy did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, LOOPBACK, 0, backlog=512)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        answered = [True]  # the next client bytes start a flight

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if answered[0]:
                    answered[0] = False
                    with self._lock:
                        self._flights += 1
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                answered[0] = True
                client_w.write(data)
                await client_w.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a side closed, or the proxy is stopping
        finally:
            for writer in (client_w, server_w):
                writer.close()


@dataclass
class Proxies:
    """One counting proxy for PostgreSQL and one for Redis, with URLs that go through them."""

    postgres: CountingProxy
    redis: CountingProxy
    database_url: str
    redis_url: str

    def counts(self) -> tuple[int, int]:
        return self.postgres.round_trips, self.redis.round_trips


def tcp_target(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme.startswith("unix") or not parts.hostname:
        raise ValueError(f"round trips are counted over TCP only, not {parts.scheme}://")
    return parts.hostname, parts.port or default_port


@contextmanager
def counting_proxies(database_url: str, redis_url: str) -> Iterator[Proxies]:
    pg_host, pg_port = tcp_target(make_url(database_url).render_as_string(False), 5432)
    redis_host, redis_port = tcp_target(redis_url, 6379)
    postgres = CountingProxy(pg_host, pg_port).start()
    redis = CountingProxy(redis_host, redis_port).start()
    try:
        db = make_url(database_url).set(host=LOOPBACK, port=postgres.port)
        redis_parts = urlsplit(redis_url)
        netloc = redis_parts.netloc.rpartition("@")
        auth = netloc[0] + "@" if netloc[1] else ""
        proxied_redis = redis_parts._replace(netloc=f"{auth}{LOOPBACK}:{redis.port}").geturl()
        yield Proxies(postgres, redis, db.render_as_string(hide_password=False), proxied_redis)
    finally:
        postgres.stop()
        redis.stop()


@dataclass(frozen=True)
class RoundTrips:
    postgres: float
    redis: float


class Tally:
    """Round trips between `start()` and `per(operations)`."""

    def __init__(self, proxies: Proxies) -> None:
        self.proxies = proxies
        self.before = proxies.counts()

    def start(self) -> None:
        self.before = self.proxies.counts()

    def per(self, operations: int) -> RoundTrips:
        pg, redis = self.proxies.counts()
        return RoundTrips((pg - self.before[0]) / operations, (redis - self.before[1]) / operations)
