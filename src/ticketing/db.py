"""Engine, the one session factory, the declarative Base and shared column types."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, DateTime, MetaData, String, event, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from ticketing.errors import DatabaseUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
# One process gains nothing from more SQLite connections than it has cores to run them on.
SQLITE_POOL_SIZE = 4


def _system_clock() -> datetime:
    return datetime.now(UTC)


# What "now" is for the whole process. Tests replace it (`set_clock`) to move time forward
# instead of waiting: SLA timers, job due times and rate windows all read it.
_clock: Callable[[], datetime] = _system_clock


def utcnow() -> datetime:
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Make `utcnow()` answer `clock()` (None: the system clock again). For tests and tools."""
    global _clock
    _clock = clock or _system_clock


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every engine (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store them without an offset, always in UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A StrEnum stored as its plain text value (VARCHAR): no database enum type to migrate
    when a value is added, and rows come back as enum members, not bare strings."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        # A value that is not a member fails here, before it reaches the database.
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class IdMixin:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the embedded worker writes; the busy timeout makes writers
    # wait for each other instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


READ_ONLY = "ticketing_read_only"


def _begin_immediate_sqlite(conn: Any) -> None:
    # Take the write lock at BEGIN so two writers queue on busy_timeout rather than
    # deadlocking when both try to upgrade a read lock. A read-only unit of work (a GET) takes
    # no lock at all: WAL readers never wait for the writer nor block it.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # Pooled: a new connection per request would cost a thread, the PRAGMAs and SQLite
        # reading the schema again. (":memory:" keeps SQLAlchemy's single shared connection.)
        pool: dict[str, Any] = (
            {}
            if ":memory:" in url
            else {"pool_size": SQLITE_POOL_SIZE, "max_overflow": 0, "pool_timeout": 30}
        )
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **pool,
        )
        # pysqlite's own transaction handling is turned off so BEGIN IMMEDIATE is ours.
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _begin_immediate_sqlite)
        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: on asyncpg it is BEGIN; ";"; ROLLBACK (3 round trips) before every
        # transaction. A connection that died with the server fails its one statement, which
        # invalidates the whole pool (SQLAlchemy) and answers 503; the next request reconnects.
        pool_pre_ping=False,
        # Connections idle behind a NAT, load balancer or firewall get cut silently (Azure's
        # default is 4 minutes, AWS NAT's 350 s): replace them before that, at checkout.
        pool_recycle=180,
        pool_timeout=10,
        connect_args={"command_timeout": 30, "timeout": 10},
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    return engine


def _connect_or_unavailable(
    dialect: Dialect, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    # asyncpg raises plain OSErrors (refused, unresolvable host, timeout) that SQLAlchemy does
    # not wrap: name them here, so that only these, not every OSError, mean "database down".
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # TimeoutError included
        raise DatabaseUnavailable() from exc


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None
    _configure_sqlite(dbapi_connection, record)


AfterCommitHook = Callable[[Session], None]
_after_commit_hooks: list[AfterCommitHook] = []
_before_commit_hooks: list[AfterCommitHook] = []


def on_before_commit(hook: AfterCommitHook) -> None:
    """Run `hook(session)` just before every commit, inside the transaction (it may execute
    statements: they commit with the rest). Used to notify other processes of new jobs."""
    _before_commit_hooks.append(hook)


@event.listens_for(Session, "before_commit")
def _run_before_commit_hooks(session: Session) -> None:
    for hook in _before_commit_hooks:
        hook(session)


def on_after_commit(hook: AfterCommitHook) -> None:
    """Run `hook(session)` after every successful commit (used to wake the embedded worker)."""
    _after_commit_hooks.append(hook)


@event.listens_for(Session, "after_commit")
def _run_after_commit_hooks(session: Session) -> None:
    for hook in _after_commit_hooks:
        hook(session)


_CHANGED_CACHES = "process_caches_changed"
_CLEARS_AT_BEGIN = "process_caches_clears_at_begin"
_V = TypeVar("_V")
# Every ProcessCache.clear() of this process, counted: a transaction notes the count when it
# begins, and a value it read is not kept if its cache was cleared since (SQLite's snapshot
# is as old as the transaction's first read, so a read can miss a commit that came before it).
_clears = 0


class ProcessCache(Generic[_V]):
    """A value read from the database, kept in this process for `seconds` (one per engine:
    tests and tools open several databases in one process).

    Another process's change is seen within `seconds`; this process's own is seen at once:
    the writer calls `changed(session)` and the commit drops the value. A read that raced
    with such a commit is not kept (the generation moved on while it ran).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: weakref.WeakKeyDictionary[Engine, tuple[float, int, _V]] = (
            weakref.WeakKeyDictionary()
        )
        self._generation = 0
        self._cleared_at = 0  # the value of _clears at this cache's last clear()

    def get(self, session: AsyncSession) -> _V | None:
        """The value if it is fresh enough, else None (then read it and `put` it)."""
        entry = self._entries.get(_engine_of(session))
        if entry is None:
            return None
        at, generation, value = entry
        if generation != self._generation or time.monotonic() - at >= self.seconds:
            return None
        return value

    @property
    def generation(self) -> int:
        """Take this before reading, and hand it to `put`."""
        return self._generation

    def put(self, session: AsyncSession, value: _V, generation: int) -> None:
        """Keep `value`, read in `session` after taking `generation`, unless this cache was
        cleared since (during the read, or since the session's transaction began)."""
        began = session.info.get(_CLEARS_AT_BEGIN, _clears)
        if generation == self._generation and self._cleared_at <= began and self.seconds > 0:
            self._entries[_engine_of(session)] = (time.monotonic(), generation, value)

    def changed(self, session: AsyncSession | Session) -> None:
        """This transaction changes what the value is read from: drop it when it commits."""
        session.info.setdefault(_CHANGED_CACHES, set()).add(self)

    def clear(self) -> None:
        global _clears
        _clears += 1
        self._cleared_at = _clears
        self._generation += 1
        self._entries.clear()


def _engine_of(session: AsyncSession) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _clear_changed_caches(session: Session) -> None:
    for cache in session.info.pop(_CHANGED_CACHES, ()):
        cache.clear()


on_after_commit(_clear_changed_caches)


@event.listens_for(Session, "after_begin")
def _note_clears_at_begin(session: Session, transaction: Any, _connection: Any) -> None:
    if not transaction.nested:
        session.info[_CLEARS_AT_BEGIN] = _clears


@event.listens_for(Session, "after_soft_rollback")
def _forget_changed_caches(session: Session, previous: Any) -> None:
    # A savepoint's rollback leaves the transaction's other changes to commit: keep the note.
    if not previous.nested:
        session.info.pop(_CHANGED_CACHES, None)


class WriteGate:
    """SQLite has one writer at a time: this process's writers queue here, first come first
    served, instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms and
    lets unlucky writers starve for seconds under load. Re-entrant within a task, so a nested
    unit of work behaves as it did without the gate."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


class Database:
    """Owns the engine and the one session factory."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        echo: bool = False,
        session_info: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        # `session_info`: what every session's `info` starts with (read by commit hooks).
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, info=dict(session_info or {})
        )
        self._write_gate = WriteGate() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold while a unit of work that may write is open (a no-op on PostgreSQL)."""
        if self._write_gate is None:
            yield
            return
        async with self._write_gate.hold():
            yield

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any error."""
        async with self.writing(), self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """Independent reads that need no common snapshot and write nothing. PostgreSQL runs
        each statement on its own (autocommit): no BEGIN and COMMIT round trips around them.
        SQLite reads in a plain BEGIN: no write lock, and no wait for this process's writers."""
        async with self.sessionmaker() as session:
            if self.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            else:
                await session.connection(execution_options={READ_ONLY: True})
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def escape_like(value: str) -> str:
    """`value` as a literal inside a LIKE pattern (with `escape="\\"`): % and _ match themselves."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching any value that contains `text` (lower-cased) literally."""
    return f"%{escape_like(text.lower())}%"


async def lock_for_transaction(session: AsyncSession, key: str) -> None:
    """Serialise transactions that share `key` (released at commit or rollback).

    PostgreSQL gets a transaction-scoped advisory lock; SQLite needs nothing because every
    transaction already takes the database write lock at BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
