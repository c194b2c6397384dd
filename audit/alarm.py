"""The integrity alarm (完整性告警): the log found something that does not hold, and says so
until an operator acts.

Whoever meets evidence of tampering — the background sweep (``runtime.followers``)
re-verifying the log page by page, an answer or proof whose record is not its stored
leaf, the tree meeting an event whose signatures do not verify — calls ``raise_alarm``.
While an alarm is raised the server signs no checkpoint, refuses writes (503
``IntegrityAlarm``) and ``GET /health`` answers 503 with the reason.  The alarm lives in
the store (table ``log_alarms``), so every process sees it and a restart does not forget
it; only ``clear_alarm`` (``zhuisu alarm clear --reason …``) ends it, and the clearing is
kept in the same row (who, when, why): rows are never deleted.

``log_alarms(id, raised_at, reason, position, cleared_at, cleared_by, clear_reason)``:
one row per distinct reason raised while alarmed (raising the same reason again while it
is active returns the existing row, so a sweep that meets the same damage every pass does
not pile rows up).  ``current_alarm`` is the earliest active row — the first thing found
wrong.  Times are tz-aware UTC.

What the operator does is in README ("The tamper-evident log"): ``zhuisu alarm show``,
``zhuisu verify`` to locate the damage, restore the store from a backup or the kept
checkpoint export, ``zhuisu verify`` again, then ``zhuisu alarm clear --reason …``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from audit.errors import AuditError
from audit.merkle import hash_leaf
from audit.records import encode_record
from audit.store import AuditStore
from domain.errors import InvalidInput
from store.schema import create_tables, schema_lock

log = structlog.get_logger("zhuisu.alarm")

MAX_REASON = 2000
metadata = MetaData()
log_alarms = Table(
    "log_alarms", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("position", BigInteger),  # notification id of the event concerned, if one
    Column("cleared_at", DateTime(timezone=True)),
    Column("cleared_by", String(200)),
    Column("clear_reason", Text),
)


class IntegrityAlarm(AuditError):
    """The log's integrity alarm is raised: writes, checkpoints and proofs are refused (503)
    until an operator clears it."""

    status = 503


@dataclass(frozen=True)
class Alarm:
    """One alarm: why, where (notification id, if one event), when; and its clearing."""

    id: int
    raised_at: dt.datetime
    reason: str
    position: int | None = None
    cleared_at: dt.datetime | None = None
    cleared_by: str | None = None
    clear_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def summary(self) -> str:
        where = f" (notification id {self.position})" if self.position is not None else ""
        return (f"integrity alarm {self.id} raised {self.raised_at:%Y-%m-%dT%H:%M:%SZ}: "
                f"{self.reason}{where}")

    def refusal(self, what: str) -> IntegrityAlarm:
        """The refusal of ``what`` while this alarm stands (names the alarm)."""
        return IntegrityAlarm(f"{what} refused: {self.summary}; an operator investigates "
                              f"(zhuisu verify), restores, then clears it (zhuisu alarm "
                              f"clear --reason …)", field="alarm")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "raised_at": self.raised_at.isoformat(), "reason": self.reason,
                "position": self.position,
                "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
                "cleared_by": self.cleared_by, "clear_reason": self.clear_reason}


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _alarm(row: Any) -> Alarm:
    return Alarm(row.id, _utc(row.raised_at), row.reason, row.position, _utc(row.cleared_at),
                 row.cleared_by, row.clear_reason)


def _ensure(store: AuditStore) -> None:
    """Create ``log_alarms`` once per open store (the audit tables' schema, if any)."""
    if not getattr(store, "_alarm_table", False):
        create_tables(store.engine, metadata, owner="zhuisu-audit-alarm")
        store._alarm_table = True  # type: ignore[attr-defined]


def _active(conn: Connection) -> list[Alarm]:
    c = log_alarms.c
    return [_alarm(r) for r in conn.execute(
        select(log_alarms).where(c.cleared_at.is_(None)).order_by(c.id))]


def _lock(conn: Connection) -> None:
    """Serialise raise and clear: SQLite takes the write lock (a no-op update), PostgreSQL
    a transaction-scoped advisory lock."""
    if conn.dialect.name == "postgresql":
        schema_lock(conn, "zhuisu-audit-alarm")
    else:
        conn.execute(update(log_alarms).where(log_alarms.c.id == -1).values(reason=""))


def raise_alarm(store: AuditStore, reason: str, position: int | None = None, *,
                now: dt.datetime | None = None) -> Alarm:
    """Raise the alarm (or return the active alarm with the same reason); logged at error.

    ``position``: the notification id of the event concerned, if one.  Idempotent while
    the alarm with this reason is active.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("must say what was found, non-empty", field="reason")
    reason = reason.strip()[:MAX_REASON]
    _ensure(store)
    with store.engine.begin() as conn:
        _lock(conn)
        for alarm in _active(conn):
            if alarm.reason == reason and alarm.position == position:
                return alarm
        at = _utc(now) or dt.datetime.now(dt.UTC)
        new_id = conn.execute(insert(log_alarms).values(
            raised_at=at, reason=reason, position=position)).inserted_primary_key[0]
    alarm = Alarm(new_id, at, reason, position)
    log.error("integrity alarm raised: checkpoints stop and writes are refused until an "
              "operator clears it", alarm_id=new_id, reason=reason, position=position)
    return alarm


def current_alarm(store: AuditStore, conn: Connection | None = None) -> Alarm | None:
    """The earliest active alarm, or None when the log is trusted.  On ``conn`` if given
    (a caller that holds a connection must not wait for a second one from the pool)."""
    _ensure(store)
    if conn is not None:
        active = _active(conn)
    else:
        with store.engine.connect() as own:
            active = _active(own)
    return active[0] if active else None


def refuse_if_alarmed(store: AuditStore, what: str, conn: Connection | None = None) -> None:
    """Raise ``IntegrityAlarm`` naming the alarm if one is active (on ``conn`` if given)."""
    alarm = current_alarm(store, conn)
    if alarm is not None:
        raise alarm.refusal(what)


def check_leaf(store: AuditStore, conn: Connection, leaf_index: int, position: int,
               record: bytes) -> None:
    """An event about to be served (a proof, a receipt) must still hash to its stored leaf;
    if it does not, raise the alarm and refuse (``IntegrityAlarm``)."""
    rows = store.raw(conn, f"SELECT leaf_hash FROM {store.table_sql('merkle_leaves')} "
                           f"WHERE leaf_index = ?", (leaf_index,))
    if rows and bytes(rows[0][0]) == hash_leaf(record):
        return
    alarm = raise_alarm(store, f"changed: the record at notification id {position} no longer "
                               f"hashes to leaf {leaf_index} (found serving it)", position)
    raise alarm.refusal("a proof")


def check_events(store: AuditStore, originator_id: Any, events: Sequence[Any]) -> None:
    """Events the application read from the store for an answer (``StoredEvent``-like:
    originator_id, originator_version, topic, state) must hash, as read, to their leaves;
    if one does not, raise the alarm and refuse (``IntegrityAlarm``).  Events not yet in the
    tree are not checked.  One query per call."""
    if not events:
        return
    rows_sql = (f"SELECT e.originator_version, l.position, l.leaf_index, l.leaf_hash "
                f"FROM {store.events.table} e JOIN {store.table_sql('merkle_leaves')} l "
                f"ON l.position = e.{store.events.pos} WHERE e.originator_id = ? "
                f"AND e.originator_version >= ? AND e.originator_version <= ?")
    key: Any = originator_id
    if store.dialect == "sqlite" or not store.events.uuid_ids:
        key = originator_id.hex if store.dialect == "sqlite" and hasattr(originator_id, "hex") \
            else str(originator_id)
    with store.engine.connect() as conn:
        versions = [e.originator_version for e in events]
        leaves = {int(v): (int(p), int(i), bytes(h)) for v, p, i, h in store.raw(
            conn, rows_sql, (key, min(versions), max(versions)))}
    oid = (originator_id.hex if hasattr(originator_id, "hex") else str(originator_id)).encode()
    for event in events:
        leaf = leaves.get(event.originator_version)
        if leaf is None:
            continue
        position, index, leaf_hash = leaf
        record = encode_record((position, oid, event.originator_version,
                                event.topic.encode(), bytes(event.state)))
        if hash_leaf(record) != leaf_hash:
            alarm = raise_alarm(store, f"changed: the record at notification id {position} no "
                                       f"longer hashes to leaf {index} (found reading it for "
                                       f"an answer)", position)
            raise alarm.refusal("an answer built on it")


def active_alarms(store: AuditStore) -> list[Alarm]:
    """Every active alarm, oldest first."""
    _ensure(store)
    with store.engine.connect() as conn:
        return _active(conn)


def alarm_history(store: AuditStore, limit: int = 100) -> list[Alarm]:
    """The latest alarms, raised and cleared, newest first."""
    _ensure(store)
    with store.engine.connect() as conn:
        return [_alarm(r) for r in conn.execute(
            select(log_alarms).order_by(log_alarms.c.id.desc()).limit(limit))]


def clear_alarm(store: AuditStore, *, reason: str, by: str,
                now: dt.datetime | None = None) -> list[Alarm]:
    """Clear every active alarm, recording who cleared it, when and why; the cleared alarms.

    Refused (``InvalidInput``) without a reason or an operator's name, or when no alarm
    is active.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("must say what was done (investigated, restored, verified), "
                           "non-empty", field="reason")
    if not isinstance(by, str) or not by.strip():
        raise InvalidInput("must name the operator who clears the alarm", field="by")
    _ensure(store)
    at = _utc(now) or dt.datetime.now(dt.UTC)
    with store.engine.begin() as conn:
        _lock(conn)
        active = _active(conn)
        if not active:
            raise InvalidInput("no integrity alarm is raised: nothing to clear", field="alarm")
        conn.execute(update(log_alarms).where(log_alarms.c.cleared_at.is_(None)).values(
            cleared_at=at, cleared_by=by.strip()[:200], clear_reason=reason.strip()[:MAX_REASON]))
    cleared = [Alarm(a.id, a.raised_at, a.reason, a.position, at, by.strip()[:200],
                     reason.strip()[:MAX_REASON]) for a in active]
    log.warning("integrity alarm cleared by an operator", alarm_ids=[a.id for a in cleared],
                by=by.strip()[:200], reason=reason.strip()[:MAX_REASON])
    return cleared
