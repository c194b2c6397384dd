"""Blue/green rebuild: a projection whose layout changed is built beside the tables readers
use, and switched in one transaction once it has caught up with the log.

When a projection's ``version`` differs from the one in its tracking row, its live tables
(the old layout, at the old position) stay as they are and keep answering reads; they are
no longer advanced (the handlers that would are the new version's).  The new version is
built elsewhere, by the runner's own batches, as a replay into another database:

- PostgreSQL: a schema of its own beside the live one, ``<live>__<name>_v<version>``
  (``build_location``), holding the projection's tables and its own
  ``projection_tracking`` / ``projection_failures`` rows: the build's position moves in
  the transaction that writes its rows, exactly as a live batch's does.
- SQLite: a database file beside the store, ``<file>.build-<name>-v<version>``, likewise.

A projection's handlers read and write only its own tables (a scoped replay relies on the
same), so a build needs nothing else from the live database.

The **switch** (``switch``), once the build has read the log's head (events that arrive
meanwhile are taken by the live catch-up that follows, as after any batch): one
transaction that locks the live and the build tracking rows, drops the old tables, puts
the new ones in their place, carries the build's failures over and sets the live row to
the new version and the build's position.  PostgreSQL moves the tables
(``ALTER TABLE … SET SCHEMA``, with their indexes); SQLite cannot move a table between
files, so it creates them and copies the rows (``INSERT … SELECT``) in one ``BEGIN
IMMEDIATE`` transaction of the live file.  Either way a reader sees the complete old
tables or the complete new ones, never a mixture and never a half-built table.  Then the
build's schema or file is removed.

A build survives a crash: its rows and position are committed together, so the next
``catch_up`` / ``run_worker`` resumes at the build's position.  ``projection_builds``
(one row per build under way, in the live database: name, version, where, when started)
is what ``status`` reads; with the build's position it gives the progress that
``runner.lag`` (``GET /projections/lag``, ``zhuisu project status``) shows beside the
live position, whose lag grows while the old tables wait.

Readers run the current code against the old tables until the switch: a release whose
queries need the new layout keeps the previous release's servers answering reads until
``zhuisu project status`` shows the switch (the usual blue/green deployment).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from projections.tracking import (
    ensure_schema,
    failures,
    forget,
    lock_positions,
    relayout,
    tracking,
)
from store.engines import new_engine, writer
from store.schema import schema_lock

if TYPE_CHECKING:
    from projections.events import EventSource
    from projections.projection import Projection

log = structlog.get_logger("zhuisu.projections")
Batch = Callable[..., bool]  # runner.process_batch: passed in (the runner imports this module)

builds_metadata = MetaData()

builds = Table(
    "projection_builds", builds_metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, nullable=False),  # the version being built
    Column("location", String(200), nullable=False),  # the schema or the file
    Column("started_at", DateTime(timezone=True), nullable=False),
)


def _ensure_builds(conn: Connection) -> None:
    builds.create(conn, checkfirst=True)


def stored_versions(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(tracking.c.name, tracking.c.version)).all())


def split(engine: Engine, projections: Sequence[Projection]) -> tuple[tuple[Projection, ...],
                                                                       tuple[Projection, ...]]:
    """(live, building): the projections whose tracking row has their version, and those
    whose layout changed (built beside the live tables, ``step``)."""
    known = stored_versions(engine)
    building = tuple(p for p in projections if p.name in known and known[p.name] != p.version)
    return tuple(p for p in projections if p not in building), building


# where a build lives ----------------------------------------------------------------------
def _live_schema(conn: Connection) -> str:
    return conn.execute(text("SELECT current_schema()")).scalar_one()


def build_location(engine: Engine, p: Projection, live_schema: str | None = None) -> str:
    """The build's schema (PostgreSQL) or file (SQLite) for ``p``'s current version."""
    if engine.dialect.name == "postgresql":
        if live_schema is None:
            with engine.connect() as conn:
                live_schema = _live_schema(conn)
        return f"{live_schema[:34]}__{p.name[:14]}_v{p.version}"[:63]
    return f"{engine.url.database}.build-{p.name}-v{p.version}"


def build_engine(engine: Engine, location: str) -> Engine:
    """An engine whose unqualified tables are the build's (the caller disposes of it)."""
    if engine.dialect.name == "postgresql":
        return create_engine(engine.url, pool_size=1, max_overflow=2, pool_pre_ping=True,
                             connect_args={"connect_timeout": 5, "options":
                                           f"-cjit=off -csynchronous_commit=off "
                                           f"-csearch_path={location}"})
    return new_engine(f"sqlite:///{location}", "read_models")


def _dispose(target: Engine) -> None:
    forget(target)
    target.dispose()


def _remove_location(engine: Engine, location: str, conn: Connection | None = None) -> None:
    if engine.dialect.name == "postgresql":
        statement = f'DROP SCHEMA IF EXISTS "{location}" CASCADE'
        if conn is not None:
            conn.exec_driver_sql(statement)
        else:
            with writer(engine).begin() as c:
                c.exec_driver_sql(statement)
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(location + suffix)
        except FileNotFoundError:
            pass


# starting, stepping, switching ----------------------------------------------------------
def start(engine: Engine, p: Projection) -> str | None:
    """The build of ``p``'s current version: started (or found under way); None when the
    live tables already have this version (another worker switched them)."""
    location = build_location(engine, p)
    with writer(engine).begin() as conn:
        schema_lock(conn, "zhuisu-projection-builds")
        _ensure_builds(conn)
        lock_positions(conn, [p.name], wait=True)
        live = conn.execute(select(tracking.c.version).where(tracking.c.name == p.name)).scalar()
        row = conn.execute(select(builds).where(builds.c.name == p.name)).mappings().first()
        if live == p.version:  # switched, or brought to it otherwise (flags' thresholds)
            if row is not None:
                conn.execute(builds.delete().where(builds.c.name == p.name))
                _remove_location(engine, row["location"], conn)
            return None
        if row is not None and row["version"] == p.version and row["location"] == location:
            fresh = False
        else:
            if row is not None:  # a build of another version: abandoned
                _remove_location(engine, row["location"], conn)
                conn.execute(builds.delete().where(builds.c.name == p.name))
            _remove_location(engine, location, conn)  # a leftover of a crash before its row
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f'CREATE SCHEMA "{location}"')
            conn.execute(builds.insert().values(
                name=p.name, version=p.version, location=location,
                started_at=dt.datetime.now(dt.UTC)))
            fresh = True
    target = build_engine(engine, location)
    try:
        ensure_schema(target, [p])  # idempotent: tables and the build's tracking row
    finally:
        _dispose(target)
    if fresh:
        log.info("projection layout changed: building beside the live tables",
                 projection=p.name, version=p.version, location=location)
    return location


def step(source: EventSource, engine: Engine, p: Projection, batch: int,
         until: int | None = None, *, process_batch: Batch) -> str:
    """One batch of ``p``'s build (``process_batch``: the runner's, into the build's
    engine); once the build has read the head (or ``until``), the switch.  Returns
    ``'built'`` (a batch done), ``'switched'`` or ``'live'`` (nothing to build: the live
    tables have this version)."""
    location = start(engine, p)
    if location is None:
        return "live"
    target = build_engine(engine, location)
    try:
        if process_batch(source, target, [p], batch, until, wait=True):
            return "built"
    finally:
        _dispose(target)
    return "switched" if switch(engine, p, location) else "live"


def build(source: EventSource, engine: Engine, p: Projection, batch: int,
          until: int | None = None, *, process_batch: Batch) -> None:
    """Build ``p`` beside its live tables up to the head (or ``until``) and switch."""
    while step(source, engine, p, batch, until, process_batch=process_batch) == "built":
        pass


def switch(engine: Engine, p: Projection, location: str) -> bool:
    """Put the build's tables in place of the live ones, in one transaction (see the
    module's docstring); False if another worker did it first."""
    if engine.dialect.name == "postgresql":
        done = _switch_postgres(engine, p, location)
    else:
        done = _switch_sqlite(engine, p, location)
    if done:
        log.info("projection switched to its new layout", projection=p.name,
                 version=p.version)
    return done


def _switch_postgres(engine: Engine, p: Projection, location: str) -> bool:
    with writer(engine).begin() as conn:
        live_schema = _live_schema(conn)
        lock_positions(conn, [p.name], wait=True)
        if not _ours(conn, p, location):
            return False
        position = conn.execute(text(
            f'SELECT position FROM "{location}".projection_tracking WHERE name = :n '
            'FOR UPDATE'), {"n": p.name}).scalar_one()  # waits for a build batch in flight
        for table in reversed(p.tables):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{live_schema}"."{table.name}" CASCADE')
        for table in p.tables:
            conn.exec_driver_sql(
                f'ALTER TABLE "{location}"."{table.name}" SET SCHEMA "{live_schema}"')
        _carry_failures(conn, p, f'"{location}".projection_failures')
        _finish(conn, p, position)
        conn.exec_driver_sql(f'DROP SCHEMA "{location}" CASCADE')
    return True


def _switch_sqlite(engine: Engine, p: Projection, location: str) -> bool:
    raw = engine.raw_connection()  # ATTACH cannot run inside a transaction: the driver's own
    try:
        db = raw.driver_connection
        db.execute("ATTACH DATABASE ? AS build", (location,))
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                conn_ok = _sqlite_swap(db, p, location)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if conn_ok:
                db.execute("COMMIT")
            else:
                db.execute("ROLLBACK")
        finally:
            db.execute("DETACH DATABASE build")
    finally:
        raw.close()
    if conn_ok:
        _remove_location(engine, location)
    return conn_ok


def _sqlite_swap(db: Any, p: Projection, location: str) -> bool:
    found = db.execute("SELECT version, location FROM projection_builds WHERE name = ?",
                       (p.name,)).fetchone()
    live = db.execute("SELECT version FROM projection_tracking WHERE name = ?",
                      (p.name,)).fetchone()
    if found is None or tuple(found) != (p.version, location) or live is None \
            or live[0] == p.version:
        return False
    position = db.execute("SELECT position FROM build.projection_tracking WHERE name = ?",
                          (p.name,)).fetchone()[0]
    names = [t.name for t in p.tables]
    ddl = db.execute(
        "SELECT type, name, tbl_name, sql FROM build.sqlite_master WHERE sql IS NOT NULL "
        f"AND tbl_name IN ({', '.join('?' * len(names))})", names).fetchall()
    for name in reversed(names):
        db.execute(f'DROP TABLE IF EXISTS main."{name}"')
    for kind in ("table", "index"):
        for type_, _, _, sql in ddl:
            if type_ == kind:
                db.execute(sql)  # unqualified: made in main, the live file
    for name in names:
        db.execute(f'INSERT INTO main."{name}" SELECT * FROM build."{name}"')
    db.execute("DELETE FROM projection_failures WHERE name = ?", (p.name,))
    db.execute("INSERT INTO projection_failures SELECT * FROM build.projection_failures "
               "WHERE name = ?", (p.name,))
    db.execute("UPDATE projection_tracking SET version = ?, position = ? WHERE name = ?",
               (p.version, position, p.name))
    db.execute("DELETE FROM projection_builds WHERE name = ?", (p.name,))
    return True


def _ours(conn: Connection, p: Projection, location: str) -> bool:
    row = conn.execute(select(builds).where(builds.c.name == p.name)).mappings().first()
    live = conn.execute(select(tracking.c.version).where(tracking.c.name == p.name)).scalar()
    return (row is not None and row["version"] == p.version and row["location"] == location
            and live != p.version)


def _carry_failures(conn: Connection, p: Projection, source_table: str) -> None:
    conn.execute(failures.delete().where(failures.c.name == p.name))
    conn.execute(text(f"INSERT INTO projection_failures SELECT * FROM {source_table} "
                      "WHERE name = :n"), {"n": p.name})


def _finish(conn: Connection, p: Projection, position: int) -> None:
    conn.execute(tracking.update().where(tracking.c.name == p.name)
                 .values(version=p.version, position=position))
    conn.execute(builds.delete().where(builds.c.name == p.name))


def discard(engine: Engine, projections: Iterable[Projection]) -> None:
    """Drop the builds under way of ``projections`` and lay their live tables out anew,
    empty, at position 0 (``runner.rebuild``: a rebuild in place from zero)."""
    projections = list(projections)
    with writer(engine).begin() as conn:
        schema_lock(conn, "zhuisu-projection-builds")
        _ensure_builds(conn)
        lock_positions(conn, [p.name for p in projections], wait=True)
        known = dict(conn.execute(select(tracking.c.name, tracking.c.version)).all())
        gone = []
        for p in projections:
            row = conn.execute(select(builds).where(builds.c.name == p.name)).mappings().first()
            if row is not None:
                gone.append(row["location"])
                conn.execute(builds.delete().where(builds.c.name == p.name))
            if p.name in known and known[p.name] != p.version:
                relayout(conn, p)
        if engine.dialect.name == "postgresql":
            for location in gone:
                _remove_location(engine, location, conn)
    if engine.dialect.name != "postgresql":
        for location in gone:
            _remove_location(engine, location)


# what is under way ------------------------------------------------------------------------
def status(engine: Engine, head: int) -> dict[str, dict[str, Any]]:
    """Per projection being built: the version, where, when started, the build's position
    and how many notifications it is behind the head."""
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "projection_builds"):
            return out
        rows = [dict(r) for r in conn.execute(select(builds)).mappings()]
        for row in rows:
            position = None
            if engine.dialect.name == "postgresql":
                where = f'"{row["location"]}".projection_tracking'
                try:  # the build may be switched (its schema dropped) as we read
                    with conn.begin_nested():
                        position = conn.execute(text(
                            f"SELECT position FROM {where} WHERE name = :n"),
                            {"n": row["name"]}).scalar()
                except DBAPIError:
                    continue
            elif Path(row["location"]).exists():
                target = create_engine(f"sqlite:///file:{row['location']}?mode=ro&uri=true")
                try:
                    with target.connect() as c:
                        position = c.execute(select(tracking.c.position).where(
                            tracking.c.name == row["name"])).scalar()
                except DBAPIError:  # switched (the file removed) as we read
                    continue
                finally:
                    target.dispose()
            started = row["started_at"]
            out[row["name"]] = {
                "version": row["version"], "location": row["location"],
                "started_at": started.isoformat() if started is not None else None,
                "position": position or 0, "behind": head - (position or 0)}
    return out
