"""Where the read models live: the same database as the events, chosen by the one URL.

- ``sqlite:///path/to/zhuisu.db`` → the same SQLite file.  A projection's write
  transaction (``writer(engine)``) starts with ``BEGIN IMMEDIATE``, so two processes
  catching up serialise on the file's write lock instead of failing half-way; queries
  read in plain (deferred) transactions.
- ``postgresql://user@host:port/db[?schema=s]`` → ``postgresql+psycopg`` with
  ``search_path`` set to the schema, so the projection tables sit beside the events.

Each projection has one row in ``projection_tracking``: the notification id of the last
event it has taken into account, and the version of its table layout.  Rows and position
change in one transaction (see ``projections.runner``).  A projection whose version
changed has its tables dropped and rebuilt from position 0.  A full rebuild drops the
indexes only queries use and makes them again at the end (``deferrable_indexes``).
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlparse

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)

if TYPE_CHECKING:
    from projections.projection import Projection

metadata = MetaData()

tracking = Table(
    "projection_tracking", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),  # last notification id taken into account
    Column("version", Integer, nullable=False),  # of the projection's table layout
)

_SCHEMA_LOCK = zlib.crc32(b"zhuisu-projections-schema")
_WRITE = "zhuisu_projection_write"
ENGINES_KEPT = 4  # a server uses one; a test session many, which must not pile up
_engines: OrderedDict[str, Engine] = OrderedDict()
_ensured: set[tuple[int, tuple[tuple[str, int], ...]]] = set()
_lock = threading.Lock()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def _sqlite_engine(url: str) -> Engine:
    path = unquote(urlparse(url).path)
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ValueError("projections need a SQLite file shared with the event store, "
                         "not an in-memory database")
    engine = create_engine(f"sqlite:///{path}",
                           connect_args={"timeout": 30, "check_same_thread": False},
                           pool_size=4, max_overflow=4)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (SQLAlchemy pysqlite recipe)
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        dbapi_conn.execute("PRAGMA journal_mode = WAL")
        dbapi_conn.execute("PRAGMA synchronous = NORMAL")  # see synchronous_commit below
        dbapi_conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: index inserts of rebuilds
        dbapi_conn.execute("PRAGMA wal_autocheckpoint = 10000")  # fewer, larger checkpoints

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE)
                             else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """The engine for transactions that change projections (SQLite: ``BEGIN IMMEDIATE``)."""
    return engine.execution_options(**{_WRITE: True})


def _postgres_engine(url: str) -> Engine:
    u = urlparse(url)
    schema = parse_qs(u.query).get("schema", [None])[0]
    user = quote(unquote(u.username or "postgres"), safe="")
    password = f":{quote(unquote(u.password), safe='')}" if u.password else ""
    host = f"{u.hostname or '127.0.0.1'}:{u.port or 5432}"
    db = u.path.lstrip("/") or "postgres"
    # synchronous_commit off: a server crash may lose the last projection transactions, but
    # each whole, rows and position together, so they are simply done again.  jit off: the
    # queries are index lookups, which compiling only slows down.
    options = "-csynchronous_commit=off -cjit=off" + (f" -csearch_path={schema}" if schema else "")
    connect_args: dict[str, Any] = {"connect_timeout": 5, "options": options}
    return create_engine(f"postgresql+psycopg://{user}{password}@{host}/{db}",
                         connect_args=connect_args, pool_size=2, max_overflow=4,
                         pool_pre_ping=True)


def engine_for(url: str) -> Engine:
    """The engine for the projections of the store at ``url``, kept for the process.

    At most ``ENGINES_KEPT`` are kept: the least recently used is disposed (its pooled
    connections closed), so a process that meets many stores holds few connections.
    """
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _postgres_engine(url) if is_postgres(url) else _sqlite_engine(url)
            _engines[url] = engine
            while len(_engines) > ENGINES_KEPT:
                _dispose(_engines.popitem(last=False)[1])
        _engines.move_to_end(url)
        return engine


def dispose(url: str | None = None) -> None:
    """Close the pooled connections of one URL's engine (or of all): tests, shutdown."""
    with _lock:
        for key in [url] if url else list(_engines):
            engine = _engines.pop(key, None)
            if engine is not None:
                _dispose(engine)


def _dispose(engine: Engine) -> None:
    _ensured.difference_update({k for k in _ensured if k[0] == id(engine)})
    engine.dispose()


def database_url_of(app: Any) -> str:
    """The database URL of a ``Zhuisu`` application (its ``database_url``, else its settings)."""
    url = getattr(app, "database_url", None)
    if url:
        return str(url)
    env = app.env
    module = env.get("PERSISTENCE_MODULE", "")
    if module.endswith("sqlite"):
        return f"sqlite:///{env['SQLITE_DBNAME']}"
    if module.endswith("postgres"):
        user = quote(env.get("POSTGRES_USER", "postgres"), safe="")
        password = env.get("POSTGRES_PASSWORD", "")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        url = (f"postgresql://{auth}@{env.get('POSTGRES_HOST', '127.0.0.1')}:"
               f"{env.get('POSTGRES_PORT', '5432')}/{env.get('POSTGRES_DBNAME', 'postgres')}")
        schema = env.get("POSTGRES_SCHEMA")
        return f"{url}?schema={schema}" if schema else url
    raise ValueError(f"projections do not support the persistence module {module!r}")


def ensure_schema(engine: Engine, projections: Iterable[Projection]) -> None:
    """Create missing tables and tracking rows; rebuild a projection whose layout changed.

    A projection's tables are created in the transaction that inserts its tracking row,
    so a tracking row with the current version means its tables are there.
    """
    projections = list(projections)
    key = (id(engine), tuple(sorted((p.name, p.version) for p in projections)))
    if key in _ensured:
        return
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        tracking.create(conn, checkfirst=True)
        known = dict(conn.execute(select(tracking.c.name, tracking.c.version)).all())
        for p in projections:
            if known.get(p.name) == p.version:
                continue
            if p.name in known:
                for table in reversed(p.tables):
                    table.drop(conn, checkfirst=True)
                conn.execute(tracking.update().where(tracking.c.name == p.name)
                             .values(position=0, version=p.version))
            else:
                conn.execute(tracking.insert().values(name=p.name, position=0, version=p.version))
            for table in p.tables:
                table.create(conn, checkfirst=True)
        for index in deferrable_indexes(projections):  # left out by a rebuild that stopped
            index.create(conn, checkfirst=True)
    _ensured.add(key)


def deferrable_indexes(projections: Iterable[Projection]) -> list[Index]:
    """The indexes only queries use (handlers look rows up by primary key, or by an index
    marked ``handlers_need``): a rebuild makes them once at the end, not row by row."""
    return [i for p in projections for t in p.tables
            for i in sorted(t.indexes, key=lambda i: i.name) if not i.info.get("handlers_need")]


def positions(conn: Connection) -> dict[str, int]:
    return {r.name: r.position for r in conn.execute(select(tracking.c.name, tracking.c.position))}


def lock_positions(conn: Connection, names: Iterable[str], *,
                   wait: bool = False) -> dict[str, int]:
    """Lock the tracking rows of ``names`` for this transaction; return their positions.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` — a row another worker holds is left out, so
    no two workers ever process the same projection at once (``wait``: wait for it
    instead).  SQLite: the transaction already holds the database's write lock.
    """
    q = (select(tracking.c.name, tracking.c.position).where(tracking.c.name.in_(list(names)))
         .order_by(tracking.c.name))  # one order for all lockers: no deadlock
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=not wait)
    return {r.name: r.position for r in conn.execute(q)}


def dump(conn: Connection, tables: Iterable[Table]) -> dict[str, list[tuple]]:
    """Every row of ``tables``, sorted: equal dumps mean equal read models."""
    out = {}
    for table in tables:
        rows = conn.execute(select(table)).all()
        out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def truncate(conn: Connection, tables: Iterable[Table]) -> None:
    for table in reversed(list(tables)):
        conn.execute(table.delete())


def analyze(conn: Connection, tables: Iterable[Table]) -> None:
    """Refresh the planner's statistics after a rebuild (PostgreSQL plans by them; before
    autovacuum comes by, a freshly filled table looks empty or huge)."""
    if conn.dialect.name == "postgresql":
        for table in tables:
            conn.exec_driver_sql(f'ANALYZE "{table.name}"')

