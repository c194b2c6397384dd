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

No stored event, however odd (a date at the end of the calendar, a field of the wrong
type, a state that does not decode), stops a projection.  When a batch fails, it is
rolled back and done again in halves, down to the one event that fails; that event is
taken by each projection on its own, inside a savepoint with its own rows, and a
projection whose handler fails on it leaves no trace of it but a row in
``projection_failures`` (``tracking.record_failure``: position, event type, error) and a
log line, and moves past it.  So catch-up and rebuild always complete, reads keep
answering, and the failed events are listed by ``lag`` (``GET /projections/lag``,
``zhuisu project lag``) and counted by ``/health``.

``until`` stops at a log position, and ``engine`` writes into another database than the
events' own: together they build the read models as of any past position elsewhere
(replay), by the same code; ``replay`` runs them over another reader than the whole log
(the events of the few aggregates a scoped replay needs).

A projection whose ``version`` changed is not advanced in its live tables: it is built
beside them and switched in one transaction once caught up (``projections.bluegreen``),
so reads keep the complete old answer until then; ``rebuild`` stays a rebuild in place.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine, update
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from projections import bluegreen
from projections.balances import Balances
from projections.batches import Batches
from projections.cases import Cases
from projections.compare import Comparison
from projections.events import Event, EventSource, reader_app
from projections.flags import Flags
from projections.leads import Leads
from projections.metrics import Metrics
from projections.money_trace import MoneyTrace
from projections.projection import Projection, Rows
from projections.register import Register
from projections.replay_index import ReplayIndex
from projections.responsibility import Responsibility
from projections.tracking import (
    analyze,
    deferrable_indexes,
    ensure_schema,
    failure_counts,
    failures_of,
    forget_failures,
    lock_positions,
    positions,
    record_failure,
    tracking,
    truncate,
)
from store.engines import engine_for, is_postgres, writer
from store.urls import database_url_of

PROJECTIONS: tuple[Projection, ...] = (Balances(), MoneyTrace(), Responsibility(), Register(),
                                       Cases(), Metrics(), Flags(), ReplayIndex(),
                                       Comparison(), Leads(), Batches())
CATCH_UP_BATCH = 1000
REBUILD_BATCH = 20000

log = structlog.get_logger("zhuisu.projections")

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
    A batch that fails is done again in parts (``_in_parts``), so one odd event cannot
    stop the others.
    """
    with engine.connect() as conn:
        known = positions(conn)
    start = min(known[p.name] for p in projections)
    wanted = frozenset().union(*(p.steps for p in projections))
    last, events = source.read(start, limit, wanted, until)
    if last == start:
        return False
    try:
        return bool(_commit(engine, projections, events, start, last, wait))
    except TRANSIENT:
        raise  # the store, not an event: the next catch-up tries again
    except Exception:  # noqa: BLE001 - an event the handlers cannot take: find it
        _in_parts(engine, projections, events, start, last, wait)
        return True


# Errors of the store rather than of an event (a lock wait, a lost connection, memory):
# never a reason to skip an event.
TRANSIENT = (OperationalError, InterfaceError, MemoryError)


def _commit(engine: Engine, projections: Sequence[Projection], events: Sequence[Event],
            start: int, last: int, wait: bool) -> dict[str, int]:
    """Take ``events`` (those between ``start`` and ``last``) into the projections and
    move them to ``last``, in one transaction; the tracking rows held."""
    with writer(engine).begin() as conn:
        held = lock_positions(conn, [p.name for p in projections], wait=wait)
        mine = [p for p in projections if p.name in held and start <= held[p.name] < last]
        rows = Rows(conn)
        for p in mine:
            todo = [e for e in events if e.position > held[p.name] and e.step in p.handlers]
            if any(e.error for e in todo):
                raise _Undecodable()
            p.prefetch(todo, rows)
            for e in todo:
                p.handle(e, rows)
        rows.flush()
        _advance(conn, mine, last)
    return held


class _Undecodable(Exception):
    """A batch holds an event whose state could not be decoded: take it on its own."""


def _in_parts(engine: Engine, projections: Sequence[Projection], events: Sequence[Event],
              start: int, last: int, wait: bool) -> None:
    """The batch failed (and was rolled back): do it again in halves, in log order, down to
    the single event that fails, which ``_alone`` takes projection by projection."""
    if len(events) <= 1:
        if events:
            prior = events[0].position - 1
            if prior > start:  # events other projections do not want: just move past them
                _commit(engine, projections, [], start, prior, wait)
            _alone(engine, projections, events[0], max(start, prior), wait)
            if events[0].position < last:
                _commit(engine, projections, [], events[0].position, last, wait)
        else:
            _commit(engine, projections, [], start, last, wait)
        return
    half = len(events) // 2
    middle = events[half - 1].position
    for part, lo, hi in ((events[:half], start, middle), (events[half:], middle, last)):
        try:
            _commit(engine, projections, part, lo, hi, wait)
        except TRANSIENT:
            raise
        except Exception:  # noqa: BLE001 - as in process_batch
            _in_parts(engine, projections, part, lo, hi, wait)


def _alone(engine: Engine, projections: Sequence[Projection], event: Event, start: int,
           wait: bool) -> None:
    """Take one event: each projection that is at ``start`` (just before it) handles it in
    a savepoint with rows of its own; one whose handler fails records the failure instead.
    Every one of them moves to the event's position."""
    with writer(engine).begin() as conn:
        held = lock_positions(conn, [p.name for p in projections], wait=wait)
        mine = [p for p in projections if held.get(p.name) == start]
        for p in mine:
            if event.step not in p.handlers:
                continue
            error = event.error
            if error is None:
                savepoint = conn.begin_nested()
                try:
                    rows = Rows(conn)
                    p.prefetch([event], rows)
                    p.handle(event, rows)
                    rows.flush()
                except TRANSIENT:
                    raise
                except Exception as exc:  # noqa: BLE001 - recorded as the event's failure
                    savepoint.rollback()
                    error = describe(exc)
                else:
                    savepoint.commit()
            if error is not None:
                _failed(conn, p, event, error)
        _advance(conn, mine, event.position)


def _failed(conn: Connection, p: Projection, event: Event, error: str) -> None:
    record_failure(conn, p.name, event.position, event.step, event.originator_id,
                   event.version, error)
    log.error("projection skipped an event it cannot take", projection=p.name,
              position=event.position, event_type=event.step,
              originator_id=event.originator_id, version=event.version, error=error)


def describe(exc: BaseException) -> str:
    """The error of a failed event, short and without the row's values: its type and the
    first line of its message (a database error: the driver's, not the statement's)."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:300]


def _advance(conn: Connection, mine: Sequence[Projection], position: int) -> None:
    if mine:
        conn.execute(update(tracking).where(tracking.c.name.in_([p.name for p in mine]))
                     .values(position=position))


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
    live, building = bluegreen.split(engine, chosen)
    done = _run(source, engine, live, batch, until) if live else {}
    for p in building:  # a changed layout: built beside the live tables, then switched
        bluegreen.build(source, engine, p, max(batch, REBUILD_BATCH), until,
                        process_batch=process_batch)
        done.update(_run(source, engine, [p], batch, until))
    return {p.name: done[p.name] for p in chosen}


def replay(source: Any, projections: Sequence[Projection], engine: Engine, *,
           batch: int = REBUILD_BATCH, until: int | None = None) -> dict[str, int]:
    """Run ``projections`` into ``engine`` over what ``source`` reads: any object with
    ``EventSource.read``'s signature, such as the events of a few aggregates only (a
    scoped replay, ``projections.replay``).  The same batches, handlers and failure
    handling as a catch-up."""
    chosen = tuple(projections)
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
    bluegreen.discard(engine, chosen)  # in place: a build under way is dropped
    deferred = deferrable_indexes(chosen)
    with writer(engine).begin() as conn:
        lock_positions(conn, [p.name for p in chosen], wait=True)
        for p in chosen:
            truncate(conn, p.tables)
        forget_failures(conn, [p.name for p in chosen])
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


def lag(app_or_url: Any, *, failures: int | None = None) -> dict[str, dict[str, Any]]:
    """Per projection: its position, the last notification id in the log, and the gap;
    with ``failures`` (a number), also how many stored events it could not take
    (``failed``) and the latest ``failures`` of them, newest first.  A projection whose
    new layout is being built beside its live tables (``projections.bluegreen``) also
    has ``rebuild``: the version built, its position, how far behind the head, since
    when."""
    source = source_for(app_or_url)
    engine = engine_for(source.url)
    ensure_schema(engine, PROJECTIONS)
    head = source.max_position()
    with engine.connect() as conn:
        held = positions(conn)
        failed = failure_counts(conn) if failures is not None else {}
        latest = {name: failures_of(conn, name, failures or 0) for name in failed}
    out: dict[str, dict[str, Any]] = {
        p.name: {"position": held[p.name], "head": head, "lag": head - held[p.name]}
        for p in PROJECTIONS}
    for name, build in bluegreen.status(engine, head).items():
        if name in out:
            out[name]["rebuild"] = build
    if failures is not None:
        for name, row in out.items():
            row.update(failed=failed.get(name, 0), failures=latest.get(name, []))
    return out


def rebuilds(app_or_url: Any) -> dict[str, dict[str, Any]]:
    """Per projection whose new layout is being built beside its live tables: the version,
    the build's position, how far behind the head, since when (``bluegreen.status``)."""
    source = source_for(app_or_url)
    found = bluegreen.status(engine_for(source.url), source.max_position())
    return {name: {k: v for k, v in b.items() if k != "location"} for name, b in found.items()}


def failed_events(app_or_url: Any) -> dict[str, int]:
    """Per projection with any: how many stored events its handlers could not take."""
    source = source_for(app_or_url)
    engine = engine_for(source.url)
    ensure_schema(engine, PROJECTIONS)
    with engine.connect() as conn:
        return failure_counts(conn)


def run_worker(url: str, stop_event: StopEvent, *, names: Iterable[str] | None = None,
               poll_seconds: float = 1.0, batch: int = CATCH_UP_BATCH) -> None:
    """Follow the log until ``stop_event`` is set (``zhuisu project run``).

    On PostgreSQL the worker LISTENs on the event store's channel and wakes on each
    insert; on SQLite it polls every ``poll_seconds``.  Safe to run several at once.
    A projection whose layout changed is built beside its live tables one batch at a
    time between the live batches, and switched once caught up (``bluegreen``).
    """
    source = source_for(url)
    chosen = by_name(names)
    engine = engine_for(url)
    ensure_schema(engine, chosen)
    listener = _listen(url, source.recorder.channel_name) if is_postgres(url) else None
    try:
        while not stop_event.is_set():
            progressed = False
            live, building = bluegreen.split(engine, chosen)
            while live and not stop_event.is_set() and process_batch(source, engine, live,
                                                                     batch):
                progressed = True
            for p in building:  # one batch of each build, between the live batches
                if not stop_event.is_set() and bluegreen.step(
                        source, engine, p, REBUILD_BATCH,
                        process_batch=process_batch) != "live":
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
