"""Scanning pages of the log: records ↔ stored leaves ↔ stored nodes (checks A and B).

A page is an aligned run of ``PAGE`` leaves, a perfect subtree.  The fast path of a page
(``PageReader``) reads the stored leaves and the records and passes if every record sits
exactly at its leaf's stored position, no other record lies between them, and each record's
leaf hash (recomputed here, from the stored bytes) is its stored leaf hash, leaf by leaf:

- SQLite, in-process, where a Python object per value is the cost: the record at each leaf's
  stored position in one JOIN with the stored leaf hash (``EventRows.by_leaf``), the count
  of records in the page's position range, and ``records.leaf_hashes``;
- PostgreSQL, where a JOIN probes an index per row: two range scans, the stored leaves and
  the records that follow the previous page's last position, each record as its leaf input
  built by the server (``EventRows.leaf_inputs``, held to ``records.encode_record`` byte
  for byte by the tests), hashed here by ``hashlib``, one call per record.  The next page
  is read on a second connection in a thread while this one hashes: the server's work and
  the wait for it release the GIL.

Then the interior nodes are recomputed a level at a time and compared with the stored ones,
one query per page returning each level as one blob with the number of rows whose hash is
32 bytes: primary keys allow one row per index, so with every row 32 bytes, equal blobs
mean equal nodes one by one (a concatenation alone would let a hash split across two rows
pass).  A page that does not pass is walked record by record (``Mismatch``), a level that
does not, node by node: the fast path only decides that nothing needs locating.  A span of
pages runs in a worker process or in-line and returns its page roots and the in-page
frontiers at the checkpoint sizes it holds, from which ``audit.verify`` builds every root.

Hashing bounds the rate: one SHA-256 call per record and one per interior node (about one
per record), where the raw rate is one call per record, and a ``hashlib`` call costs
mostly its fixed overhead at these sizes.  The node hashes run as C-level ``map`` chains
(a copy of the absorbed 0x01 prefix, ``update``, ``digest``), no bytecode per node.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection

from audit.findings import Finding
from audit.merkle import HASH_SIZE
from audit.records import field_digests, leaf_hashes
from audit.store import AuditConfig, AuditStore, hash_rows, raw_rows

PAGE = 4096
MAX_MISMATCHES = 1000
_RECORD = itemgetter(0, 1, 2, 3, 4)  # of EventRows.by_leaf rows
_STORED_HASH = itemgetter(5)
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_SHA256 = hashlib.sha256
_HASH = type(_SHA256())
_DIGEST = _HASH.digest
_NODE_PREFIX = _SHA256(b"\x01")
_PAIR = struct.Struct(f"{2 * HASH_SIZE}s")
_BAD_ROW = (TypeError, ValueError, AttributeError, struct.error)


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


def subtree_levels(leaves: bytes) -> list[bytes]:
    """All complete nodes over an aligned run of leaf hashes, level by level, each level as
    one blob of 32-byte hashes (``leaves`` itself first).

    ``hash_children`` with the 0x01 prefix absorbed once and copied, every step a C-level
    ``map``: the same hashes, without building each 65-byte input or running bytecode per
    node.
    """
    levels = [leaves]
    copy, update, digest = _HASH.copy, _HASH.update, _HASH.digest
    while len(leaves) >= 2 * HASH_SIZE:
        pairs = len(leaves) // (2 * HASH_SIZE)
        hashes = list(map(copy, repeat(_NODE_PREFIX, pairs)))
        body = memoryview(leaves)[:pairs * 2 * HASH_SIZE]
        deque(map(update, hashes, map(_FIRST, _PAIR.iter_unpack(body))), 0)
        leaves = b"".join(map(digest, hashes))
        levels.append(leaves)
    return levels


def _list_levels(leaves: list[bytes]) -> list[Any]:
    """``subtree_levels`` over stored leaf hashes as read (the slow path): level 0 stays the
    list of stored values, whatever their length, so the frontier takes them as stored."""
    return [leaves, *subtree_levels(b"".join(leaves))[1:]] if len(leaves) > 1 else [leaves]


def _node(levels: list[Any], level: int, index: int) -> bytes:
    nodes = levels[level]
    if isinstance(nodes, list):
        return nodes[index]
    return nodes[index * HASH_SIZE:(index + 1) * HASH_SIZE]


class PageReader:
    """What the fast path reads of a page and how it decides, per dialect (see the module
    docstring)."""

    def __init__(self, store: AuditStore):
        self.store = store
        self.sqlite = store.dialect == "sqlite"
        self.leaves = store.table_sql("merkle_leaves")
        self.nodes = store.table_sql("merkle_nodes")
        self.leaves_sql = (f"SELECT position, leaf_hash FROM {self.leaves} WHERE leaf_index >= "
                           f"%s AND leaf_index < %s ORDER BY leaf_index")
        self._nodes_sql: dict[int, str] = {}

    def fetch(self, conn: Connection, start: int, stop: int, after: int) -> PageData:
        """Everything the fast path needs for leaves [start, stop), the records read from
        position ``after`` on."""
        data = PageData(after, self.node_levels(conn, start, stop))
        if self.sqlite:
            data.rows = self.store.events.by_leaf(conn, self.leaves, start, stop)
            if len(data.rows) == stop - start:
                data.count = self.store.events.count(conn, after, data.rows[-1][0])
        else:
            data.rows = raw_rows(conn, "postgresql", self.leaves_sql, (start, stop))
            data.records = self.store.events.leaf_inputs(conn, after, stop - start)
        return data

    def refetch_records(self, conn: Connection, data: PageData, start: int, stop: int,
                        after: int) -> None:
        """The records from ``after`` on, where the prefetched ones began elsewhere."""
        if data.after == after:
            return
        data.after = after
        if self.sqlite:
            if len(data.rows) == stop - start:
                data.count = self.store.events.count(conn, after, data.rows[-1][0])
        else:
            data.records = self.store.events.leaf_inputs(conn, after, stop - start)

    def leaves_if_all_match(self, data: PageData, n: int) -> tuple[list[bytes], int] | None:
        """(the page's stored leaf hashes, the last leaf's position) if every record sits at
        its leaf's position, no other record lies between them, and each hashes to its
        stored leaf; else None (the slow path says where and how)."""
        rows = data.rows
        if len(rows) != n:
            return None
        stored = list(map(_STORED_HASH if self.sqlite else _SECOND, rows))
        if self.sqlite:
            if data.count != n:
                return None
            try:
                hashes = leaf_hashes(map(_RECORD, rows))
            except _BAD_ROW:
                return None  # a NULL (no record) or mistyped field
            return (stored, rows[-1][0]) if hashes == stored else None
        records = data.records
        positions = list(map(_FIRST, rows))
        if len(records) != n or list(map(_FIRST, records)) != positions or positions[0] < 0:
            return None
        try:
            hashes = list(map(_DIGEST, map(_SHA256, map(_SECOND, records))))
        except _BAD_ROW:
            return None  # a NULL field makes the whole input NULL
        return (stored, positions[-1]) if hashes == stored else None

    def node_levels(self, conn: Connection, start: int, stop: int
                    ) -> dict[int, tuple[bytes, int]]:
        """Per level 1..: (stored hashes of the page's complete nodes as one blob, how many
        rows hold a 32-byte hash)."""
        levels = (stop - start).bit_length() - 1
        if levels < 1:
            return {}
        sql = self._nodes_sql.get(levels) or self._node_sql(levels)
        params = [v for level in range(1, levels + 1)
                  for v in (start >> level, (start >> level) + ((stop - start) >> level))]
        rows = raw_rows(conn, self.store.dialect, sql, params)
        return {level: (bytes(blob or b""), good or 0) for level, blob, good in rows}

    def _node_sql(self, levels: int) -> str:
        if self.sqlite:
            # length() of a blob is its bytes, of a text its characters (<= its bytes):
            # with every row's length 32, equal blobs mean every row is 32 bytes.
            part = ("SELECT {level}, CAST(group_concat(hash, '') AS BLOB), SUM(length(hash) = "
                    f"{HASH_SIZE}) FROM (SELECT hash FROM {self.nodes} "
                    "WHERE level = {level} AND idx >= ? AND idx < ? ORDER BY idx)")
        else:
            part = ("SELECT {level}, string_agg(hash, ''::bytea ORDER BY idx), count(*) FILTER "
                    f"(WHERE octet_length(hash) = {HASH_SIZE}) FROM {self.nodes} "
                    "WHERE level = {level} AND idx >= %s AND idx < %s")
        sql = " UNION ALL ".join(part.format(level=level) for level in range(1, levels + 1))
        self._nodes_sql[levels] = sql
        return sql


@dataclass
class PageData:
    """One page's reads: the records' starting point, the stored node levels, and per
    dialect the JOIN rows and record count, or the leaf rows and the records."""

    after: int
    nodes: dict[int, tuple[bytes, int]]
    rows: list[tuple] = field(default_factory=list)
    count: int | None = None
    records: list[tuple] = field(default_factory=list)


class _Prefetch:
    """Reads the next page on a connection of its own in a thread while this one hashes.

    Used on PostgreSQL, where the server's work and the wait for it release the GIL; not
    on SQLite, whose row-by-row steps would each wait for the GIL."""

    def __init__(self, store: AuditStore, reader: PageReader):
        self.store, self.reader = store, reader
        self.pool = ThreadPoolExecutor(1)
        self.conn: Connection | None = None

    def fetch(self, start: int, stop: int, after: int) -> Future:
        return self.pool.submit(self._fetch, start, stop, after)

    def _fetch(self, start: int, stop: int, after: int) -> PageData:
        if self.conn is None:
            self.conn = self.store.engine.connect()
        return self.reader.fetch(self.conn, start, stop, after)

    def close(self) -> None:
        if self.conn is not None:
            self.pool.submit(self.conn.close).result()
        self.pool.shutdown()


class Span:
    """Scans consecutive pages on one connection, carrying the previous page's last position."""

    def __init__(self, store: AuditStore, conn: Connection, page: int):
        self.store, self.conn, self.page = store, conn, page
        self.reader = PageReader(store)
        self.leaves = store.table_sql("merkle_leaves")
        nodes = store.table_sql("merkle_nodes")
        self.leaves_sql = (f"SELECT leaf_index, position, leaf_hash FROM {self.leaves} "
                           f"WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index")
        self.fields_sql = (f"SELECT leaf_index, fields FROM {self.leaves} "
                           f"WHERE leaf_index >= ? AND leaf_index < ?")
        self.nodes_sql = (f"SELECT idx, hash FROM {nodes} "
                          f"WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx")
        self.report = SpanReport()

    def run(self, lo: int, hi: int, cuts: Sequence[int]) -> SpanReport:
        prev = -(2**63)
        if lo > 0:
            rows = self.store.raw(self.conn, self.leaves_sql, (lo - 1, lo))
            prev = rows[0][1] if rows else prev
        pages = [(start, min(start + self.page, hi)) for start in range(lo, hi, self.page)]
        prefetch = _Prefetch(self.store, self.reader) \
            if len(pages) > 1 and not self.reader.sqlite else None
        try:
            ahead = prefetch.fetch(*pages[0], prev) if prefetch else None
            for k, (start, stop) in enumerate(pages):
                if ahead is not None:
                    data = ahead.result()
                    self.reader.refetch_records(self.conn, data, start, stop, prev)
                    # the next page's records follow this page's last leaf, if it holds
                    last = data.rows[-1][0] if data.rows else prev
                    ahead = prefetch.fetch(*pages[k + 1], last) if k + 1 < len(pages) else None
                else:
                    data = self.reader.fetch(self.conn, start, stop, prev)
                prev = self._page(start, stop, prev, [s for s in cuts if start < s <= stop],
                                  data)
        finally:
            if prefetch is not None:
                prefetch.close()
        self.report.last_position = prev
        return self.report

    def _page(self, start: int, stop: int, prev: int, cuts: list[int], data: PageData) -> int:
        """Check leaves [start, stop): fast path if every record from ``prev`` on sits at its
        leaf's position and hashes to it; else the slow path says where and how not."""
        r = self.report
        levels: list[Any]
        fast = self.reader.leaves_if_all_match(data, stop - start)
        if fast is not None:
            hashes, last = fast
            r.records += stop - start
            levels = subtree_levels(b"".join(hashes))
        else:
            hashes, last = self._slow_page(start, stop, prev)
            levels = _list_levels(hashes)
        self._check_nodes(start, levels, data.nodes)
        if stop - start == self.page:
            r.page_roots.append(_node(levels, len(levels) - 1, 0))
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

    def _check_nodes(self, start: int, levels: list[Any],
                     stored: dict[int, tuple[bytes, int]]) -> None:
        """Each level's stored nodes against the recomputed ones, a level as one blob (with
        every row 32 bytes); node by node (the first that differs) only where that fails."""
        for level in range(1, len(levels)):
            expected = levels[level]
            count = len(expected) // HASH_SIZE
            if stored.get(level) == (expected, count):
                continue
            first = start >> level
            got = dict(self.store.raw(self.conn, self.nodes_sql, (level, first, first + count)))
            for k in range(count):
                h = _node(levels, level, k)
                if got.get(first + k) != h:
                    self.report.tree.append(node_finding(level, first + k, h,
                                                          got.get(first + k)))
                    return


def node_finding(level: int, idx: int, expected: bytes, got: bytes | None) -> Finding:
    return Finding("tree", f"stored node (level {level}, index {idx}): expected "
                   f"{expected.hex()} from the stored leaves, got "
                   f"{got.hex() if got else 'no row'}", leaf_index=idx << level)


def _in_page_frontier(levels: list[Any], offset: int) -> list[bytes]:
    """Hashes of the perfect subtrees that make up the first ``offset`` leaves of the page."""
    out, at = [], 0
    for level in reversed(range(offset.bit_length())):
        if offset >> level & 1:
            out.append(_node(levels, level, at >> level))
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
