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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert, select, tuple_, update

from audit.errors import NotInLog
from audit.merkle import HASH_SIZE, CompactRange, NodeGetter
from audit.records import field_digests
from audit.store import AuditStore, hash_rows, merkle_leaves, merkle_nodes, merkle_state

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
    store = AuditStore.of(source)
    try:
        while True:
            with store.engine.begin() as conn:
                state, added = _append_batch(store, conn, batch)
            if added < batch:
                return state
    finally:
        if store is not source:
            store.close()


def _append_batch(store: AuditStore, conn: Connection, limit: int) -> tuple[TreeState, int]:
    lock_state(conn)
    state = read_state(conn)
    rows = store.events.between(conn, state.last_position, limit=limit)
    if not rows:
        return state, 0
    rows, hashes = hash_rows(rows)
    tree = CompactRange(state.size, list(state.frontier))
    leaves, nodes = [], []
    for row, leaf_hash in zip(rows, hashes):
        created = tree.append(leaf_hash)
        leaves.append({"leaf_index": created[0][1], "position": row[0], "leaf_hash": leaf_hash,
                       "fields": field_digests(row)})
        nodes.extend({"level": level, "idx": idx, "hash": h} for level, idx, h in created[1:])
    conn.execute(insert(merkle_leaves), leaves)
    if nodes:
        conn.execute(insert(merkle_nodes), nodes)
    new = TreeState(tree.size, rows[-1][0], tuple(tree.hashes))
    conn.execute(update(merkle_state).where(merkle_state.c.id == 1).values(
        size=new.size, last_position=new.last_position, frontier=b"".join(new.frontier)))
    return new, len(rows)


def rebuild(source: Any) -> TreeState:
    """Empty the stored tree and append every record again from zero."""
    store = AuditStore.of(source)
    try:
        with store.engine.begin() as conn:
            lock_state(conn)
            conn.execute(delete(merkle_nodes))
            conn.execute(delete(merkle_leaves))
            conn.execute(update(merkle_state).where(merkle_state.c.id == 1).values(
                size=0, last_position=0, frontier=b""))
        return catch_up(store)
    finally:
        if store is not source:
            store.close()


def tree_state(source: Any) -> TreeState:
    store = AuditStore.of(source)
    try:
        with store.engine.connect() as conn:
            return read_state(conn)
    finally:
        if store is not source:
            store.close()


def fetch_nodes(conn: Connection, coords: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored hashes of nodes (level, idx); level 0 is the leaf hash.  Two queries at most."""
    coords = set(coords)
    found: dict[tuple[int, int], bytes] = {}
    leaves = [i for level, i in coords if level == 0]
    if leaves:
        rows = conn.execute(select(merkle_leaves.c.leaf_index, merkle_leaves.c.leaf_hash)
                            .where(merkle_leaves.c.leaf_index.in_(leaves)))
        found.update(((0, i), h) for i, h in rows)
    inner = [c for c in coords if c[0] > 0]
    if inner:
        rows = conn.execute(select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash)
                            .where(tuple_(merkle_nodes.c.level, merkle_nodes.c.idx).in_(inner)))
        found.update(((level, i), h) for level, i, h in rows)
    missing = sorted(coords - found.keys())
    if missing:
        raise NotInLog(f"stored tree node {missing[0]} (level, index): expected a hash, "
                       f"got none ({len(missing)} missing)")
    return found


def with_stored_nodes(conn: Connection, compute: Callable[[NodeGetter], T]) -> T:
    """Run ``compute(get_node)`` on stored nodes, fetched in one batch.

    Which nodes a proof or root needs depends only on indices and sizes, never on hash
    values, so a first dry run records the coordinates and the second run gets them all.
    """
    coords: list[tuple[int, int]] = []

    def plan(level: int, idx: int) -> bytes:
        coords.append((level, idx))
        return bytes(HASH_SIZE)

    compute(plan)
    nodes = fetch_nodes(conn, coords)
    return compute(lambda level, idx: nodes[(level, idx)])


def frontier_coords(size: int) -> list[tuple[int, int]]:
    """(level, idx) of the perfect subtrees that make up leaves [0, size), largest first."""
    coords, start = [], 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            coords.append((level, start >> level))
            start += 1 << level
    return coords


def stored_root(conn: Connection, size: int) -> bytes:
    """Root of the stored tree's first ``size`` leaves, from O(log size) stored nodes."""
    coords = frontier_coords(size)
    nodes = fetch_nodes(conn, coords)
    return CompactRange(size, [nodes[c] for c in coords]).root()


def leaf_index_of(conn: Connection, position: int) -> int:
    row = conn.execute(select(merkle_leaves.c.leaf_index)
                       .where(merkle_leaves.c.position == position)).first()
    if row is None:
        raise NotInLog(f"no leaf for notification id {position} (not recorded, or the tree "
                       "has not caught up)", field="position")
    return row[0]


def position_of_leaf(conn: Connection, leaf_index: int) -> int:
    row = conn.execute(select(merkle_leaves.c.position)
                       .where(merkle_leaves.c.leaf_index == leaf_index)).first()
    if row is None:
        raise NotInLog(f"no leaf {leaf_index} in the stored tree", field="leaf_index")
    return row[0]
