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
for the tree.  A and B run page by page (``audit.scan``), in-line or spread over worker
processes; this module combines the pages into the roots at every checkpoint size, checks
the nodes above page level and the tracking state, classifies what differs and holds
the tree against the checkpoints.

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
- ``checkpoint``: a checkpoint's signature, key or stored columns do not hold;
- ``key``: a ``log_keys`` row is not the key history the rotation checkpoints establish
  from keys trusted outside the store (``audit.keyhistory``), named by key id;
- ``signature``: a record's signatures do not verify over its content with a key its
  official held then, or it replays a signed step (``audit.signatures``): always for the
  records not yet in the tree (the tree stops before such a record), for every record
  with ``signatures=True`` (``zhuisu verify --signatures``);
- ``snapshot``: a stored snapshot is not its aggregate replayed from the log to its
  version (``audit.snapshots``), named by aggregate id and version.

Which log keys are trusted comes from outside the store (``keys``, else the log key
file; ``audit.keyhistory``), never from the rows the store holds.  With kept checkpoints
(``verify_log_against``) the log is also held against them (``audit.kept``).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from sqlalchemy import Connection

from audit.checkpoints import (
    NoteKey,
    as_keys,
    open_note,
    parse_checkpoint,
    verify_rotation,
)
from audit.errors import AuditError
from audit.findings import KINDS, Finding, VerificationResult
from audit.kept import (
    against_kept,
    first_unsealed_leaf,
    fold,
    kept_checkpoints,
    leaf_position,
    stored_material,
)
from audit.keyhistory import KeyTrust, key_file_anchor, trust
from audit.logkey import known_keys
from audit.merkle import CompactRange
from audit.records import differing_fields
from audit.scan import PAGE, Span, SpanReport, node_finding, scan_span
from audit.signatures import check_new_rows, verify_signatures
from audit.snapshots import verify_snapshots
from audit.store import AuditStore, opened
from audit.tree_store import read_state
from domain.errors import InvalidInput

_fold = fold
PENDING_CHECK = 100_000  # records not yet in the tree whose signatures verify checks


# the whole log --------------------------------------------------------------------------
def verify_log(source: Any, *, workers: int = 1, page: int = PAGE,
               keys: str | NoteKey | Sequence[str | NoteKey] | None = None,
               signatures: bool = False, kept: Sequence[str] = ()) -> VerificationResult:
    """Verify everything (see the module docstring); read-only, never catches up first.

    ``keys``: the log keys to trust (vkeys), from outside the store; default the log key
    file's.  ``signatures``: re-verify every stored signature too.  ``kept``: checkpoint
    notes kept outside the store to hold the log against (``verify_log_against``).

    ``workers`` > 1 spreads the pages over that many processes (this one and forked
    children), each with its own connection; the result is the same.  Use it from a
    command or batch job, not inside a multi-threaded server (a fork copies one thread and
    whatever locks the others held).  On PostgreSQL each process also reads the next page
    on a second connection in a thread while it hashes the current one (``audit.scan``).
    """
    if page < 2 or page & (page - 1):
        raise ValueError(f"page: expected a power of two >= 2, got {page}")
    began = time.perf_counter()
    anchors = as_keys(keys) if keys else None
    with opened(source) as store:
        if kept and not anchors and key_file_anchor(store) is None:
            raise InvalidInput("a kept checkpoint is checked with the log's public key from "
                               "outside the store: give --key VKEY or --keys FILE (the "
                               "store's own key rows are not evidence)", field="key")
        with store.engine.connect() as conn:
            state = read_state(conn)
            checkpoints = store.raw(conn, f"SELECT id, kind, origin, tree_size, root_hash, time, "
                                          f"note FROM {store.table_sql('log_checkpoints')} "
                                          f"ORDER BY id")
            trusted = trust(store, known_keys(conn), checkpoints, anchors)
        signed = _check_checkpoints(checkpoints, trusted)
        cut_sizes = sorted({s for s, _, _ in signed if s <= state.size} | {state.size})
        reports = _run_spans(store, state.size, page, cut_sizes, workers)
        findings = [f for _, _, f in signed if f is not None] + list(trusted.findings)
        good = [(s, c) for s, c, _ in signed if c is not None]
        with store.engine.connect() as conn:
            roots = _combine(store, conn, reports, page, cut_sizes, state, findings)
            findings += _records_finding(reports, state, lambda p: _leaf_after(store, conn, p))
            findings += _against_checkpoints(store, conn, state, roots, good)
            if kept:
                notes, bad_notes = kept_checkpoints(kept, trusted)
                findings += bad_notes + against_kept(store, conn, notes, stored_material(good))
            pending = store.events.count(conn, state.last_position)
            if not signatures:
                findings += _pending_signatures(store, conn, state.last_position)
            snapshots = verify_snapshots(store, conn)
            findings += snapshots.findings
        checked = None
        if signatures:
            report = verify_signatures(store, workers=workers)
            checked = report.signatures
            if report.first is not None:
                more = f" ({report.bad} events in all)" if report.bad > 1 else ""
                first = report.first
                findings.append(Finding(first.kind, first.message + more, first.leaf_index,
                                        first.position))
    findings.sort(key=lambda f: (f.leaf_index if f.leaf_index is not None else 2**63,
                                 KINDS.index(f.kind)))
    return VerificationResult(state.size, sum(r.records for r in reports), len(checkpoints),
                              pending, tuple(findings), time.perf_counter() - began,
                              snapshots.snapshots, checked)


def _pending_signatures(store: AuditStore, conn: Connection, after: int) -> list[Finding]:
    """The records not yet in the tree: the first whose signatures do not hold, if any (the
    tree stopped before it)."""
    rows = store.events.between(conn, after, limit=PENDING_CHECK)
    bad, _ = check_new_rows(store, conn, rows, after)
    if bad is None:
        return []
    return [Finding("signature", f"notification id {bad.position} (not in the tree; the tree "
                    f"stops before it): {bad.reason}", position=bad.position)]


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
            return [Span(store, conn, page).run(lo, hi, span_cuts(lo, hi)) for lo, hi in spans]
    store.engine.dispose()  # no pooled connection may be shared with a forked worker
    if "fork" in multiprocessing.get_all_start_methods():
        return _forked_spans(store, spans, page, span_cuts)
    with ProcessPoolExecutor(len(spans),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(scan_span, store.config, lo, hi, page, span_cuts(lo, hi))
                   for lo, hi in spans]
        return [f.result() for f in futures]


_FORKED: AuditStore | None = None  # the store a forked worker inherits (its engine warm)


def _forked_spans(store: AuditStore, spans: list[tuple[int, int]], page: int,
                  span_cuts: Callable[[int, int], list[int]]) -> list[SpanReport]:
    """The first span in this process, each other one in a forked child that inherits the
    store (engine and dialect ready, its pool empty) and sends its report back on a pipe:
    no executor to start, no store to open per worker."""
    global _FORKED
    context = multiprocessing.get_context("fork")
    children = []
    _FORKED = store
    try:
        for lo, hi in spans[1:]:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_forked_span, daemon=True,
                                    args=(send, lo, hi, page, span_cuts(lo, hi)))
            child.start()
            send.close()
            children.append((child, receive))
    finally:
        _FORKED = None
    done = False
    try:
        lo, hi = spans[0]
        with store.engine.connect() as conn:
            reports = [Span(store, conn, page).run(lo, hi, span_cuts(lo, hi))]
        for child, receive in children:
            try:
                ok, report = receive.recv()
            except EOFError:
                child.join()
                raise RuntimeError(f"verification worker {child.pid} ended without a "
                                   f"report (exit code {child.exitcode})") from None
            if not ok:
                raise RuntimeError(f"verification worker {child.pid}: {report}")
            reports.append(report)
        done = True
        return reports
    finally:
        for child, receive in children:
            receive.close()
            if not done:
                child.terminate()
            child.join()


def _forked_span(send: Any, lo: int, hi: int, page: int, cuts: list[int]) -> None:
    """A forked worker: scan leaves [lo, hi) on a connection of its own, send the report."""
    store = _FORKED
    assert store is not None, "expected the store inherited from the parent"
    try:
        store.engine.dispose(close=False)  # the parent's connections stay the parent's
        with store.engine.connect() as conn:
            result: tuple[bool, Any] = (True, Span(store, conn, page).run(lo, hi, cuts))
    except Exception as exc:  # the parent raises it; the child only reports
        result = (False, f"{type(exc).__name__}: {exc}")
    send.send(result)
    send.close()


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
            return [node_finding(level, idx, h, got)]
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
def _check_checkpoints(rows: list[tuple], trusted: KeyTrust
                       ) -> list[tuple[int, Any, Finding | None]]:
    """Per stored checkpoint: (size, checkpoint if its signature holds, finding if not)."""
    out: list[tuple[int, Any, Finding | None]] = []
    keys = trusted.keys
    for cid, kind, origin, size, root, when, note in rows:
        try:
            text, signed_by = open_note(note, trusted.note_keys)
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
                _check_rotation(cid, note, checkpoint, trusted)
        except (AuditError, ValueError) as exc:
            detail = (exc.message if type(exc) is AuditError
                      else f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
            out.append((size, None, Finding("checkpoint", f"checkpoint {cid}: {detail} "
                                            f"(trusted keys from {trusted.anchored_by})",
                                            checkpoint_id=cid)))
            continue
        out.append((checkpoint.size, (cid, checkpoint), None))
    return out


def _check_rotation(cid: int, note: str, checkpoint: Any, trusted: KeyTrust) -> None:
    if checkpoint.rotation is None:
        raise AuditError("stored as a key rotation: expected a key-rotation line, got none")
    new = verify_rotation(note, checkpoint.rotation[0])
    record = next((k for k in trusted.keys if k.key == new), None)
    if record is None or record.introduced_by != cid:
        raise AuditError(f"key rotation to {new.vkey}: expected the key history to have it "
                         f"introduced here, got "
                         f"{record.introduced_by if record else 'an untrusted key'}")


def _against_checkpoints(store: AuditStore, conn: Connection, state: Any,
                         roots: dict[int, bytes], signed: list[tuple[int, Any]]
                         ) -> list[Finding]:
    """Each signed root must be the stored tree's root at its size; locate the first that is not."""
    bad = [(cid, cp) for _, (cid, cp) in signed
           if cp.size > state.size or roots.get(cp.size) != cp.root]
    if not bad:
        return []
    bad_id, bad_cp = min(bad, key=lambda b: b[1].size)
    sealed = first_unsealed_leaf(store, conn, [(cp.size, cp.root) for _, (_, cp) in signed],
                                 state.size)
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
            return [_cut(store, conn, f"checkpoint {bad_id} signed {bad_cp.size} leaves: "
                         f"expected them all, got {state.size}", state.size, bad_id)]
    good = [cp.size for _, (_, cp) in signed
            if cp.size <= min(state.size, bad_cp.size) and roots.get(cp.size) == cp.root]
    lo = max(good, default=0)
    if bad_cp.size > state.size and lo == state.size:
        return [_cut(store, conn, f"checkpoint {bad_id} signed {bad_cp.size} leaves, the "
                     f"tree has {state.size} and they are what checkpoints signed",
                     state.size, bad_id)]
    return [Finding("rewritten", f"checkpoint {bad_id} signed {bad_cp.size} leaves with root "
                    f"{bad_cp.root.hex()[:16]}…, the tree has "
                    f"{roots.get(bad_cp.size, b'').hex()[:16] or 'fewer leaves'}: the first "
                    f"difference is in leaves {lo}..{bad_cp.size - 1}",
                    leaf_index=lo, position=_position(store, conn, lo), checkpoint_id=bad_id)]


def _position(store: AuditStore, conn: Connection, leaf_index: int) -> int | None:
    return leaf_position(store, conn, leaf_index)


def _cut(store: AuditStore, conn: Connection, what: str, size: int,
         checkpoint_id: int) -> Finding:
    """The log was cut after leaf ``size - 1``: name the first missing leaf and the last
    intact one with its notification id (the missing records' ids went with them)."""
    last = _position(store, conn, size - 1) if size else None
    intact = (f"the last intact leaf is {size - 1} (notification id {last})" if size
              else "no leaf remains")
    return Finding("truncated", f"{what}: the log was cut; the first missing leaf is {size} "
                   f"(its record and notification id are gone), {intact}",
                   leaf_index=size, checkpoint_id=checkpoint_id, last_intact_position=last)


# checkpoints kept outside the store ---------------------------------------------------
def verify_log_against(source: Any, notes: str | Sequence[str], *, workers: int = 1,
                       keys: str | NoteKey | Sequence[str | NoteKey] | None = None,
                       signatures: bool = False) -> VerificationResult:
    """Full verification, then hold the log against checkpoints someone kept elsewhere
    (``zhuisu verify --checkpoint FILE``, repeatable; ``audit.kept``).

    Each kept note must be signed by a log key trusted from outside the store (``keys``,
    else the log key file's: ``InvalidInput`` if there is neither), and the first ``size``
    leaves must hash to the root it signed.  This catches a rewrite even where the stored
    checkpoints, their sealed leaves and the key rows were rewritten too: the kept copies
    and the trusted key were out of reach.  The first difference is located as precisely
    as the kept material allows.
    """
    kept = [notes] if isinstance(notes, str) else list(notes)
    if not kept:
        raise InvalidInput("give at least one kept checkpoint", field="checkpoint")
    return verify_log(source, workers=workers, keys=keys, signatures=signatures, kept=kept)
