"""HTTP load generators for the intake benchmark, loopback only.

- `max_load`: closed loop (N connections, each sending the next request when the previous one
  is answered) for a fixed time; uses `wrk` when installed, else an httpx generator.
- `paced_load`: open loop at a fixed rate over plain asyncio streams; latency is counted from
  the moment a request was due, so a slow server cannot hide its queueing (no coordinated
  omission).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class LoadRequest:
    url: str
    body: bytes
    headers: dict[str, str]

    def __post_init__(self) -> None:
        if urlsplit(self.url).hostname not in LOOPBACK_HOSTS:
            raise ValueError("the load generator only sends traffic to loopback")


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    generator: str

    @property
    def error_ratio(self) -> float:
        total = self.ok + self.errors
        return self.errors / total if total else 1.0


def max_load(
    request: LoadRequest, duration: float, connections: int, workdir: Path, use_wrk: bool = True
) -> LoadResult:
    if use_wrk and shutil.which("wrk"):
        return wrk_load(request, duration, connections, workdir)
    return asyncio.run(closed_loop(request, duration, connections))


# --- wrk -------------------------------------------------------------------------------------


def wrk_script(request: LoadRequest) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(request.body.decode())}"]
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    return "\n".join(lines) + "\n"


def lua_string(text: str) -> str:
    return json.dumps(text)  # JSON string escapes are valid Lua escapes for this ASCII text


def wrk_load(request: LoadRequest, duration: float, connections: int, workdir: Path) -> LoadResult:
    script = workdir / "post.lua"
    script.write_text(wrk_script(request))
    command = [
        "wrk",
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "--script",
        str(script),
        request.url,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    total = int(_find(r"(\d+) requests in", output))
    non_2xx = int(_find(r"Non-2xx or 3xx responses: (\d+)", output, "0"))
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    errors = non_2xx + socket_errors
    return LoadResult(
        requests_per_s=float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        ok=total - non_2xx,
        errors=errors,
        p50_ms=wrk_duration_ms(_find(r"50%\s+([\d.]+\w+)", output)),
        p99_ms=wrk_duration_ms(_find(r"99%\s+([\d.]+\w+)", output)),
        generator="wrk",
    )


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match:
        return match.group(1)
    if default is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return default


def wrk_duration_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]
    return float(number) * scale


# --- httpx -----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=10.0, trust_env=False)


async def send(http: httpx.AsyncClient, request: LoadRequest) -> bool:
    try:
        response = await http.post(request.url, content=request.body, headers=request.headers)
    except httpx.HTTPError:
        return False
    return response.is_success


async def closed_loop(request: LoadRequest, duration: float, connections: int) -> LoadResult:
    latencies: list[float] = []
    errors = 0

    async def user(http: httpx.AsyncClient, deadline: float) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if await send(http, request):
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    async with client(connections) as http:
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(user(http, deadline) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return summarize(latencies, errors, elapsed, "httpx")


async def open_loop(
    request: LoadRequest, rate: float, duration: float, connections: int
) -> LoadResult:
    """Requests due every 1/rate s, each sent on the first idle keep-alive connection."""
    count = max(1, int(rate * duration))
    return await paced_wires(request.url, [raw_request(request)] * count, rate, connections)


async def paced_wires(
    url: str, wires: Sequence[bytes], rate: float, connections: int
) -> LoadResult:
    """Request i (raw bytes) is due at i/rate s; each goes out on the first idle keep-alive
    connection to the host of `url`."""
    idle: asyncio.Queue[RawConnection] = asyncio.Queue()
    parts = urlsplit(url)
    for _ in range(connections):
        idle.put_nowait(await RawConnection.open(parts.hostname or "", parts.port or 80))
    latencies: list[float] = []
    errors = 0

    async def one(due: float, wire: bytes) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        connection = await idle.get()
        status = await connection.exchange(wire)
        idle.put_nowait(connection)
        if 200 <= status < 300:
            latencies.append(time.perf_counter() - due)
        else:
            errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(started + i / rate, wire) for i, wire in enumerate(wires)))
    elapsed = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait().close()
    return summarize(latencies, errors, elapsed, "asyncio paced")


def raw_request(request: LoadRequest) -> bytes:
    parts = urlsplit(request.url)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in request.headers.items()]
    head.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + request.body


@dataclass
class RawConnection:
    """A minimal HTTP/1.1 keep-alive client: far cheaper per request than httpx, so the
    generator does not steal the CPU the server under test needs on a small machine."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, wire: bytes) -> int:
        """Send one request, read the whole response; returns the status (0 on failure)."""
        try:
            self.writer.write(wire)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, length = parse_head(head)
            await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return 0
        return status

    def close(self) -> None:
        self.writer.close()


def parse_head(head: bytes) -> tuple[int, int]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    raise ValueError("response without Content-Length")


def paced_load(request: LoadRequest, rate: float, duration: float, connections: int) -> LoadResult:
    return asyncio.run(open_loop(request, rate, duration, connections))


def summarize(latencies: list[float], errors: int, elapsed: float, generator: str) -> LoadResult:
    return LoadResult(
        requests_per_s=len(latencies) / elapsed,
        ok=len(latencies),
        errors=errors,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        generator=generator,
    )
