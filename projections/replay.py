"""Replay (时间回溯): the read models, a village or an aggregate as they stood in the past.

A reviewer asks one of three questions, and each has its own way of naming the past:

``position N`` — *the log up to notification id N* (inclusive).  Exactly the read models
  a reader saw when the log held its first N events.

``known`` on date X — *what was known on X*: only the events **recorded** by the end of
  day X.  The day ends at 24:00 China Standard Time (UTC+08:00, where the work is done;
  record times are stored in UTC), and the position is the last notification whose
  record time (the stored event's ``timestamp``) is at or before that moment; then as
  ``position``.  An entry made later but backdated to before X is *not* there: this is
  what the reviewer saw that day.  (An event's record time is taken as it is made and
  its position as it is stored, so record times follow the log's order but for the
  milliseconds two concurrent writers may overlap; the position is found by bisection,
  which takes them as ordered.)

``effective`` on date X — *how things stood on business date X, as we know it now*
  (the default for a date): every event recorded up to now (or up to ``position``), but
  household statuses and money as of X.  A household step counts when its business date
  (``effective_date``) is on or before X; a money movement likewise, and a recovery or
  reversal only when the movement it corrects counts too.  A backdated entry recorded
  after X *is* counted here.  Events without a business date (regions, officials,
  accounts opened) always count.  On a business date, ``idle_since`` of an account is
  not known (first-in-first-out lots need the order money really moved in): it is null.

How: events up to the position are replayed into a scratch read model — a temporary
SQLite file, deleted afterwards — by the projections' own code, and the ordinary queries
of ``projections.queries`` and ``projections.chains`` run on it.  For ``effective``, the
register and the balances are replayed by subclasses that skip what had not happened by
X (``RegisterOn``, ``BalancesOn``); the money trace and the responsibility chains, when
asked for, are as of the position.

Which events (``scope``):

``scoped`` (the default) — only those of the aggregates the answer is made of, found in
  the read model ``projections.replay_index`` (a village: its region, households and
  their helpers, the accounts at the village and its township; a household: itself and
  its helpers; an account: itself), read straight from the events table (one query per
  chunk of ids, in notification order) and fed to the same projections by
  ``runner.replay``.  The cost follows the size of the answer, not of the log.  The index
  must cover the position: when its tracking position is behind, it is caught up first
  (it reads the log for four event types, far cheaper than a full replay); when it
  cannot be (the catch-up fails, or it recorded an event it could not take at or before
  the position, so it may miss an aggregate), the replay is ``full`` (logged).

``full`` — the whole log up to the position (``runner.catch_up(until=…, engine=…)``).
  The answers are the same (``tests/test_replay_scoped.py`` compares them on random
  histories); kept as the fallback and the reference.

An aggregate (``aggregate_as_of``) is loaded at the last version recorded by the position
(``known``: by the end of X) with the events up to it.  Its ``effective`` state on X is
its register entry (a household) or its balance (a fund account) from an effective
replay; other aggregates have no business-date state.
"""

from __future__ import annotations

import datetime as dt
import enum
import heapq
import shutil
import tempfile
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from sqlalchemy import Connection, Engine, select

from audit.store import EventRows
from domain.errors import InvalidInput, NotFound
from projections import balances as bal
from projections import queries, runner
from projections import replay_index as index
from projections.balances import Balances
from projections.events import Event, EventSource
from projections.projection import Projection, Rows
from projections.register import Register
from projections.tracking import ensure_schema, failures, positions
from store.engines import dispose, engine_for, on_dispose
from store.urls import is_postgres, postgres_schema

REPORTING_TZ = dt.timezone(dt.timedelta(hours=8), "UTC+08:00")  # 北京时间
VILLAGE_PROJECTIONS = ("register", "balances")
SCOPES = ("scoped", "full")
IDS_PER_QUERY = 500
log = structlog.get_logger("zhuisu.projections")


class Mode(str, enum.Enum):
    """How a date names the past: as recorded by then, or as effective then."""

    KNOWN = "known"
    EFFECTIVE = "effective"


@dataclass(frozen=True)
class Moment:
    """A resolved point in the past: the log up to ``position`` (of ``head`` now), and,
    for ``effective``, the business date ``effective_on``."""

    position: int
    head: int
    mode: str  # "position", "known" or "effective"
    on: dt.date | None = None  # the date asked for
    recorded_by: dt.datetime | None = None  # known: the end of that day, UTC

    @property
    def effective_on(self) -> dt.date | None:
        return self.on if self.mode == Mode.EFFECTIVE.value else None

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "date": self.on.isoformat() if self.on else None,
                "position": self.position, "head": self.head,
                "recorded_by": self.recorded_by.isoformat() if self.recorded_by else None}


def end_of_day(day: dt.date) -> dt.datetime:
    """The last instant of ``day`` in China Standard Time, in UTC."""
    return dt.datetime.combine(day, dt.time.max, REPORTING_TZ).astimezone(dt.UTC)


def recorded_at(source: EventSource, notification: Any) -> dt.datetime:
    """The record time of a stored event (its ``timestamp``)."""
    return source.decode(notification).data["timestamp"]


def position_known_on(app_or_url: Any, day: dt.date) -> tuple[int, dt.datetime]:
    """The last log position recorded by the end of ``day``, and that moment (UTC).

    Bisection over the notification ids: each probe reads and decodes one notification.
    """
    source = runner.source_for(app_or_url)
    moment = end_of_day(day)
    lo, hi = 0, source.max_position() + 1  # lo: recorded by then (0: nothing); hi: after
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = source.recorder.select_notifications(start=mid, limit=1, stop=hi - 1)
        if not found:  # no notification in [mid, hi): the first one after lo is hi's
            hi = mid
        elif recorded_at(source, found[0]) <= moment:
            lo = found[0].id
        else:
            hi = found[0].id
    return lo, moment


def moment(app_or_url: Any, *, as_of: dt.date | None = None, mode: Mode | str = Mode.EFFECTIVE,
           position: int | None = None) -> Moment:
    """Resolve what the caller asked for: ``position``, ``as_of`` with ``mode``, or
    ``as_of`` effective as known at ``position``.  Refusals name the field."""
    try:
        mode = Mode(mode)
    except ValueError as exc:
        raise InvalidInput(f"must be one of {[m.value for m in Mode]}", field="mode") from exc
    head = runner.source_for(app_or_url).max_position()
    if position is not None:
        if position < 0:
            raise InvalidInput("must be a log position (≥ 0)", field="position")
        if position > head:
            raise InvalidInput(f"the log ends at position {head}", field="position")
    if as_of is None:
        if mode is Mode.KNOWN:
            raise InvalidInput("as known qualifies a date: give as_of", field="as_of")
        if position is None:
            raise InvalidInput("give a date (as_of) or a log position (position)",
                               field="as_of")
        return Moment(position, head, "position")
    if mode is Mode.KNOWN:
        if position is not None:
            raise InvalidInput("a date as known fixes the position itself; give one or "
                               "the other", field="position")
        known, by = position_known_on(app_or_url, as_of)
        return Moment(known, head, Mode.KNOWN.value, as_of, by)
    return Moment(head if position is None else position, head, Mode.EFFECTIVE.value, as_of)


# effective on a business date ------------------------------------------------------------
class RegisterOn(Register):
    """The register as it stood on business date ``day``: household steps dated after it
    are skipped.  A household's procedure steps are dated in order, so what is left is
    its state that day; the assistance steps that may be dated back (帮扶责任人, annual
    review) change no status."""

    def __init__(self, day: dt.date):
        self.day = day

    def handle(self, event: Event, rows: Rows) -> None:
        day = event.get("effective_date")
        if event.step.startswith("Household.") and day is not None and day > self.day:
            return
        super().handle(event, rows)


class BalancesOn(Balances):
    """Balances counting the movements dated on or before ``day`` (a recovery or reversal
    only when the movement it corrects counts).  No FIFO lots: money moved on paper
    before it arrived must not stop the replay, so ``idle_since`` stays null."""

    def __init__(self, day: dt.date):
        self.day = day

    def handle(self, event: Event, rows: Rows) -> None:
        if "effective_date" in event.data:
            if event.day > self.day:
                return
            corrected = event.get("of_movement_id")
            if corrected is not None and rows.get(bal.movements, event.originator_id,
                                                  corrected) is None:
                return
        super().handle(event, rows)

    def _money_in(self, e: Event, rows: Rows, column: str, lot_id: str, sign: int = 1) -> None:
        self._add(e, rows, column, sign * e["amount_fen"])

    def _money_out(self, e: Event, rows: Rows, column: str, sign: int = 1,
                   prefer: str | None = None) -> None:
        self._add(e, rows, column, sign * e["amount_fen"])


def _projections_for(at: Moment, names: Iterable[str] | None) -> tuple[Projection, ...]:
    chosen = runner.by_name(names)
    day = at.effective_on
    if day is None:
        return chosen
    effective = {"register": RegisterOn(day), "balances": BalancesOn(day)}
    return tuple(effective.get(p.name, p) for p in chosen)


# the scope: which aggregates' events --------------------------------------------------------
def scope_ids(app_or_url: Any, kind: str, key: str, position: int) -> list[str] | None:
    """The ids of the aggregates a replay of ``kind`` (village, household, account)
    ``key`` to ``position`` reads, from the index (caught up first if it is behind);
    None when the index cannot answer for that position: replay the whole log."""
    resolve: Callable[[Connection, str, int], list[str]] = {
        "village": index.village_ids, "household": index.household_ids,
        "account": index.account_ids}[kind]
    source = runner.source_for(app_or_url)
    engine = engine_for(source.url)
    try:
        if not _index_covers(engine, position):
            runner.catch_up(app_or_url, names=[index.ReplayIndex.name])
            if not _index_covers(engine, position):
                log.warning("replay index cannot answer: full replay",
                            projection=index.ReplayIndex.name, position=position)
                return None
        with engine.connect() as conn:
            return resolve(conn, key, position)
    except Exception as exc:  # noqa: BLE001 - the full replay answers all the same
        log.warning("replay index unavailable: full replay", position=position,
                    error=runner.describe(exc))
        return None


def _index_covers(engine: Engine, position: int) -> bool:
    """The index has read the log up to ``position`` and took every event up to it."""
    name = index.ReplayIndex.name
    ensure_schema(engine, runner.by_name([name]))
    with engine.connect() as conn:
        if positions(conn).get(name, 0) < position:
            return False
        return conn.execute(select(failures.c.position).where(
            failures.c.name == name, failures.c.position <= position).limit(1)).first() is None


class _Raw:
    """A stored event read from the events table, as ``EventSource.decode`` reads one."""

    __slots__ = ("id", "originator_id", "originator_version", "topic", "state")

    def __init__(self, row: tuple, ids: dict[bytes, str]):
        position, oid, version, topic, state = row
        self.id, self.originator_version, self.state = position, version, bytes(state)
        oid = bytes(oid)
        self.originator_id = ids.get(oid) or ids.setdefault(oid, str(UUID(oid.decode())))
        self.topic = bytes(topic).decode()


_readers: dict[int, EventRows] = {}
on_dispose(lambda engine: _readers.pop(id(engine), None))


def _events_table(url: str) -> tuple[Engine, EventRows]:
    """Raw reads of the events table at ``url`` (as ``audit.store.AuditStore`` makes
    them), on the kept ``audit`` engine."""
    engine = engine_for(url, "audit")
    reader = _readers.get(id(engine))
    if reader is None:
        if not is_postgres(url):
            reader = EventRows("sqlite", '"stored_events"')
        else:
            schema = postgres_schema(url) or "public"
            with engine.connect() as conn:
                kind = conn.exec_driver_sql(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                    "%s AND table_name = 'zhuisu_events' AND column_name = 'originator_id'",
                    (schema,)).scalar()
            reader = EventRows("postgresql", f'"{schema}"."zhuisu_events"',
                               kind is None or kind == "uuid")
        _readers[id(engine)] = reader
    return engine, reader


def events_of(app_or_url: Any, ids: Sequence[str], upto: int,
              wanted: Collection[str]) -> list[Event]:
    """The events of the aggregates ``ids`` up to log position ``upto`` whose step is in
    ``wanted``, decoded, in log order: one query per chunk of ids."""
    source = runner.source_for(app_or_url)
    engine, reader = _events_table(source.url)
    keys = [UUID(i) for i in ids]
    found = []
    with engine.connect() as conn:
        for i in range(0, len(keys), IDS_PER_QUERY):
            found.append(reader.of_aggregates(conn, keys[i:i + IDS_PER_QUERY], upto))
    rows = heapq.merge(*found, key=itemgetter(0)) if len(found) > 1 else iter(found[0] if found
                                                                              else [])
    ids: dict[bytes, str] = {}  # a few aggregates, many events each
    return [source.decode(n) for n in (_Raw(r, ids) for r in rows)
            if source.step(n.topic) in wanted]


class ScopedEvents:
    """Events already read (a few aggregates'), served as ``EventSource.read`` serves the
    log, for ``runner.replay``."""

    def __init__(self, events: list[Event]):
        self.events = events
        self._positions = [e.position for e in events]

    def read(self, after: int, limit: int, wanted: Collection[str],
             until: int | None = None) -> tuple[int, list[Event]]:
        i = bisect_right(self._positions, after)
        taken = [e for e in self.events[i:i + limit] if until is None or e.position <= until]
        if not taken:
            return after, []
        return taken[-1].position, [e for e in taken if e.step in wanted]


def _scope(app_or_url: Any, kind: str, key: str, at: Moment, scope: str) -> list[str] | None:
    if scope not in SCOPES:
        raise ValueError(f"scope is one of {SCOPES}, not {scope!r}")
    return None if scope == "full" else scope_ids(app_or_url, kind, key, at.position)


# scratch read models ----------------------------------------------------------------------
@contextmanager
def scratch(app_or_url: Any, at: Moment, names: Iterable[str] | None = None,
            ids: Sequence[str] | None = None) -> Iterator[Engine]:
    """An engine on read models replayed to ``at`` (all projections unless ``names``),
    in a temporary SQLite file that is deleted on leaving the block: from the whole log,
    or from the events of the aggregates ``ids`` only."""
    folder = tempfile.mkdtemp(prefix="zhuisu-replay-")
    url = f"sqlite:///{folder}/replay.db"
    try:
        engine = engine_for(url)
        projections = _projections_for(at, names)
        if ids is None:
            runner.catch_up(app_or_url, projections=projections, engine=engine,
                            batch=runner.REBUILD_BATCH, until=at.position)
        else:
            wanted = frozenset().union(*(p.steps for p in projections))
            runner.replay(ScopedEvents(events_of(app_or_url, ids, at.position, wanted)),
                          projections, engine, until=at.position)
        yield engine
    finally:
        dispose(url)
        shutil.rmtree(folder, ignore_errors=True)


def village_as_of(app_or_url: Any, village_code: str, at: Moment, *,
                  field: str = "village_code", scope: str = "scoped") -> dict[str, Any]:
    """The village view (``queries.village_view``) as of ``at``, with the balances of
    the accounts that hold the village's money (村账乡代管: its township's, and its own
    if it has any).  ``scope``: ``scoped`` (its aggregates' events) or ``full``."""
    ids = _scope(app_or_url, "village", village_code, at, scope)
    with scratch(app_or_url, at, VILLAGE_PROJECTIONS, ids) as engine:
        try:
            view = queries.village_view(engine, village_code)
        except NotFound as exc:
            why = (f" (nothing had been recorded by the end of {at.on.isoformat()})"
                   if at.position == 0 and at.on is not None else "")
            raise NotFound(f"no village {village_code} at log position {at.position}{why}",
                           field=field) from exc
        township = view["village"]["township"]
        accounts = [a for code in dict.fromkeys([village_code, township]) if code
                    for a in queries.balances(engine, region_code=code, as_of=at.on)
                    if a["region_code"] == code]
    return {"as_of": at.describe(), "village": view, "accounts": accounts}


# one aggregate -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AggregateAsOf:
    """An aggregate at ``version`` (None: effective state) with its ``events`` then."""

    at: Moment
    aggregate: Any  # as loaded at ``version`` (known, position), or as now (effective)
    version: int | None
    events: list[Any]  # stored domain events
    effective_state: dict[str, Any] | None = None  # effective: register entry or balance


def version_at(app: Any, aggregate_id: UUID, position: int) -> int:
    """The last version of an aggregate stored at or before log ``position`` (0: none)."""
    latest = app.repository.get(aggregate_id, deepcopy_from_cache=False).version
    engine, events = _events_table(runner.source_for(app).url)
    with engine.connect() as conn:
        lo, hi = 0, latest  # versions 1..lo are at or before position; hi+1.. after
        while lo < hi:
            mid = (lo + hi + 1) // 2
            at = events.position_of(conn, aggregate_id, mid)
            if at is not None and at <= position:
                lo = mid
            else:
                hi = mid - 1
        return lo


def aggregate_as_of(app: Any, aggregate_id: UUID, at: Moment, *,
                    scope: str = "scoped") -> AggregateAsOf:
    """One aggregate as of ``at``: loaded at its last version by then, or (effective)
    as now with the events dated by then and its business-date state (replayed from
    its own events and its helpers', or with ``scope="full"`` from the whole log)."""
    try:
        current = app.repository.get(aggregate_id)
    except AggregateNotFoundError as exc:
        raise NotFound(f"no aggregate {aggregate_id}", field="aggregate_id") from exc
    kind = type(current).__name__
    if at.effective_on is not None:
        day = at.effective_on
        names = {"Household": "register", "FundAccount": "balances"}
        if kind not in names:
            raise InvalidInput(f"a {kind} has no state on a business date; ask as known "
                               "(known) or at a log position", field="mode")
        version = version_at(app, aggregate_id, at.position)
        if version == 0:
            raise _not_yet(aggregate_id, at)
        events = [e for e in app.stored_events(aggregate_id, limit=version)
                  if _business_date(e) is None or _business_date(e) <= day]
        ids = _scope(app, {"Household": "household", "FundAccount": "account"}[kind],
                     str(aggregate_id), at, scope)
        with scratch(app, at, [names[kind]], ids) as engine:
            if kind == "Household":
                try:
                    state = queries.household_view(engine, str(aggregate_id))
                except NotFound as exc:
                    raise NotFound(f"household {current.code} had not applied by "
                                   f"{day.isoformat()}", field="as_of") from exc
            else:
                state = next(a for a in queries.balances(engine)
                             if a["account_id"] == str(aggregate_id))
        return AggregateAsOf(at, current, None, events, state)
    version = version_at(app, aggregate_id, at.position)
    if version == 0:
        raise _not_yet(aggregate_id, at)
    aggregate = app.repository.get(aggregate_id, version=version)
    return AggregateAsOf(at, aggregate, version, app.stored_events(aggregate_id, limit=version))


def _business_date(event: Any) -> dt.date | None:
    return getattr(event, "effective_date", None)


def _not_yet(aggregate_id: UUID, at: Moment) -> NotFound:
    field = "as_of" if at.mode == Mode.KNOWN.value else "position"
    return NotFound(f"aggregate {aggregate_id} did not exist yet at log position "
                    f"{at.position}", field=field)
