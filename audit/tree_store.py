"""The log's Merkle tree kept in the store, following the events like a projection.

``catch_up`` reads the records after the tracking position (``merkle_state.last_position``)
and appends each one as the next leaf: ``merkle.CompactRange.append`` gives the leaf and
the perfect subtrees it completes (amortised O(1), worst case O(log n) hashes per leaf, no
rescan), and the new leaves, nodes and state are written in one transaction, so a crash
or a concurrent catch-up never leaves a half-appended tree.  The first statement of that
transaction updates the state row, which takes the write lock (SQLite) or the row lock
(PostgreSQL) before anything is read: two catch-ups run one after the other.

Leaf index ≠ notification id: ids may have gaps (PostgreSQL sequences skip on rollback),
so ``merkle_leaves`` maps each leaf to its position.  ``rebuild`` empties the tree and
catches up from zero through the same code path.

No record becomes a leaf before its signatures are checked again from its stored bytes
(``audit.signatures``: each verifies over the event's content with a key its official
held at the time).  A record that fails stops the tree before it — the tree never grows
past it, so no checkpoint signs it — and raises the integrity alarm (``audit.alarm``:
logged, and kept in the store where ``/health`` reads it) naming its notification id,
once per distinct record and reason.  Until the record is dealt with, every catch-up
stops at the same place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, select, update

from audit.alarm import raise_alarm
from audit.errors import NotInLog
from audit.merkle import HASH_SIZE, CompactRange, NodeGetter
from audit.records import field_digests
from audit.signatures import BadSignature, check_new_rows
from audit.store import (
    AuditStore,
    hash_rows,
    log_signed_steps,
    merkle_leaves,
    merkle_nodes,
    merkle_state,
    opened,
)

T = TypeVar("T")
CATCH_UP_BATCH = 50_000


@dataclass(frozen=True)
class TreeState:
    """Leaves [0, size) cover the records up to ``last_position``; ``frontier`` is the compact
    range (roots of the perfect subtrees on the right edge, largest first)."""

    size: int
    last_position: int
    frontier: tuple[bytes, ...]

    @property
    def root(self) -> bytes:
        return CompactRange(self.size, list(self.frontier)).root()


def split_hashes(blob: bytes) -> tuple[bytes, ...]:
    return tuple(blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE))


def read_state(conn: Connection) -> TreeState:
    row = conn.execute(select(merkle_state.c.size, merkle_state.c.last_position,
                              merkle_state.c.frontier).where(merkle_state.c.id == 1)).one()
    return TreeState(row.size, row.last_position, split_hashes(row.frontier))


def lock_state(conn: Connection) -> None:
    """Take the tree's write lock for the rest of the transaction (a no-op update)."""
    conn.execute(update(merkle_state).where(merkle_state.c.id == 1)
                 .values(size=merkle_state.c.size))


def catch_up(source: Any, *, batch: int = CATCH_UP_BATCH) -> TreeState:
    """Append every record after the tracking position; returns the new tree state.

    ``source``: an ``AuditStore``, an ``AuditConfig``, a database URL or the app's settings.
    Each batch of up to ``batch`` records is one transaction (leaves, nodes and state).
    """
    with opened(source) as store:
        while True:
            with store.engine.begin() as conn:
                state, added, bad = _append_batch(store, conn, batch)
            if bad is not None:  # after the commit: the alarm has a transaction of its own
                raise_alarm(store, f"the tree stopped before notification id {bad.position}: "
                                   f"its signatures do not hold ({bad.reason}); it is not "
                                   f"taken into the log", bad.position)
                return state
            if added < batch:
                return state


def _append_batch(store: AuditStore, conn: Connection,
                  limit: int) -> tuple[TreeState, int, BadSignature | None]:
    lock_state(conn)
    state = read_state(conn)
    rows = store.events.between(conn, state.last_position, limit=limit)
    if not rows:
        return state, 0, None
    bad, signed = check_new_rows(store, conn, rows, state.last_position)
    if bad is not None:
        rows = rows[:next(i for i, r in enumerate(rows) if r[0] == bad.position)]
        if not rows:
            return state, 0, bad
    rows, hashes = hash_rows(rows)
    if signed:
        store.insert_rows(conn, "log_signed_steps", ("digest", "position"),
                          [(d, p) for p, d in signed])
    tree = CompactRange(state.size, list(state.frontier))
    leaves, nodes = [], []
    for row, leaf_hash in zip(rows, hashes):
        created = tree.append(leaf_hash)
        leaves.append((created[0][1], row[0], leaf_hash, field_digests(row)))
        nodes += created[1:]
    store.insert_rows(conn, "merkle_leaves", ("leaf_index", "position", "leaf_hash", "fields"),
                      leaves)
    store.insert_rows(conn, "merkle_nodes", ("level", "idx", "hash"), nodes)
    new = TreeState(tree.size, rows[-1][0], tuple(tree.hashes))
    conn.execute(update(merkle_state).where(merkle_state.c.id == 1).values(
        size=new.size, last_position=new.last_position, frontier=b"".join(new.frontier)))
    return new, len(rows), bad


def rebuild(source: Any) -> TreeState:
    """Empty the stored tree and append every record again from zero.

    Checkpoints and their sealed leaves are kept: if the records are not what was signed,
    ``verify_log`` says so and where.
    """
    with opened(source) as store:
        with store.engine.begin() as conn:
            lock_state(conn)
            conn.execute(delete(merkle_nodes))
            conn.execute(delete(merkle_leaves))
            conn.execute(delete(log_signed_steps))
            conn.execute(update(merkle_state).where(merkle_state.c.id == 1).values(
                size=0, last_position=0, frontier=b""))
        return catch_up(store)


def tree_state(source: Any) -> TreeState:
    with opened(source) as store, store.engine.connect() as conn:
        return read_state(conn)


def fetch_nodes(store: AuditStore, conn: Connection,
                coords: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored hashes of nodes (level, idx); level 0 is the leaf hash.  One query.

    Each node is found through the primary key: on SQLite by point lookups joined with
    UNION ALL (SQLite does not use the index for a row-value IN list), on PostgreSQL by a
    join with the unnested coordinates (a long UNION ALL tempts its planner into a
    parallel plan that costs more to start than the lookups themselves).
    """
    coords = sorted(set(coords))
    leaves = [i for level, i in coords if level == 0]
    inner = [c for c in coords if c[0] > 0]
    leaves_sql, nodes = store.table_sql("merkle_leaves"), store.table_sql("merkle_nodes")
    if store.dialect == "sqlite":
        parts = [f"SELECT level, idx, hash FROM {nodes} WHERE level = ? AND idx = ?"] * len(inner)
        params = [v for c in inner for v in c]
        if leaves:
            parts.append(f"SELECT 0, leaf_index, leaf_hash FROM {leaves_sql} "
                         f"WHERE leaf_index IN ({', '.join('?' * len(leaves))})")
            params += leaves
        rows = store.raw(conn, " UNION ALL ".join(parts), params) if parts else []
    else:
        rows = store.raw(conn, f"SELECT 0, leaf_index, leaf_hash FROM {leaves_sql} "
                               f"WHERE leaf_index = ANY(?) UNION ALL SELECT n.level, n.idx, "
                               f"n.hash FROM unnest(?::smallint[], ?::bigint[]) AS k(level, idx) "
                               f"JOIN {nodes} n ON n.level = k.level AND n.idx = k.idx",
                         (leaves, [c[0] for c in inner], [c[1] for c in inner]))
    found = {(level, i): bytes(h) for level, i, h in rows}
    missing = [c for c in coords if c not in found]
    if missing:
        raise NotInLog(f"stored tree node {missing[0]} (level, index): expected a hash, "
                       f"got none ({len(missing)} missing)")
    return found


def with_stored_nodes(store: AuditStore, conn: Connection, compute: Callable[[NodeGetter], T]) -> T:
    """Run ``compute(get_node)`` on stored nodes, fetched in one batch.

    Which nodes a proof or root needs depends only on indices and sizes, never on hash
    values, so a first dry run records the coordinates and the second run gets them all.
    """
    coords: list[tuple[int, int]] = []

    def plan(level: int, idx: int) -> bytes:
        coords.append((level, idx))
        return bytes(HASH_SIZE)

    compute(plan)
    nodes = fetch_nodes(store, conn, coords)
    return compute(lambda level, idx: nodes[(level, idx)])
