"""Scanning pages of the log: records ↔ stored leaves ↔ stored nodes (checks A and B).

A page is an aligned run of ``PAGE`` leaves, a perfect subtree.  For each page: the record
at each leaf's stored position is read in one JOIN and hashed, the events in the page's
position range are counted, and the interior nodes are recomputed and compared with the
stored ones, a level at a time as one blob.  A page that matches costs list comparisons;
one that does not is walked record by record (``Mismatch``).  A span of pages runs in a
worker process or in-line and returns its page roots and the in-page frontiers at the
checkpoint sizes it holds, from which ``audit.verify`` builds every root.
"""

from __future__ import annotations

import hashlib
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from audit.findings import Finding
from audit.merkle import HASH_SIZE
from audit.records import field_digests, leaf_hashes
from audit.store import AuditConfig, AuditStore, hash_rows

PAGE = 4096
MAX_MISMATCHES = 1000
_RECORD = operator.itemgetter(0, 1, 2, 3, 4)  # of EventRows.by_leaf rows
_STORED_HASH = operator.itemgetter(5)


@dataclass
class Mismatch:
    """A position where records and stored leaves disagree, with both sides' field digests."""

    position: int
    leaf_index: int | None
    record: bytes | None  # None: no record at this tree position
    stored: bytes | None  # None: no leaf for this record


@dataclass
class SpanReport:
    """What a span of pages found: the roots of its full pages, the in-page frontier at each
    checkpoint size inside it, the first record mismatches with counts of each kind, the
    records read, the last leaf's position, and findings about the stored tree."""

    page_roots: list[bytes] = field(default_factory=list)
    cuts: dict[int, list[bytes]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    missing: int = 0
    extra: int = 0
    changed: int = 0
    records: int = 0
    last_position: int | None = None
    tree: list[Finding] = field(default_factory=list)


def subtree_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """All complete nodes over ``leaves`` (an aligned run), level by level.

    ``hash_children`` with the 0x01 prefix absorbed once and copied: the same hashes,
    without building each 65-byte input.
    """
    levels, cur = [leaves], leaves
    prefix = hashlib.sha256(b"\x01")
    while len(cur) > 1:
        pairs = memoryview(b"".join(cur))
        nxt = []
        for i in range(0, len(cur) // 2 * 2 * HASH_SIZE, 2 * HASH_SIZE):
            h = prefix.copy()
            h.update(pairs[i:i + 2 * HASH_SIZE])
            nxt.append(h.digest())
        levels.append(nxt)
        cur = nxt
    return levels


class Span:
    """Scans consecutive pages on one connection, carrying the previous page's last position."""

    def __init__(self, store: AuditStore, conn: Connection, page: int):
        self.store, self.conn, self.page = store, conn, page
        self.leaves = store.table_sql("merkle_leaves")
        nodes = store.table_sql("merkle_nodes")
        self.leaves_sql = (f"SELECT leaf_index, position, leaf_hash FROM {self.leaves} "
                           f"WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index")
        self.fields_sql = (f"SELECT leaf_index, fields FROM {self.leaves} "
                           f"WHERE leaf_index >= ? AND leaf_index < ?")
        self.nodes_sql = (f"SELECT idx, hash FROM {nodes} "
                          f"WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx")
        # Stored hashes of a run of nodes as one blob: no Python object per node.
        if store.dialect == "sqlite":
            self.level_sql = (f"SELECT CAST(group_concat(hash, '') AS BLOB) FROM (SELECT hash "
                              f"FROM {nodes} WHERE level = ? AND idx >= ? AND idx < ? "
                              f"ORDER BY idx)")
        else:
            self.level_sql = (f"SELECT string_agg(hash, ''::bytea ORDER BY idx) FROM {nodes} "
                              f"WHERE level = ? AND idx >= ? AND idx < ?")
        self.report = SpanReport()

    def run(self, lo: int, hi: int, cuts: Sequence[int]) -> SpanReport:
        prev = -(2**63)
        if lo > 0:
            rows = self.store.raw(self.conn, self.leaves_sql, (lo - 1, lo))
            prev = rows[0][1] if rows else prev
        for start in range(lo, hi, self.page):
            stop = min(start + self.page, hi)
            prev = self._page(start, stop, prev, [s for s in cuts if start < s <= stop])
        self.report.last_position = prev
        return self.report

    def _page(self, start: int, stop: int, prev: int, cuts: list[int]) -> int:
        """Check leaves [start, stop): fast path if every leaf's record hashes to it.

        The record of each leaf is read at the leaf's stored position (so the position
        column is checked too), and the events in the page's position range are counted
        (so a record outside the tree shows).
        """
        r, store, conn = self.report, self.store, self.conn
        rows = store.events.by_leaf(conn, self.leaves, start, stop)
        last = rows[-1][0] if rows else prev
        hashes: list[bytes] = []
        if len(rows) == stop - start and store.events.count(conn, prev, last) == len(rows):
            try:
                hashes = leaf_hashes(map(_RECORD, rows))
            except (TypeError, ValueError, AttributeError, struct.error):
                pass  # a NULL (no record) or mistyped field: the slow path says which
        if hashes and hashes == list(map(_STORED_HASH, rows)):
            r.records += len(rows)
        else:
            hashes, last = self._slow_page(start, stop, prev)
        levels = subtree_levels(hashes)
        self._check_nodes(start, levels)
        if stop - start == self.page:
            r.page_roots.append(levels[-1][0])
        for s in cuts:
            if s % self.page:
                r.cuts[s] = _in_page_frontier(levels, s - start)
        return last

    def _slow_page(self, start: int, stop: int, prev: int) -> tuple[list[bytes], int]:
        """Walk stored leaves and records in position order; returns the stored hashes."""
        stored = self.store.raw(self.conn, self.leaves_sql, (start, stop))
        if len(stored) != stop - start:
            stored = self._fill_missing_leaves(stored, start, stop)
        last = stored[-1][1]
        records = self.store.events.between(self.conn, prev, last)
        self.report.records += len(records)
        self._merge(stored, records)
        return [s[2] for s in stored], last

    def _fill_missing_leaves(self, stored: list[tuple], start: int, stop: int) -> list[tuple]:
        have = {s[0]: s for s in stored}
        missing = [i for i in range(start, stop) if i not in have]
        self.report.tree.append(Finding(
            "tree", f"stored tree: expected leaf rows {start}..{stop - 1}, got none for "
            f"{len(missing)} of them (first {missing[0]})", leaf_index=missing[0]))
        prev = have.get(missing[0] - 1, (0, -(2**63), b""))[1]
        return [have.get(i) or (i, prev, bytes(HASH_SIZE)) for i in range(start, stop)]

    def _record(self, m: Mismatch) -> None:
        if len(self.report.mismatches) < MAX_MISMATCHES:
            self.report.mismatches.append(m)

    def _merge(self, stored: list[tuple], records: list[tuple]) -> None:
        records, recomputed = hash_rows(records)
        by_position = {rec[0]: (rec, h) for rec, h in zip(records, recomputed)}
        leaves = {s[1]: s for s in stored}
        fields = dict(self.store.raw(self.conn, self.fields_sql,
                                     (stored[0][0], stored[-1][0] + 1)))
        for position in sorted(by_position.keys() | leaves.keys()):
            rec_h = by_position.get(position)
            leaf = leaves.get(position)
            if leaf is None:
                self.report.extra += 1
                self._record(Mismatch(position, None, field_digests(rec_h[0]), None))
            elif rec_h is None:
                self.report.missing += 1
                self._record(Mismatch(position, leaf[0], None, fields.get(leaf[0])))
            elif rec_h[1] != leaf[2]:
                self.report.changed += 1
                self._record(Mismatch(position, leaf[0], field_digests(rec_h[0]),
                                      fields.get(leaf[0])))

    def _check_nodes(self, start: int, levels: list[list[bytes]]) -> None:
        for level in range(1, len(levels)):
            expected = levels[level]
            first = start >> level
            bounds = (level, first, first + len(expected))
            if self.store.raw(self.conn, self.level_sql, bounds)[0][0] == b"".join(expected):
                continue
            got = dict(self.store.raw(self.conn, self.nodes_sql, bounds))
            for k, h in enumerate(expected):
                if got.get(first + k) != h:
                    self.report.tree.append(node_finding(level, first + k, h,
                                                          got.get(first + k)))
                    return


def node_finding(level: int, idx: int, expected: bytes, got: bytes | None) -> Finding:
    return Finding("tree", f"stored node (level {level}, index {idx}): expected "
                   f"{expected.hex()} from the stored leaves, got "
                   f"{got.hex() if got else 'no row'}", leaf_index=idx << level)


def _in_page_frontier(levels: list[list[bytes]], offset: int) -> list[bytes]:
    """Hashes of the perfect subtrees that make up the first ``offset`` leaves of the page."""
    out, at = [], 0
    for level in reversed(range(offset.bit_length())):
        if offset >> level & 1:
            out.append(levels[level][at >> level])
            at += 1 << level
    return out


def scan_span(config: AuditConfig, lo: int, hi: int, page: int,
              cuts: Sequence[int]) -> SpanReport:
    """Scan leaves [lo, hi) on a connection of its own (the worker process entry point)."""
    store = AuditStore(config, create=False)
    try:
        with store.engine.connect() as conn:
            return Span(store, conn, page).run(lo, hi, cuts)
    finally:
        store.close()
