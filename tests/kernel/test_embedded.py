"""Embedded services: a process that finds them running in its state directory connects to
them and, when it exits, leaves them running for the process that started them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from leadline.embedded import start_embedded
from tests.support.services import psycopg_url

pytestmark = pytest.mark.integration

ATTACH_AND_EXIT = """
import sys
from pathlib import Path
from leadline.embedded import start_embedded
services = start_embedded(Path(sys.argv[1]), database=True, redis=True)
print(services.database_url)
print(services.redis_url)
services.stop()
"""


def test_a_second_process_attaches_and_never_stops_the_owners_servers() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="leadline-embedded-"))
    owner = start_embedded(state_dir, database=True, redis=True)
    try:
        assert owner.database_url and owner.redis_url
        attached = subprocess.run(
            [sys.executable, "-c", ATTACH_AND_EXIT, str(state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert attached.stdout.split() == [owner.database_url, owner.redis_url]
        with psycopg.connect(psycopg_url(owner.database_url)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(owner.redis_url).ping()
    finally:
        owner.stop()
    with pytest.raises(redis.ConnectionError):  # the owner's stop() is what ends them
        redis.Redis.from_url(owner.redis_url).ping()
    shutil.rmtree(state_dir, ignore_errors=True)
