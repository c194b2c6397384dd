"""Running the projections: catch up, rebuild, follow the log, report lag.

A batch: read and decode the next events after the lowest of the projections' positions;
then, in one transaction, lock their tracking rows, let each projection handle the events
past its own position, write its rows, move its position to the last notification read,
commit.  A crash anywhere before the commit leaves rows and positions as they were, so
the batch is simply done again: nothing is lost or counted twice.

- SQLite: ``catch_up`` runs in-process after each command; the transaction begins with
  ``BEGIN IMMEDIATE``, so concurrent callers (threads, processes) take turns.
- PostgreSQL: ``run_worker`` follows the log as a separate process, woken by the event
  store's ``NOTIFY`` on each insert (and polling as a fallback).  The tracking rows are
  locked ``FOR UPDATE SKIP LOCKED``: any number of workers may run; each projection is
  advanced by one of them at a time.

``until`` stops at a log position, and ``engine`` writes into another database than the
events' own: together they build the read models as of any past position elsewhere
(replay), by the same code.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, update

from projections.balances import Balances
from projections.cases import Cases
from projections.events import EventSource, reader_app
from projections.flags import Flags
from projections.metrics import Metrics
from projections.money_trace import MoneyTrace
from projections.projection import Projection, Rows
from projections.register import Register
from projections.responsibility import Responsibility
from projections.tracking import analyze, deferrable_indexes, ensure_schema, lock_positions, positions, tracking, truncate
from store.urls import database_url_of
from store.engines import engine_for, is_postgres, writer

PROJECTIONS: tuple[Projection, ...] = (Balances(), MoneyTrace(), Responsibility(), Register(),
                                       Cases(), Metrics(), Flags())
CATCH_UP_BATCH = 1000
REBUILD_BATCH = 20000

SOURCES_KEPT = 4  # as store.engines.ENGINES_KEPT
_sources: OrderedDict[str, EventSource] = OrderedDict()
_sources_lock = threading.Lock()


class StopEvent(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def by_name(names: Iterable[str] | None) -> tuple[Projection, ...]:
    if names is None:
        return PROJECTIONS
    known = {p.name: p for p in PROJECTIONS}
    names = list(names)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"no projection {unknown[0]!r}; one of {sorted(known)}")
    return tuple(known[n] for n in names)


def source_for(app_or_url: Any) -> EventSource:
    """The event log of an application, or of the store at a URL (opened once per process)."""
    if not isinstance(app_or_url, str):
        return EventSource(app_or_url, database_url_of(app_or_url))
    with _sources_lock:
        source = _sources.get(app_or_url)
        if source is None:
            source = _sources[app_or_url] = EventSource(reader_app(app_or_url), app_or_url)
            while len(_sources) > SOURCES_KEPT:  # dropped: closed when no longer in use
                _sources.popitem(last=False)
        _sources.move_to_end(app_or_url)
        return source


def close_sources() -> None:
    """Close the readers opened for URLs (tests, shutdown)."""
    with _sources_lock:
        for source in _sources.values():
            source.app.close()
        _sources.clear()


def process_batch(source: EventSource, engine: Engine, projections: Sequence[Projection],
                  limit: int, until: int | None = None, *, wait: bool = False) -> bool:
    """One batch in one transaction; False when there is nothing to do (or, unless
    ``wait``, when other workers hold all the tracking rows).

    The events are read and decoded before the transaction, so the write lock (SQLite)
    or the tracking rows (PostgreSQL) are held only while rows are written.  Positions
    are checked again under the lock: a projection that moved meanwhile takes only the
    events past its new position; one that moved back (a rebuild) waits for the next batch.
    """
    with engine.connect() as conn:
        known = positions(conn)
    start = min(known[p.name] for p in projections)
    wanted = frozenset().union(*(p.steps for p in projections))
    last, events = source.read(start, limit, wanted, until)
    if last == start:
        return False
    with writer(engine).begin() as conn:
        held = lock_positions(conn, [p.name for p in projections], wait=wait)
        mine = [p for p in projections if p.name in held and start <= held[p.name] < last]
        rows = Rows(conn)
        for p in mine:
            todo = [e for e in events if e.position > held[p.name] and e.step in p.handlers]
            p.prefetch(todo, rows)
            for e in todo:
                p.handle(e, rows)
        rows.flush()
        if mine:
            conn.execute(update(tracking).where(tracking.c.name.in_([p.name for p in mine]))
                         .values(position=last))
    return bool(held)


def _run(source: EventSource, engine: Engine, chosen: Sequence[Projection], batch: int,
         until: int | None) -> dict[str, int]:
    while process_batch(source, engine, chosen, batch, until, wait=True):
        pass
    with engine.connect() as conn:
        held = positions(conn)
    return {p.name: held[p.name] for p in chosen}


def catch_up(app_or_url: Any, *, names: Iterable[str] | None = None,
             projections: Sequence[Projection] | None = None, engine: Engine | None = None,
             batch: int = CATCH_UP_BATCH, until: int | None = None) -> dict[str, int]:
    """Bring the projections up to the end of the log (or to ``until``); returns positions.

    Called after each command, so that a read that follows a write sees it: where a worker
    holds a projection, this waits for its batch rather than skipping it.  ``engine``
    builds the read models in another database (replay); ``projections`` runs other
    instances (tests).
    """
    source = source_for(app_or_url)
    chosen = tuple(projections) if projections is not None else by_name(names)
    engine = engine or engine_for(source.url)
    ensure_schema(engine, chosen)
    return _run(source, engine, chosen, batch, until)


def rebuild(app_or_url: Any, *, names: Iterable[str] | None = None,
            engine: Engine | None = None, batch: int = REBUILD_BATCH,
            until: int | None = None) -> dict[str, int]:
    """Empty the projections' tables, set their positions to 0 and catch up from there."""
    source = source_for(app_or_url)
    chosen = by_name(names)
    engine = engine or engine_for(source.url)
    ensure_schema(engine, chosen)
    deferred = deferrable_indexes(chosen)
    with writer(engine).begin() as conn:
        lock_positions(conn, [p.name for p in chosen], wait=True)
        for p in chosen:
            truncate(conn, p.tables)
        for index in deferred:
            index.drop(conn, checkfirst=True)
        conn.execute(update(tracking).where(tracking.c.name.in_([p.name for p in chosen]))
                     .values(position=0))
    done = _run(source, engine, chosen, batch, until)
    with writer(engine).begin() as conn:
        for index in deferred:
            index.create(conn, checkfirst=True)
        analyze(conn, [t for p in chosen for t in p.tables])
    return done


def lag(app_or_url: Any) -> dict[str, dict[str, int]]:
    """Per projection: its position, the last notification id in the log, and the gap."""
    source = source_for(app_or_url)
    engine = engine_for(source.url)
    ensure_schema(engine, PROJECTIONS)
    head = source.max_position()
    with engine.connect() as conn:
        held = positions(conn)
    return {p.name: {"position": held[p.name], "head": head, "lag": head - held[p.name]}
            for p in PROJECTIONS}


def run_worker(url: str, stop_event: StopEvent, *, names: Iterable[str] | None = None,
               poll_seconds: float = 1.0, batch: int = CATCH_UP_BATCH) -> None:
    """Follow the log until ``stop_event`` is set (``zhuisu project run``).

    On PostgreSQL the worker LISTENs on the event store's channel and wakes on each
    insert; on SQLite it polls every ``poll_seconds``.  Safe to run several at once.
    """
    source = source_for(url)
    chosen = by_name(names)
    engine = engine_for(url)
    ensure_schema(engine, chosen)
    listener = _listen(url, source.recorder.channel_name) if is_postgres(url) else None
    try:
        while not stop_event.is_set():
            progressed = False
            while not stop_event.is_set() and process_batch(source, engine, chosen, batch):
                progressed = True
            if not progressed:
                _wait(listener, stop_event, poll_seconds)
    finally:
        if listener is not None:
            listener.close()


def _wait(listener: Any, stop_event: StopEvent, seconds: float) -> None:
    """Until a NOTIFY arrives (PostgreSQL), ``stop_event`` is set or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not stop_event.is_set() and (left := deadline - time.monotonic()) > 0:
        if listener is None:
            stop_event.wait(left)
            return
        for _ in listener.notifies(timeout=min(left, 0.25), stop_after=1):
            return


def _listen(url: str, channel: str) -> Any:
    import psycopg
    from psycopg import sql

    conn = psycopg.connect(url.partition("?")[0], autocommit=True, connect_timeout=5)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return conn
