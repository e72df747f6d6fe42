"""Leadership by Postgres advisory lock, held on a dedicated connection while leading.

The lock belongs to the session: if the leader dies or its connection drops, Postgres
releases it and a waiting follower takes over on its next attempt.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from leadline.logging import get_logger

log = get_logger(__name__)
LOCK_NAME = "leadline:scheduler"
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))")


class AdvisoryLeader:
    def __init__(self, url: str, lock_name: str = LOCK_NAME) -> None:
        # NullPool: closing the connection really ends the session (and frees the lock).
        self.engine: Engine = create_engine(url, poolclass=NullPool)
        self.lock_name = lock_name
        self._connection: Connection | None = None

    @property
    def leading(self) -> bool:
        return self._connection is not None

    def try_lead(self) -> bool:
        """True if this process leads (now or already) and its session is still alive."""
        try:
            if self._connection is None:
                return self._try_acquire()
            self._connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.warning("scheduler lost its database session", error=type(exc).__name__)
            self._drop()
            return False

    def _try_acquire(self) -> bool:
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if connection.execute(_TRY_LOCK, {"name": self.lock_name}).scalar():
            self._connection = connection
            log.info("scheduler is the leader")
            return True
        connection.close()
        return False

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.execute(_UNLOCK, {"name": self.lock_name})
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None

    def dispose(self) -> None:
        self.release()
        self.engine.dispose()
