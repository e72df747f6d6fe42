"""Engines and sessions. Every session runs as a non-owner role, scoped to one tenant or to
maintenance, for exactly one transaction; the scope is reset by COMMIT or ROLLBACK.

A scoped transaction starts with one round trip: `BEGIN` and the two `set_config` calls go
to the server as one simple-protocol query (psycopg would otherwise send BEGIN on its own, a
round trip before the first statement). For that the DBAPI connection is in autocommit mode
while the session holds it, so psycopg leaves the transaction to us; its commit() and
rollback() still end it, and the connection goes back to the pool in its normal mode.

Hot paths put more into those flights: a first statement sent with BEGIN
(`Database.tenant_opening_with`), a last one sent with COMMIT (`commit_with`), several at
once (`execute_flight`), their values rendered as literals (`render`), since each round trip
costs the client more CPU than rendering does.

No pool pre-ping (a round trip per transaction): a connection the server dropped fails on
that first query, before any of the caller's work ran, and the transaction is started again
once on a fresh connection (a dropped connection invalidates the whole pool's). A server that
is really unreachable fails the second try too, which the intake's spool recognises.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from models.cache import WATCHED_TABLES, invalidations
from models.rls import APP_ROLE, MAINTENANCE_ROLE

_BEGIN_SCOPED = sql.SQL(
    "BEGIN{isolation}; "
    "SELECT set_config('role', {role}, true), set_config('app.org_id', {org}, true)"
)


def sqlalchemy_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the URL was given with."""
    for scheme in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def libpq_url(url: str) -> str:
    """The URL as libpq (and so psycopg.connect) spells it."""
    return "postgresql://" + sqlalchemy_url(url).removeprefix("postgresql+psycopg://")


def pooled_engine(url: str, pool_size: int) -> Engine:
    # Every connection is kept: with overflow connections, a busy intake (more threads than
    # pooled connections) closed and reopened PostgreSQL sessions on most requests.
    engine = create_engine(sqlalchemy_url(url), pool_size=pool_size, max_overflow=0)
    event.listen(engine, "checkin", _leave_autocommit)
    event.listen(engine, "before_cursor_execute", _note_cached_writes)
    event.listen(engine, "before_cursor_execute", _refuse_after_commit)
    return engine


_WRITES = ("insert", "update", "delete", "truncate")
WRITTEN_TABLES = "leadline_written_tables"
_ENDED = "leadline_ended_by_commit_with"


def _note_cached_writes(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
    """Remember which cached tables a transaction writes; `_scoped` invalidates them locally
    right after COMMIT (other processes hear of it through the database, models/cache.py)."""
    if statement.lstrip()[:8].lower().startswith(_WRITES):
        written = {table for table in WATCHED_TABLES if table in statement}
        if written:
            conn.info.setdefault(WRITTEN_TABLES, set()).update(written)


def _leave_autocommit(
    dbapi_connection: psycopg.Connection[TupleRow] | None, _record: object
) -> None:
    """A connection returns to the pool in psycopg's normal (transactional) mode."""
    if dbapi_connection is not None and not dbapi_connection.closed and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


def begin_scoped(
    connection: Connection, role: str, org: str, isolation: str = "", then: str = ""
) -> psycopg.Cursor[TupleRow]:
    """BEGIN and set role and org in one round trip, on a connection with no transaction;
    `then` (a complete statement, values rendered: `render`) runs in the same flight. Returns
    the cursor, on `then`'s rows when given.

    On the DBAPI cursor, not SQLAlchemy's execute: its per-statement work was half the cost
    of opening a transaction (bench/README.md)."""
    dbapi = connection.connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    dbapi.autocommit = True
    connection.info.pop(_ENDED, None)  # a pooled connection's info outlives its checkout
    statement = _begin_statement(role, org, isolation) + (f"; {then}" if then else "")
    return _on_last_result(_execute(connection, statement, None))


@functools.lru_cache(maxsize=1024)
def _begin_statement(role: str, org: str, isolation: str) -> str:
    # Rendered once per scope: a tenant's transactions all begin alike.
    return _BEGIN_SCOPED.format(
        isolation=sql.SQL(f" ISOLATION LEVEL {isolation}" if isolation else ""),
        role=sql.Literal(role),
        org=sql.Literal(org),
    ).as_string(None)


def render(statement: str, *values: object) -> str:
    """`statement` with its `{}` placeholders replaced by SQL literals of `values`, for a
    flight of several statements (`Database.tenant_opening_with`, `commit_with`)."""
    return statement.format(*(_literal(value) for value in values))


def _literal(value: object) -> str:
    # Ids, times, bytes, NULL and text without quote or backslash by hand: psycopg's Literal
    # costs more than the round trip it saves. Anything else is quoted by psycopg.
    if value is None:
        return "NULL"
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, bytes):
        return f"decode('{value.hex()}', 'hex')"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, str) and "'" not in value and "\\" not in value:
        return f"'{value}'"  # the same text whether standard_conforming_strings is on or off
    return sql.Literal(value).as_string(None)


def psycopg_execute(
    session: Session, statement: str, params: Sequence[object]
) -> psycopg.Cursor[TupleRow]:
    """`statement` on a psycopg cursor in the session's transaction (its connection, so the
    same role, org and locks), for hot statements without SQLAlchemy's per-statement work (a
    quarter of the worker's CPU per event on Core). The session is flushed first, as before
    any ORM query; a failure is raised as SQLAlchemy's exception for it (IntegrityError,
    ProgrammingError, OperationalError, ...) without the parameters, and a lost connection is
    invalidated, as SQLAlchemy does for its own statements.

    Parameters go to psycopg as they are: pass an enum's `.value` (psycopg would send the
    member's name). Never for the cached tables (models/cache.py): their writes are noted by
    the engine's statement hook, which this bypasses."""
    session.flush()
    connection = _connection(session)
    return _execute(connection, statement, params)


def execute_flight(session: Session, statements: str) -> psycopg.Cursor[TupleRow]:
    """Several statements (values rendered: `render`) in one round trip, in the session's
    transaction; the cursor is on the last one's rows. Same rules as `psycopg_execute`."""
    session.flush()
    return _on_last_result(_execute(_connection(session), statements, None))


def _on_last_result(cursor: psycopg.Cursor[TupleRow]) -> psycopg.Cursor[TupleRow]:
    """The cursor of a flight of statements, moved to the last one's result (past BEGIN's
    and set_config's, or the locks' before a lookup)."""
    while cursor.nextset():
        pass
    return cursor


@functools.cache
def insert_statement(table: str, columns: tuple[str, ...], tail: str) -> str:
    """`INSERT INTO table (columns) VALUES (%s, ...) tail`, for psycopg_execute; rendered once
    per table and set of columns."""
    query = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values})").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        values=sql.SQL(", ").join(sql.Placeholder() for _ in columns),
    )
    return f"{query.as_string(None)} {tail}"


def commit_with(session: Session, statement: str) -> None:
    """`statement` (complete, values rendered: `render`) and COMMIT in one round trip: the
    last write of a scoped transaction and its end. The session is flushed first; its scope's
    exit then finds nothing left to commit. Any statement after it, on the session or its
    connection, is refused (`TransactionEnded`): the scope ended with the COMMIT. Same rules
    as `psycopg_execute`."""
    session.flush()
    connection = _connection(session)
    _execute(connection, f"{statement}; COMMIT", None)
    connection.info[_ENDED] = True


class TransactionEnded(RuntimeError):
    """A statement on a scoped session after `commit_with` ended its transaction."""


def _refuse_after_commit(conn: Connection, *_: object) -> None:
    if conn.info.get(_ENDED):
        raise TransactionEnded("this transaction was committed by commit_with")


def _connection(session: Session) -> Connection:
    # A scoped session keeps the connection it began on; asking the session again costs more
    # than the statement's own client-side work.
    known = session.info.get(_SESSION_CONNECTION)
    return known if isinstance(known, Connection) else session.connection()


def _execute(
    connection: Connection, statement: str, params: Sequence[object] | None
) -> psycopg.Cursor[TupleRow]:
    """One flight on the DBAPI cursor; failures raised as SQLAlchemy raises its own."""
    _refuse_after_commit(connection)
    dbapi = connection.connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    cursor = dbapi.cursor()
    try:
        return cursor.execute(statement, params)
    except psycopg.Error as exc:
        lost = connection.dialect.is_disconnect(exc, dbapi, cursor)
        if lost and not connection.invalidated:
            # As SQLAlchemy does on a disconnect in its own statements: the pool's other
            # connections, as old as this one, are replaced too (a restarted server dropped
            # them all), so the one retry gets a fresh connection.
            connection.engine.pool._invalidate(connection.connection, exc)
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc


def connect_retrying(engine: Engine) -> Connection:
    """A connection that answered one statement, retried once on a connection the server had
    dropped (no pre-ping); for callers outside scoped sessions, such as readiness checks."""
    return _opened_live(engine.connect, lambda connection: connection.exec_driver_sql("SELECT 1"))


class Database:
    """Owner engine for migrations and scoped sessions for everything else."""

    def __init__(self, url: str, app_url: str | None = None, pool_size: int = 20) -> None:
        self.owner_engine = pooled_engine(url, pool_size)
        self.app_engine = pooled_engine(app_url, pool_size) if app_url else self.owner_engine
        self._listen_url = libpq_url(app_url or url)

    def start_cache_invalidations(self) -> None:
        """Serve this process's caches (models/cache.py) from now on, invalidated by the
        database; a process that never calls this always asks the database."""
        invalidations.start(self._listen_url)

    def stop_cache_invalidations(self) -> None:
        invalidations.stop(self._listen_url)

    @contextmanager
    def tenant(self, org_id: uuid.UUID) -> Iterator[Session]:
        """One transaction that sees only `org_id`'s rows; commits on success."""
        with self._scoped(self.app_engine, APP_ROLE, str(org_id)) as session:
            yield session

    @contextmanager
    def tenant_opening_with(
        self, org_id: uuid.UUID, statement: str
    ) -> Iterator[tuple[Session, list[TupleRow]]]:
        """Like `tenant`, with `statement` (complete, values rendered: `render`) run in the
        round trip that begins the transaction; yields the session and the statement's rows."""
        with self._scoped(self.app_engine, APP_ROLE, str(org_id), then=statement) as session:
            yield session, session.info.pop(_OPENING_ROWS)

    @contextmanager
    def tenant_snapshot(self, org_id: uuid.UUID) -> Iterator[Session]:
        """Like `tenant`, but every read sees one REPEATABLE READ snapshot (backups)."""
        with self._scoped(self.app_engine, APP_ROLE, str(org_id), "REPEATABLE READ") as session:
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
    def _scoped(
        self, engine: Engine, role: str, org: str, isolation: str = "", then: str = ""
    ) -> Iterator[Session]:
        session = _open_scoped(engine, role, org, isolation, then)
        transaction = session.get_transaction()
        assert transaction is not None
        info = _connection(session).info
        info.pop(WRITTEN_TABLES, None)
        with session, transaction:
            try:
                yield session
            finally:
                written = info.pop(WRITTEN_TABLES, None)
        if written:
            invalidations.changed(written)

    def dispose(self) -> None:
        self.owner_engine.dispose()
        if self.app_engine is not self.owner_engine:
            self.app_engine.dispose()


def _open_scoped(engine: Engine, role: str, org: str, isolation: str, then: str) -> Session:
    """A session whose transaction has begun with the scope set (retried once on a dropped
    connection: nothing of the caller's has run yet). `then`'s rows are in its info."""

    def begun() -> Session:
        session = Session(engine, expire_on_commit=False)
        session.begin()
        return session

    def begin(session: Session) -> None:
        connection = session.connection()
        cursor = begin_scoped(connection, role, org, isolation, then)
        session.info[_SESSION_CONNECTION] = connection
        if then:
            session.info[_OPENING_ROWS] = cursor.fetchall()

    return _opened_live(begun, begin)


_OPENING_ROWS = "leadline_opening_rows"
_SESSION_CONNECTION = "leadline_connection"


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


def _opened_live(open_: Callable[[], C], first_use: Callable[[C], object]) -> C:
    """`open_()` after `first_use` ran on it, opened once more when that found the connection
    dropped by the server (there is no pre-ping); any other error is raised."""
    for attempt in (1, 2):
        opened = open_()
        try:
            first_use(opened)
        except DBAPIError as exc:
            opened.close()
            if attempt == 2 or not exc.connection_invalidated:
                raise
            continue
        return opened
    raise AssertionError("unreachable")
