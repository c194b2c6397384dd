"""How far each read model has read the log: tracking rows, table layouts, rebuild helpers.

The read models live in the same database as the events, reached through
``store.engines.engine_for(url)`` (profile ``read_models``: a projection's write
transaction, ``writer(engine)``, starts with ``BEGIN IMMEDIATE`` on SQLite).

Each projection has one row in ``projection_tracking``: the notification id of the last
event it has taken into account, and the version of its table layout.  Rows and position
change in one transaction (see ``projections.runner``).  A projection whose version
changed is built beside its live tables and switched when caught up
(``projections.bluegreen``); ``relayout`` drops and makes them anew (a rebuild in
place).  A full rebuild drops the indexes only queries use and makes them again at the
end (``deferrable_indexes``).

``projection_failures`` holds, per projection, each stored event its handler could not
take (position, event type, aggregate and version, the error), written in the transaction
that moves the projection past it: the projection goes on, and the event is visible
(``failures``, ``failure_counts``: ``GET /projections/lag``, ``/health``, the logs).  A
rebuild empties a projection's failures with its tables and finds them again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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
    func,
    select,
)

from store.engines import on_dispose, writer
from store.schema import schema_lock

if TYPE_CHECKING:
    from projections.projection import Projection

metadata = MetaData()

tracking = Table(
    "projection_tracking", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),  # last notification id taken into account
    Column("version", Integer, nullable=False),  # of the projection's table layout
)

failures = Table(
    "projection_failures", metadata,
    Column("name", String(64), primary_key=True),  # the projection
    Column("position", BigInteger, primary_key=True),  # the event's notification id
    Column("step", String(200), nullable=False),  # its type: 'FundAccount.Disbursed'
    Column("originator_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("error", String(500), nullable=False),  # exception type and first line
)
ERROR_CHARS = 500

_ensured: set[tuple[int, tuple[tuple[str, int], ...]]] = set()
on_dispose(lambda engine: _ensured.difference_update(
    {k for k in _ensured if k[0] == id(engine)}))


def ensure_schema(engine: Engine, projections: Iterable[Projection]) -> None:
    """Create missing tables and tracking rows.  A projection whose layout changed keeps
    its tables and tracking row as they are: the runner builds its new version beside
    them and switches (``projections.bluegreen``).

    A projection's tables are created in the transaction that inserts its tracking row,
    so a tracking row with the current version means its tables are there.
    """
    projections = list(projections)
    key = (id(engine), tuple(sorted((p.name, p.version) for p in projections)))
    if key in _ensured:
        return
    with writer(engine).begin() as conn:
        schema_lock(conn, "zhuisu-projections-schema")
        tracking.create(conn, checkfirst=True)
        failures.create(conn, checkfirst=True)
        known = dict(conn.execute(select(tracking.c.name, tracking.c.version)).all())
        changed = [p for p in projections if p.name in known and known[p.name] != p.version]
        if changed and not _beside(engine):
            for p in changed:
                relayout(conn, p)
            changed = []
        for p in projections:
            if p.name in known:
                continue
            conn.execute(tracking.insert().values(name=p.name, position=0, version=p.version))
            for table in p.tables:
                table.create(conn, checkfirst=True)
        # left out by a rebuild that stopped (not on the old tables of a changed layout)
        for index in deferrable_indexes([p for p in projections if p not in changed]):
            index.create(conn, checkfirst=True)
    _ensured.add(key)


def _beside(engine: Engine) -> bool:
    """A changed layout is built beside the live tables (``projections.bluegreen``), except
    in an in-memory SQLite database, which has no file to build beside."""
    return engine.dialect.name == "postgresql" or engine.url.database not in (None, "",
                                                                             ":memory:")


def relayout(conn: Connection, p: Projection) -> None:
    """Drop ``p``'s tables and make them again, empty, in its current layout, at position
    0 (a rebuild in place: ``runner.rebuild``, an in-memory store)."""
    for table in reversed(p.tables):
        table.drop(conn, checkfirst=True)
    conn.execute(tracking.update().where(tracking.c.name == p.name)
                 .values(position=0, version=p.version))
    conn.execute(failures.delete().where(failures.c.name == p.name))
    for table in p.tables:
        table.create(conn, checkfirst=True)


def forget(engine: Engine) -> None:
    """Forget what ``ensure_schema`` made through ``engine`` (an engine of one's own,
    disposed: another engine may later have the same ``id``)."""
    _ensured.difference_update({k for k in _ensured if k[0] == id(engine)})


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


def record_failure(conn: Connection, name: str, position: int, step: str, originator_id: str,
                   version: int, error: str) -> None:
    """Note that projection ``name`` could not take the event at ``position``."""
    conn.execute(failures.insert().values(name=name, position=position, step=step[:200],
                                          originator_id=originator_id[:64], version=version,
                                          error=error[:ERROR_CHARS]))


def forget_failures(conn: Connection, names: Iterable[str]) -> None:
    conn.execute(failures.delete().where(failures.c.name.in_(list(names))))


def failure_counts(conn: Connection) -> dict[str, int]:
    """Per projection with any: how many events its handlers could not take."""
    return {r.name: r.n for r in conn.execute(
        select(failures.c.name, func.count().label("n")).group_by(failures.c.name))}


def failures_of(conn: Connection, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest events projection ``name`` could not take (newest first)."""
    return [dict(r) for r in conn.execute(
        select(failures.c.position, failures.c.step, failures.c.originator_id,
               failures.c.version, failures.c.error)
        .where(failures.c.name == name).order_by(failures.c.position.desc())
        .limit(limit)).mappings()]


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

