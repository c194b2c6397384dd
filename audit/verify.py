"""Full verification: recompute the log from the stored records and hold it against the
stored tree and every signed checkpoint (``zhuisu verify``).

Three comparisons, each over the whole log:

A. records ↔ stored leaves: every record up to the tree's tracking position must be the
   leaf stored for its position (same position set, same leaf hash);
B. stored tree ↔ itself: every stored interior node, the frontier and the tracking state
   must be what the stored leaves hash to;
C. stored tree ↔ checkpoints: every checkpoint must carry a valid signature by a log key
   valid at its time, and its root must be the root of the first ``size`` leaves.

A and B make the stored tree stand for the records; C makes the signed checkpoints stand
for the tree.  Work is split into pages of ``PAGE`` leaves (aligned perfect subtrees): a
page whose positions and hashes match is cleared with two list comparisons, and only a
page that differs is walked record by record.  Pages may be spread over worker processes.

The first finding (by leaf index) says where and what:

- ``changed``: the record at a tree position differs from its leaf (``fields`` names the
  fields, from the field digests kept beside each leaf);
- ``deleted``: a tree position has no record (or every later record moved up one);
- ``inserted``: a record not in the tree sits between tree positions (or every later
  record moved down one);
- ``swapped`` / ``reordered``: the record at a position is another position's leaf;
- ``truncated``: every leaf from here on has lost its record, or a checkpoint signed a
  longer log than is stored;
- ``rewritten``: records and tree agree but not with an earlier signed checkpoint; located
  at the first leaf that differs from the leaf hashes that checkpoint sealed (``audit.log``),
  or, if the seal is gone too, to the leaves between the last matching and the first
  differing checkpoint;
- ``tree``: the stored tree differs from itself (a node, leaf row or state was edited);
- ``checkpoint``: a checkpoint's signature, key or stored columns do not hold.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import operator
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection

from audit.checkpoints import open_note, parse_checkpoint, verify_rotation
from audit.errors import AuditError
from audit.logkey import LogKeyRecord, known_keys
from audit.merkle import EMPTY_ROOT, HASH_SIZE, CompactRange, hash_children
from audit.records import differing_fields, field_digests, leaf_hashes
from audit.store import AuditConfig, AuditStore, hash_rows, opened
from audit.tree_store import read_state, split_hashes

PAGE = 4096
_RECORD = operator.itemgetter(0, 1, 2, 3, 4)  # of EventRows.by_leaf rows
_STORED_HASH = operator.itemgetter(5)
MAX_MISMATCHES = 1000
KINDS = ("changed", "deleted", "inserted", "swapped", "reordered", "truncated", "rewritten",
         "tree", "checkpoint")


@dataclass(frozen=True)
class Finding:
    """One thing that does not hold, located by leaf index and notification id if it can be."""

    kind: str
    message: str
    leaf_index: int | None = None
    position: int | None = None
    fields: tuple[str, ...] = ()
    other_position: int | None = None
    checkpoint_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class VerificationResult:
    """OK, or the findings with the first (lowest leaf index) first."""

    tree_size: int
    records: int
    checkpoints: int
    pending: int
    findings: tuple[Finding, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def first_bad_position(self) -> int | None:
        return self.first.position if self.first else None

    @property
    def kind(self) -> str | None:
        return self.first.kind if self.first else None

    @property
    def message(self) -> str:
        if self.ok:
            return (f"OK: {self.records} records, {self.tree_size} leaves and "
                    f"{self.checkpoints} checkpoints verified ({self.pending} records not yet "
                    f"in the tree)")
        where = f" at leaf {self.first.leaf_index}" if self.first.leaf_index is not None else ""
        return f"{self.first.kind}{where}: {self.first.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "tree_size": self.tree_size,
                "records": self.records, "checkpoints": self.checkpoints,
                "pending": self.pending, "seconds": round(self.seconds, 3),
                "findings": [f.to_dict() for f in self.findings]}


# one span of pages (runs in a worker process or in-line) --------------------------------
@dataclass
class Mismatch:
    """A position where records and stored leaves disagree, with both sides' field digests."""

    position: int
    leaf_index: int | None
    record: bytes | None  # None: no record at this tree position
    stored: bytes | None  # None: no leaf for this record


@dataclass
class SpanReport:
    page_roots: list[bytes] = field(default_factory=list)
    cuts: dict[int, list[bytes]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    missing: int = 0
    extra: int = 0
    changed: int = 0
    records: int = 0
    last_position: int | None = None
    tree: list[Finding] = field(default_factory=list)


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
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


class _Span:
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
        levels = _levels(hashes)
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
                    self.report.tree.append(_node_finding(level, first + k, h,
                                                          got.get(first + k)))
                    return


def _node_finding(level: int, idx: int, expected: bytes, got: bytes | None) -> Finding:
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


def _fold(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = hash_children(h, root)
    return root


def _verify_span(config: AuditConfig, lo: int, hi: int, page: int,
                 cuts: Sequence[int]) -> SpanReport:
    store = AuditStore(config, create=False)
    try:
        with store.engine.connect() as conn:
            return _Span(store, conn, page).run(lo, hi, cuts)
    finally:
        store.close()


# the whole log --------------------------------------------------------------------------
def verify_log(source: Any, *, workers: int = 1, page: int = PAGE) -> VerificationResult:
    """Verify everything (see the module docstring); read-only, never catches up first.

    ``workers`` > 1 spreads the pages over that many processes (each with its own
    connection); the result is the same.
    """
    if page < 2 or page & (page - 1):
        raise ValueError(f"page: expected a power of two >= 2, got {page}")
    began = time.perf_counter()
    with opened(source) as store:
        with store.engine.connect() as conn:
            state = read_state(conn)
            keys = known_keys(conn)
            checkpoints = store.raw(conn, f"SELECT id, kind, origin, tree_size, root_hash, time, "
                                          f"note FROM {store.table_sql('log_checkpoints')} "
                                          f"ORDER BY id")
        signed = _check_checkpoints(checkpoints, keys)
        cut_sizes = sorted({s for s, _, _ in signed if s <= state.size} | {state.size})
        reports = _run_spans(store, state.size, page, cut_sizes, workers)
        findings = [f for _, _, f in signed if f is not None]
        with store.engine.connect() as conn:
            roots = _combine(store, conn, reports, page, cut_sizes, state, findings)
            findings += _records_finding(reports, state, lambda p: _leaf_after(store, conn, p))
            findings += _against_checkpoints(store, conn, state, roots,
                                             [(s, c) for s, c, _ in signed if c is not None])
            pending = store.events.count(conn, state.last_position)
    findings.sort(key=lambda f: (f.leaf_index if f.leaf_index is not None else 2**63,
                                 KINDS.index(f.kind)))
    return VerificationResult(state.size, sum(r.records for r in reports), len(checkpoints),
                              pending, tuple(findings), time.perf_counter() - began)


def _run_spans(store: AuditStore, size: int, page: int, cuts: list[int],
               workers: int) -> list[SpanReport]:
    pages = -(-size // page)
    n = max(1, min(workers, pages))
    bounds = [min(size, (pages * k // n) * page) for k in range(n + 1)]
    spans = [(bounds[k], bounds[k + 1]) for k in range(n) if bounds[k] < bounds[k + 1]]

    def span_cuts(lo: int, hi: int) -> list[int]:
        return [s for s in cuts if lo < s <= hi]

    if len(spans) <= 1:
        with store.engine.connect() as conn:
            return [_Span(store, conn, page).run(lo, hi, span_cuts(lo, hi)) for lo, hi in spans]
    store.engine.dispose()  # no pooled connection may be shared with a forked worker
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(len(spans), mp_context=context) as pool:
        futures = [pool.submit(_verify_span, store.config, lo, hi, page, span_cuts(lo, hi))
                   for lo, hi in spans]
        return [f.result() for f in futures]


def _combine(store: AuditStore, conn: Connection, reports: list[SpanReport], page: int,
             cut_sizes: list[int], state: Any, findings: list[Finding]) -> dict[int, bytes]:
    """Roots at every cut size; checks nodes above page level and the stored state."""
    k = page.bit_length() - 1
    cuts = {s: h for r in reports for s, h in r.cuts.items()}
    pages = CompactRange()
    above: list[tuple[int, int, bytes]] = []
    roots: dict[int, bytes] = {}
    upcoming = iter(cut_sizes)
    cut = next(upcoming, None)

    def frontier_at(size: int) -> list[bytes]:  # pages.size full pages lie below size
        return pages.hashes + cuts.get(size, [])

    for root in (h for r in reports for h in r.page_roots):
        while cut is not None and cut < (pages.size + 1) * page:
            roots[cut] = _fold(frontier_at(cut))
            cut = next(upcoming, None)
        above += [(k + level, idx, h) for level, idx, h in pages.append(root)[1:]]
    while cut is not None:
        roots[cut] = _fold(frontier_at(cut))
        cut = next(upcoming, None)
    frontier = frontier_at(state.size)
    for r in reports:
        findings.extend(r.tree)
    findings.extend(_check_above(store, conn, above))
    stored_frontier = tuple(state.frontier)
    if tuple(frontier) != stored_frontier:
        findings.append(Finding("tree", f"stored frontier of {state.size} leaves: expected "
                                f"{[h.hex()[:16] for h in frontier]}, got "
                                f"{[h.hex()[:16] for h in stored_frontier]}",
                                leaf_index=max(state.size - 1, 0)))
    last = reports[-1].last_position if reports else 0
    if state.size and last != state.last_position:
        findings.append(Finding("tree", f"tracking position: expected {last} (the last leaf's), "
                                f"got {state.last_position}", leaf_index=state.size - 1))
    extra = store.raw(conn, f"SELECT COUNT(*), MIN(leaf_index) FROM "
                            f"{store.table_sql('merkle_leaves')} WHERE leaf_index >= ?",
                      (state.size,))[0]
    if extra[0]:
        findings.append(Finding("tree", f"stored tree of {state.size} leaves: expected no leaf "
                                f"rows beyond, got {extra[0]}", leaf_index=extra[1]))
    return roots


def _check_above(store: AuditStore, conn: Connection,
                 nodes: list[tuple[int, int, bytes]]) -> list[Finding]:
    sql = f"SELECT hash FROM {store.table_sql('merkle_nodes')} WHERE level = ? AND idx = ?"
    for level, idx, h in nodes:
        rows = store.raw(conn, sql, (level, idx))
        got = rows[0][0] if rows else None
        if got != h:
            return [_node_finding(level, idx, h, got)]
    return []


# A: records against the stored leaves ---------------------------------------------------
def _records_finding(reports: list[SpanReport], state: Any,
                     leaf_after: Callable[[int], int | None]) -> list[Finding]:
    mismatches = sorted((m for r in reports for m in r.mismatches), key=lambda m: m.position)
    if not mismatches:
        return []
    missing = sum(r.missing for r in reports)
    extra = sum(r.extra for r in reports)
    changed = sum(r.changed for r in reports)
    total = missing + extra + changed
    m0 = mismatches[0]
    also = f" ({total} positions differ in all)" if total > 1 else ""
    if m0.record is None:
        if extra == changed == 0 and missing == state.size - m0.leaf_index:
            return [Finding("truncated", f"the records of leaves {m0.leaf_index}..{state.size - 1}"
                            f" (notification ids from {m0.position}) are missing: expected "
                            f"{state.size} records, got {m0.leaf_index}",
                            leaf_index=m0.leaf_index, position=m0.position)]
        return [Finding("deleted", f"notification id {m0.position} (leaf {m0.leaf_index}): "
                        f"expected its record, got none{also}",
                        leaf_index=m0.leaf_index, position=m0.position)]
    if m0.stored is None:
        return [Finding("inserted", f"notification id {m0.position}: a record that is not in "
                        f"the tree, between tree positions{also}",
                        leaf_index=leaf_after(m0.position), position=m0.position)]
    later = mismatches[1:]
    for m in later:
        if m.stored == m0.record and m.record == m0.stored:
            return [Finding("swapped", f"notification ids {m0.position} and {m.position} hold "
                            f"each other's records{also}", leaf_index=m0.leaf_index,
                            position=m0.position, other_position=m.position)]
    nxt = later[0] if later else None
    if nxt is not None and nxt.stored is not None and nxt.stored == m0.record:
        return [Finding("deleted", f"the record of notification id {m0.position} (leaf "
                        f"{m0.leaf_index}) is gone and the later records moved up one "
                        f"position{also}", leaf_index=m0.leaf_index, position=m0.position)]
    if nxt is not None and nxt.record is not None and nxt.record == m0.stored:
        return [Finding("inserted", f"a record was inserted at notification id {m0.position} "
                        f"(leaf {m0.leaf_index}) and the later records moved down one "
                        f"position{also}", leaf_index=m0.leaf_index, position=m0.position)]
    for m in later:
        if m.stored == m0.record:
            return [Finding("reordered", f"notification id {m0.position} holds the record of "
                            f"{m.position}{also}", leaf_index=m0.leaf_index,
                            position=m0.position, other_position=m.position)]
    if m0.stored is not None and m0.record == m0.stored:
        return [Finding("tree", f"leaf {m0.leaf_index}: the record at notification id "
                        f"{m0.position} is unchanged but the stored leaf hash differs{also}",
                        leaf_index=m0.leaf_index, position=m0.position)]
    fields = differing_fields(m0.record, m0.stored)
    return [Finding("changed", f"notification id {m0.position} (leaf {m0.leaf_index}): "
                    f"{', '.join(fields) or 'record'} differs from the leaf{also}",
                    leaf_index=m0.leaf_index, position=m0.position, fields=fields)]


def _leaf_after(store: AuditStore, conn: Connection, position: int) -> int | None:
    """Leaf index a record inserted at ``position`` would take: the next leaf's."""
    return store.raw(conn, f"SELECT MIN(leaf_index) FROM {store.table_sql('merkle_leaves')} "
                           f"WHERE position > ?", (position,))[0][0]


# C: checkpoints -------------------------------------------------------------------------
def _check_checkpoints(rows: list[tuple], keys: list[LogKeyRecord]
                       ) -> list[tuple[int, Any, Finding | None]]:
    """Per stored checkpoint: (size, checkpoint if its signature holds, finding if not)."""
    out: list[tuple[int, Any, Finding | None]] = []
    trusted = [k.key for k in keys]
    for cid, kind, origin, size, root, when, note in rows:
        try:
            text, signed_by = open_note(note, trusted)
            checkpoint = parse_checkpoint(text)
            if checkpoint.origin not in {k.name for k in signed_by}:
                raise AuditError(f"origin {checkpoint.origin!r}: expected the signing key's name")
            if not any(k.key in signed_by and k.valid_at(checkpoint.time) for k in keys):
                raise AuditError(f"signed at {checkpoint.time}: expected a key valid then, got "
                                 f"{[k.vkey for k in signed_by]}")
            if (checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.time) != (
                    origin, size, bytes(root), when):
                raise AuditError(f"stored columns (origin, size, root, time) = ({origin}, {size},"
                                 f" {bytes(root).hex()[:16]}…, {when}): expected the note's "
                                 f"({checkpoint.origin}, {checkpoint.size}, "
                                 f"{checkpoint.root.hex()[:16]}…, {checkpoint.time})")
            if kind == "key-rotation" or checkpoint.rotation:
                _check_rotation(cid, note, checkpoint, keys)
        except (AuditError, ValueError) as exc:
            detail = (exc.message if type(exc) is AuditError
                      else f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
            out.append((size, None, Finding("checkpoint", f"checkpoint {cid}: {detail}",
                                            checkpoint_id=cid)))
            continue
        out.append((checkpoint.size, (cid, checkpoint), None))
    return out


def _check_rotation(cid: int, note: str, checkpoint: Any, keys: list[LogKeyRecord]) -> None:
    if checkpoint.rotation is None:
        raise AuditError("stored as a key rotation: expected a key-rotation line, got none")
    new = verify_rotation(note, checkpoint.rotation[0])
    record = next((k for k in keys if k.key == new), None)
    if record is None or record.introduced_by != cid:
        raise AuditError(f"key rotation to {new.vkey}: expected log_keys to record it as "
                         f"introduced here, got {record.introduced_by if record else 'no row'}")


def _against_checkpoints(store: AuditStore, conn: Connection, state: Any,
                         roots: dict[int, bytes], signed: list[tuple[int, Any]]
                         ) -> list[Finding]:
    """Every signed root must be the stored tree's root at its size; locate the first that is not."""
    bad = [(cid, cp) for _, (cid, cp) in signed
           if cp.size > state.size or roots.get(cp.size) != cp.root]
    if not bad:
        return []
    bad_id, bad_cp = min(bad, key=lambda b: b[1].size)
    sealed = _first_unsealed_leaf(store, conn, [cp for _, (_, cp) in signed], state.size)
    if sealed is not None:
        index, owner, authentic = sealed
        if index is not None:
            position = _position(store, conn, index)
            return [Finding("rewritten", f"leaf {index} (notification id {position}) differs "
                            f"from the leaf sealed by checkpoint {owner}; the records and tree "
                            f"agree, so both were rewritten from here (checkpoint {bad_id} of "
                            f"{bad_cp.size} leaves signed root {bad_cp.root.hex()[:16]}…)",
                            leaf_index=index, position=position, checkpoint_id=bad_id)]
        if authentic > state.size:
            return [Finding("truncated", f"checkpoint {bad_id} signed {bad_cp.size} leaves: "
                            f"expected them all, got {state.size}; the log was cut after leaf "
                            f"{state.size - 1}", leaf_index=state.size, checkpoint_id=bad_id)]
    good = [cp.size for _, (_, cp) in signed
            if cp.size <= min(state.size, bad_cp.size) and roots.get(cp.size) == cp.root]
    lo = max(good, default=0)
    kind = "truncated" if bad_cp.size > state.size and lo == state.size else "rewritten"
    return [Finding(kind, f"checkpoint {bad_id} signed {bad_cp.size} leaves with root "
                    f"{bad_cp.root.hex()[:16]}…, the tree has "
                    f"{roots.get(bad_cp.size, b'').hex()[:16] or 'fewer leaves'}: the first "
                    f"difference is in leaves {lo}..{bad_cp.size - 1}",
                    leaf_index=lo, position=_position(store, conn, lo), checkpoint_id=bad_id)]


def _first_unsealed_leaf(store: AuditStore, conn: Connection, checkpoints: list[Any],
                         size: int) -> tuple[int | None, int | None, int] | None:
    """Hold the stored leaves against the leaf hashes the checkpoints sealed, chunk by chunk.

    A seal counts only up to the last checkpoint whose signed root it reproduces (the
    seal chain is authenticated by the signatures).  Returns (first stored leaf that
    differs from an authentic seal or None, the checkpoint that sealed it or None,
    authentic size), or None if no seal is authentic.
    """
    seals = store.table_sql("log_checkpoint_leaves")
    chunk_sql = (f"SELECT first_leaf, leaf_count, checkpoint_id, hashes FROM {seals} "
                 f"WHERE first_leaf = ?")
    stored_sql = (f"SELECT leaf_index, leaf_hash FROM {store.table_sql('merkle_leaves')} "
                  f"WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index")
    signed = sorted(((cp.size, cp.root) for cp in checkpoints), key=lambda c: c[0])
    tree, authentic, at = CompactRange(), 0, 0
    diff: tuple[int, int] | None = None
    while at < len(signed) and (diff is None or diff[0] >= authentic):
        rows = store.raw(conn, chunk_sql, (tree.size,))
        if not rows or len(rows[0][3]) != rows[0][1] * HASH_SIZE:
            break  # the seal ends here, or was cut
        first, count, owner, blob = rows[0]
        stored = dict(store.raw(conn, stored_sql, (first, min(first + count, size))))
        for k, h in enumerate(split_hashes(bytes(blob))):
            if diff is None and first + k < size and stored.get(first + k) != h:
                diff = (first + k, owner)
            tree.append(h)
            while at < len(signed) and signed[at][0] == tree.size:
                if tree.root() != signed[at][1]:
                    at = len(signed)  # the seal no longer matches what was signed
                    break
                authentic, at = tree.size, at + 1
    if not authentic:
        return None
    if diff is not None and diff[0] < authentic:
        return diff[0], diff[1], authentic
    return None, None, authentic


def _position(store: AuditStore, conn: Connection, leaf_index: int) -> int | None:
    rows = store.raw(conn, f"SELECT position FROM {store.table_sql('merkle_leaves')} "
                           f"WHERE leaf_index = ?", (leaf_index,))
    return rows[0][0] if rows else None
