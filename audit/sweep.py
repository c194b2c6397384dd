"""The sweep: the server re-verifies the whole log by itself, a few pages at a time.

``zhuisu verify`` finds a change only when someone runs it.  The sweep runs its checks
continuously inside the server (``runtime.followers`` calls ``sweep_tick`` every
``ZHUISU_SWEEP_EVERY`` seconds), each tick over the next ``pages`` pages of ``scan.PAGE``
leaves, from leaf 0 up to the tree's size when the pass began, then again from 0:

A. records ↔ stored leaves, page by page (``audit.scan``: each record at its leaf's
   position, no record between them, each hashing to its stored leaf);
B. the stored interior nodes inside each page, and above page level as the pass goes;
C. the checkpoints signed since the last pass and the latest one: each note verifies with
   a log key the store knows and states the stored columns, and its root is the root the
   pass recomputed from the stored leaves at its size (the latest root covers every leaf
   below it, so a rewrite anywhere there shows on every pass, however many checkpoints the
   receipts have signed); and no checkpoint checked before has gone.

So a changed, deleted, inserted or reordered event, an edited tree, or a tree rewritten
with its records (against the signed roots) is found within one pass and one tick: at
most ``(ceil(tree size / (pages × PAGE)) + 1) × ZHUISU_SWEEP_EVERY`` seconds after it
happened (leaves added after a pass began are covered by the next pass).  Each finding
is a ``findings.Finding``; the caller raises the alarm (``audit.alarm``).

The state between ticks (``SweepState``) is the pass's page roots as a compact range, the
next leaf and the checkpoints still to hold against it: O(log n) hashes, no rescan.  Every
checkpoint's signature is checked once by the sweep (``zhuisu verify`` checks them all).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.checkpoints import verify_checkpoint
from audit.errors import AuditError
from audit.findings import Finding
from audit.logkey import known_keys
from audit.merkle import EMPTY_ROOT, CompactRange, hash_children
from audit.records import differing_fields
from audit.scan import PAGE, Mismatch, Span, node_finding
from audit.store import AuditStore
from audit.tree_store import read_state

DEFAULT_PAGES = 2


@dataclass
class SweepState:
    """Where the sweep stands: the pass's size, the next leaf, the page roots so far, and
    how far the checkpoints have been checked."""

    pass_size: int = 0
    at: int = 0
    pages: CompactRange = field(default_factory=CompactRange)
    cuts: list[tuple[int, int, bytes]] = field(default_factory=list)  # (size, id, root)
    passes: int = 0  # completed passes
    checked_upto: int = 0  # checkpoints with ids up to this one were checked once
    checked_count: int = 0  # … and this many of them were stored
    deferred: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # id → (size, root)
    waited: set[int] = field(default_factory=set)  # deferred ids that already waited a pass
    page: int = PAGE  # leaves per page, a power of two (tests use small pages)

    @property
    def done(self) -> bool:
        return self.at >= self.pass_size


def _fold(hashes: list[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = hash_children(h, root)
    return root


_CHECKPOINT_COLUMNS = "id, origin, tree_size, root_hash, time, note"


def _begin_pass(store: AuditStore, state: SweepState) -> list[Finding]:
    """Start a pass over the tree as it is now.  The checkpoints it holds the recomputed
    roots against: those signed since the last pass, and the latest one (its root covers
    every leaf below it, so a rewrite anywhere there shows every pass); each is checked for
    signature and stored columns.  Checkpoints checked before must all still be there.
    A checkpoint larger than the tree (a catch-up or rebuild in between) waits a pass."""
    findings: list[Finding] = []
    table = store.table_sql("log_checkpoints")
    with store.engine.connect() as conn:
        rows = store.raw(conn, f"SELECT {_CHECKPOINT_COLUMNS} FROM {table} WHERE id > ? "
                               f"ORDER BY id", (state.checked_upto,))
        before = store.raw(conn, f"SELECT COUNT(*) FROM {table} WHERE id <= ?",
                           (state.checked_upto,))[0][0]
        if not rows:
            rows = store.raw(conn, f"SELECT {_CHECKPOINT_COLUMNS} FROM {table} "
                                   f"ORDER BY id DESC LIMIT 1")
        # The keys after the checkpoints: a key is registered in the transaction of the first
        # checkpoint it signs, and keys are never removed, so every key of a checkpoint read
        # above is seen here (read first, a checkpoint committed in between — the first one,
        # signed while the sweep runs — would have looked signed by an unknown key).
        keys = known_keys(conn)
        size = read_state(conn).size  # after the checkpoints: at least as large as theirs
    if before != state.checked_count:
        findings.append(Finding("checkpoint", f"checkpoints up to id {state.checked_upto}: "
                                f"expected the {state.checked_count} checked before, got "
                                f"{before}"))
    trusted = [k.key for k in keys]
    cuts = []
    for cid, origin, tree_size, root, when, note in rows:
        try:
            checkpoint = verify_checkpoint(note, trusted)
            if (checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.time) != (
                    origin, tree_size, bytes(root), when):
                raise AuditError("stored columns (origin, size, root, time): expected the "
                                 "note's")
        except (AuditError, ValueError) as exc:
            findings.append(Finding("checkpoint", f"checkpoint {cid}: "
                                    f"{getattr(exc, 'message', exc)}", checkpoint_id=cid))
            continue
        state.deferred.setdefault(int(cid), (int(tree_size), bytes(root)))
    for cid, (tree_size, root) in sorted(state.deferred.items()):
        if tree_size <= size:
            cuts.append((tree_size, cid, root))
            del state.deferred[cid]
            state.waited.discard(cid)
        elif cid in state.waited:  # larger than the tree a pass ago too
            findings.append(Finding("truncated", f"checkpoint {cid} signed {tree_size} leaves:"
                                    f" expected them all, the tree has {size}",
                                    leaf_index=size, checkpoint_id=cid))
        else:
            state.waited.add(cid)
    new = [r for r in rows if r[0] > state.checked_upto]
    if new:
        state.checked_upto = int(new[-1][0])
    state.checked_count = before + len(new)
    state.pass_size, state.at, state.pages = size, 0, CompactRange()
    state.cuts = sorted(cuts)
    return findings


def _mismatch_finding(m: Mismatch) -> Finding:
    if m.record is None:
        return Finding("deleted", f"notification id {m.position} (leaf {m.leaf_index}): "
                       f"expected its record, got none", leaf_index=m.leaf_index,
                       position=m.position)
    if m.stored is None:
        return Finding("inserted", f"notification id {m.position}: a record that is not in "
                       f"the tree, between tree positions", position=m.position)
    fields = differing_fields(m.record, m.stored)
    return Finding("changed", f"notification id {m.position} (leaf {m.leaf_index}): "
                   f"{', '.join(fields) or 'record'} differs from the leaf",
                   leaf_index=m.leaf_index, position=m.position, fields=fields)


def sweep_tick(store: AuditStore, state: SweepState, pages: int = DEFAULT_PAGES
               ) -> list[Finding]:
    """Check the next ``pages`` pages (starting a new pass when the last one ended);
    the findings, first (lowest leaf) first."""
    if pages < 1:
        raise ValueError(f"pages: expected at least 1, got {pages}")
    findings: list[Finding] = []
    if state.done:
        findings += _begin_pass(store, state)
        if state.done:  # an empty tree: the checkpoints are all there is to check
            state.passes += 1
            return findings
    lo = state.at
    hi = min(state.pass_size, lo + pages * state.page)
    tick_cuts = [c for c in state.cuts if lo < c[0] <= hi]
    with store.engine.connect() as conn:
        report = Span(store, conn, state.page).run(lo, hi, [c[0] for c in tick_cuts])
        findings += [_mismatch_finding(m) for m in report.mismatches[:1]]
        findings += report.tree[:1]
        roots, above = _roots(state, report.page_roots, report.cuts, tick_cuts)
        findings += _check_above(store, conn, above)
    for size, cid, signed in tick_cuts:
        if roots.get(size) != signed:
            findings.append(Finding("rewritten", f"checkpoint {cid} signed {size} leaves with "
                                    f"root {signed.hex()[:16]}…, the stored leaves hash to "
                                    f"{roots.get(size, b'').hex()[:16]}…", checkpoint_id=cid,
                                    leaf_index=max(size - 1, 0)))
    state.at = hi
    if state.done:
        state.passes += 1
    findings.sort(key=lambda f: f.leaf_index if f.leaf_index is not None else 2**63)
    return findings


def _roots(state: SweepState, page_roots: list[bytes], in_page: dict[int, list[bytes]],
           cuts: list[tuple[int, int, bytes]]) -> tuple[dict[int, bytes],
                                                        list[tuple[int, int, bytes]]]:
    """Roots at this tick's checkpoint sizes, and the nodes above page level completed."""
    page = state.page
    k = page.bit_length() - 1
    roots: dict[int, bytes] = {}
    above: list[tuple[int, int, bytes]] = []
    pending = iter(sorted(c[0] for c in cuts))
    cut = next(pending, None)
    for root in page_roots:
        while cut is not None and cut < (state.pages.size + 1) * page:
            roots[cut] = _fold(state.pages.hashes + in_page.get(cut, []))
            cut = next(pending, None)
        above += [(k + level, idx, h) for level, idx, h in state.pages.append(root)[1:]]
    while cut is not None:
        roots[cut] = _fold(state.pages.hashes + in_page.get(cut, []))
        cut = next(pending, None)
    return roots, above


def _check_above(store: AuditStore, conn, nodes: list[tuple[int, int, bytes]]) -> list[Finding]:
    sql = f"SELECT hash FROM {store.table_sql('merkle_nodes')} WHERE level = ? AND idx = ?"
    for level, idx, h in nodes:
        rows = store.raw(conn, sql, (level, idx))
        got = bytes(rows[0][0]) if rows else None
        if got != h:
            return [node_finding(level, idx, h, got)]
    return []


def sweep_pass(store: AuditStore, pages: int = DEFAULT_PAGES, page: int = PAGE
               ) -> list[Finding]:
    """One whole pass at once (tests, and ``bench``): every finding of every tick."""
    state = SweepState(page=page)
    findings = sweep_tick(store, state, pages)
    while not state.done:
        findings += sweep_tick(store, state, pages)
    return findings
