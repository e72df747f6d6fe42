"""Engines and sessions. Every session runs as a non-owner role, scoped to one tenant or to
maintenance, for exactly one transaction; the scope is reset by COMMIT or ROLLBACK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from models.rls import APP_ROLE, MAINTENANCE_ROLE

_SCOPE_SQL = text("SELECT set_config('role', :role, true), set_config('app.org_id', :org, true)")


def sqlalchemy_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the URL was given with."""
    for scheme in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def pooled_engine(url: str, pool_size: int) -> Engine:
    # Every connection is kept: with overflow connections, a busy intake (more threads than
    # pooled connections) closed and reopened PostgreSQL sessions on most requests.
    return create_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=0, pool_pre_ping=True
    )


class Database:
    """Owner engine for migrations and scoped sessions for everything else."""

    def __init__(self, url: str, app_url: str | None = None, pool_size: int = 20) -> None:
        self.owner_engine = pooled_engine(url, pool_size)
        self.app_engine = pooled_engine(app_url, pool_size) if app_url else self.owner_engine

    @contextmanager
    def tenant(self, org_id: uuid.UUID) -> Iterator[Session]:
        """One transaction that sees only `org_id`'s rows; commits on success."""
        with self._scoped(self.app_engine, APP_ROLE, str(org_id)) as session:
            yield session

    @contextmanager
    def tenant_snapshot(self, org_id: uuid.UUID) -> Iterator[Session]:
        """Like `tenant`, but every read sees one REPEATABLE READ snapshot (backups)."""
        engine = self.app_engine.execution_options(isolation_level="REPEATABLE READ")
        with self._scoped(engine, APP_ROLE, str(org_id)) as session:
            yield session

    @contextmanager
    def unscoped(self) -> Iterator[Session]:
        """The application role with no organisation set: sees no tenant rows at all."""
        with self._scoped(self.app_engine, APP_ROLE, "") as session:
            yield session

    @contextmanager
    def maintenance(self) -> Iterator[Session]:
        """Cross-tenant work (retention, sweeps, key lookups); never for request data."""
        with self._scoped(self.owner_engine, MAINTENANCE_ROLE, "") as session:
            yield session

    @contextmanager
    def _scoped(self, engine: Engine, role: str, org: str) -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.execute(_SCOPE_SQL, {"role": role, "org": org})
            yield session

    def dispose(self) -> None:
        self.owner_engine.dispose()
        if self.app_engine is not self.owner_engine:
            self.app_engine.dispose()
