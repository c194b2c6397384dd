"""SQLAlchemy engines on the store's database: one implementation for every layer.

Every table zhuisu keeps beside the events (read models, the hash log's tables, the API's
tokens, access log and idempotency records) is reached through ``engine_for(url, profile)``
(kept for the process) or ``new_engine(url, profile)`` (owned by the caller).  A profile
says what the tables' users need of the connection; the URL, the schema and the driver
are decided once, in ``store.urls``:

``read_models``  projections.  SQLite: WAL, a 64 MiB page cache, and transactions begun by
                 us, so that ``writer(engine)`` starts with ``BEGIN IMMEDIATE`` and two
                 processes catching up serialise on the file's write lock instead of
                 failing half-way.  PostgreSQL: ``synchronous_commit`` off (a crash of the
                 database server may lose the last projection transactions, each whole,
                 rows and position together, so they are simply done again) and ``jit``
                 off (the queries are index lookups, which compiling only slows down).
``tables``       the API's own tables (tokens, access log, idempotency): ordinary durable
                 commits; an in-memory SQLite URL is one database shared by the pool.
``audit``        the hash log's tables and raw reads of the events (``audit.store``):
                 durable commits, tables named through the schema.

PostgreSQL connections of every profile set ``search_path`` to the URL's schema, so the
tables sit beside the events.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from store.urls import is_postgres, private_sqlite_file, sqlalchemy_url

Profile = Literal["read_models", "tables", "audit"]
_WRITE = "zhuisu_write"
ENGINES_KEPT = 4  # a server uses a few; a test session many, which must not pile up


@dataclass(frozen=True)
class _Options:
    sqlite_pool: tuple[int, int] | None  # (pool_size, max_overflow); None: SQLAlchemy's default
    postgres_pool: tuple[int, int]
    tuned: bool  # read_models: WAL and our own BEGIN on SQLite, relaxed commits on PostgreSQL
    file_only: bool


_PROFILES: dict[str, _Options] = {
    "read_models": _Options((4, 4), (2, 4), tuned=True, file_only=True),
    "tables": _Options(None, (5, 10), tuned=False, file_only=False),
    "audit": _Options(None, (2, 4), tuned=False, file_only=True),
}
_engines: OrderedDict[tuple[str, str], Engine] = OrderedDict()
_lock = threading.Lock()
_disposers: list[Any] = []  # called with each engine disposed (caches keyed by engine)


def new_engine(database_url: str, profile: Profile = "tables") -> Engine:
    """A new engine on the store's database for ``profile``; the caller disposes of it."""
    options = _PROFILES[profile]
    url, schema = sqlalchemy_url(database_url, file_only=options.file_only)
    if url.startswith("sqlite"):
        private_sqlite_file(database_url)  # mode 0600 if we make it (store.urls)
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        if url == "sqlite://":
            kwargs["poolclass"] = StaticPool  # one in-memory database, shared
        elif options.sqlite_pool:
            kwargs["pool_size"], kwargs["max_overflow"] = options.sqlite_pool
        engine = create_engine(url, **kwargs)
        if options.tuned:
            _tune_sqlite(engine)
        return engine
    settings = ["-cjit=off", "-csynchronous_commit=off"] if options.tuned else []
    if schema:
        settings.append(f"-csearch_path={schema}")
    pool_size, max_overflow = options.postgres_pool
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if settings:
        connect_args["options"] = " ".join(settings)
    return create_engine(url, connect_args=connect_args, pool_size=pool_size,
                         max_overflow=max_overflow, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (SQLAlchemy pysqlite recipe)
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        dbapi_conn.execute("PRAGMA journal_mode = WAL")
        dbapi_conn.execute("PRAGMA synchronous = NORMAL")  # see synchronous_commit above
        dbapi_conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: index inserts of rebuilds
        dbapi_conn.execute("PRAGMA wal_autocheckpoint = 10000")  # fewer, larger checkpoints

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE)
                             else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The engine for transactions that change read models (SQLite: ``BEGIN IMMEDIATE``)."""
    return engine.execution_options(**{_WRITE: True})


def engine_for(database_url: str, profile: Profile = "read_models") -> Engine:
    """The engine for ``profile`` on the store at ``database_url``, kept for the process.

    At most ``ENGINES_KEPT`` are kept: the least recently used is disposed (its pooled
    connections closed), so a process that meets many stores holds few connections.
    """
    key = (database_url, profile)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = new_engine(database_url, profile)
            _engines[key] = engine
            while len(_engines) > ENGINES_KEPT:
                _dispose(_engines.popitem(last=False)[1])
        _engines.move_to_end(key)
        return engine


def on_dispose(callback: Any) -> None:
    """Call ``callback(engine)`` whenever a kept engine is disposed."""
    _disposers.append(callback)


def dispose(database_url: str | None = None) -> None:
    """Close the pooled connections of one URL's engines (or of all): tests, shutdown."""
    with _lock:
        for key in [k for k in _engines if database_url in (None, k[0])]:
            _dispose(_engines.pop(key))


def _dispose(engine: Engine) -> None:
    for callback in _disposers:
        callback(engine)
    engine.dispose()


__all__ = ["ENGINES_KEPT", "Profile", "dispose", "engine_for", "is_postgres", "new_engine",
           "on_dispose", "writer"]
