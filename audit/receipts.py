"""Receipts: what a write is answered with, so that its client can later prove the events
it stored were in the log (format: ``audit.proofs``, ``zhuisu-receipt/v1``).

``receipt(store, positions, checkpoint)`` gives, for the notification ids a write stored,
their leaf indexes and — under ``checkpoint``, a signed checkpoint that covers them — each
record with its inclusion proof (``log.prove_inclusion``, so each record is held against
its stored leaf first, and the integrity alarm refuses).  Without a covering checkpoint it
is a *pending* receipt: the leaf indexes and where to fetch each proof later.  Which
checkpoint covers them, and how soon, is the server's batching (``runtime.followers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit import log
from audit.proofs import RECEIPT
from audit.store import AuditStore

FETCH = "/log/proofs/inclusion?position={position}"


def leaf_indexes(store: AuditStore, positions: Sequence[int]) -> dict[int, int]:
    """{notification id: leaf index} for those of ``positions`` already in the tree."""
    if not positions:
        return {}
    marks = ", ".join("?" * len(positions))
    with store.engine.connect() as conn:
        rows = store.raw(conn, f"SELECT position, leaf_index FROM "
                               f"{store.table_sql('merkle_leaves')} WHERE position IN ({marks})",
                         list(positions))
    return {int(p): int(i) for p, i in rows}


def receipt(store: AuditStore, positions: Sequence[int],
            checkpoint: log.CheckpointRecord | None,
            indexes: dict[int, int] | None = None) -> dict[str, Any]:
    """The receipt of the events at ``positions``: complete under ``checkpoint`` (which
    must cover their leaves), pending without it."""
    positions = sorted(set(positions))
    indexes = leaf_indexes(store, positions) if indexes is None else indexes
    if checkpoint is None or any(p not in indexes for p in positions) or \
            max(indexes[p] for p in positions) >= checkpoint.checkpoint.size:
        return {"type": RECEIPT, "checkpoint": None, "checkpoint_id": None,
                "entries": [{"position": p, "leaf_index": indexes.get(p)} for p in positions],
                "fetch": [FETCH.format(position=p) for p in positions]}
    entries = []
    for p in positions:
        bundle = log.prove_inclusion(store, position=p, checkpoint_id=checkpoint.id)
        entries.append({"position": p, "leaf_index": bundle["leaf_index"],
                        "record": bundle["record"], "proof": bundle["proof"]})
    return {"type": RECEIPT, "checkpoint": checkpoint.note, "checkpoint_id": checkpoint.id,
            "entries": entries}


def last_position(store: AuditStore, size: int) -> int:
    """The notification id of leaf ``size - 1``: a tree of ``size`` leaves covers every
    event stored at or before it (0 for an empty tree)."""
    if size <= 0:
        return 0
    with store.engine.connect() as conn:
        rows = store.raw(conn, f"SELECT position FROM {store.table_sql('merkle_leaves')} "
                               f"WHERE leaf_index = ?", (size - 1,))
    return int(rows[0][0]) if rows else 0
