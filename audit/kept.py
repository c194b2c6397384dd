"""Holding the log against checkpoints kept outside the store, and locating what differs
as precisely as the kept material allows (``zhuisu verify --checkpoint FILE``, repeatable).

A kept checkpoint is trusted only if a log key trusted from outside the store signed it
(``audit.keyhistory``).  Its root is compared with the root the stored tree gives at its
size.  Where some differ, the material is every checkpoint a trusted key signed — the kept
ones and the stored ones that still verify — and the leaf hashes sealed with the stored
checkpoints (``audit.log``), where they reproduce one of those roots (then they are
authentic: a seal cannot be forged to match a signed root):

- a *rewrite* lies after the largest checkpoint whose root the tree still gives and
  before the smallest whose root it does not: leaves ``lo .. hi - 1``.  An authentic seal
  names the exact leaf; without one it cannot be narrowed further, because a checkpoint
  signs only the root at its size, and the finding says so;
- a *truncation* (a kept checkpoint signed more leaves than the store holds) names the
  first missing leaf and the last intact one with its notification id (the missing
  records' own ids went with them).  Whether the leaves that remain are intact is told
  by a checkpoint or seal that covers them; where none does, the finding says so.

Also here, shared with ``audit.verify``: the root at a size from stored nodes and the
walk along the sealed leaf hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from audit.checkpoints import Checkpoint, open_note, parse_checkpoint
from audit.errors import AuditError
from audit.findings import Finding
from audit.keyhistory import KeyTrust
from audit.merkle import EMPTY_ROOT, HASH_SIZE, CompactRange, hash_children
from audit.store import AuditStore
from audit.tree_store import read_state, split_hashes, with_stored_nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a compact range given largest subtree first."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = hash_children(h, root)
    return root


def root_at(size: int, get_node: Callable[[int, int], bytes]) -> bytes:
    """Root of the first ``size`` leaves from perfect-subtree nodes (RFC 6962 split)."""
    hashes, start = [], 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            hashes.append(get_node(level, start >> level))
            start += 1 << level
    return fold(hashes)


def stored_root(store: AuditStore, conn: Connection, size: int) -> bytes | None:
    """The stored tree's root at ``size`` leaves (None if a node is missing)."""
    try:
        return with_stored_nodes(store, conn, lambda get: root_at(size, get))
    except AuditError:
        return None


def leaf_position(store: AuditStore, conn: Connection, leaf_index: int) -> int | None:
    rows = store.raw(conn, f"SELECT position FROM {store.table_sql('merkle_leaves')} "
                           f"WHERE leaf_index = ?", (leaf_index,))
    return rows[0][0] if rows else None


def first_unsealed_leaf(store: AuditStore, conn: Connection,
                        signed: Sequence[tuple[int, bytes]],
                        size: int) -> tuple[int | None, int | None, int] | None:
    """Hold the stored leaves against the leaf hashes the checkpoints sealed, chunk by chunk.

    ``signed``: (size, root) of checkpoints a trusted key signed.  A seal counts only up to
    the last of them whose root it reproduces (the seal chain is authenticated by the
    signatures).  Returns (first stored leaf that differs from an authentic seal or None,
    the checkpoint that sealed it or None, authentic size), or None if no seal is
    authentic.
    """
    seals = store.table_sql("log_checkpoint_leaves")
    chunk_sql = (f"SELECT first_leaf, leaf_count, checkpoint_id, hashes FROM {seals} "
                 f"WHERE first_leaf = ?")
    stored_sql = (f"SELECT leaf_index, leaf_hash FROM {store.table_sql('merkle_leaves')} "
                  f"WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index")
    signed = sorted(set(signed), key=lambda c: c[0])
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
            while at < len(signed) and signed[at][0] < tree.size:
                at += 1  # a size the seal passed over (two checkpoints of one size)
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


def kept_checkpoints(notes: Sequence[str], trust: KeyTrust
                     ) -> tuple[list[Checkpoint], list[Finding]]:
    """The kept notes a trusted key signed (valid at the note's time), and a finding for
    each other one."""
    good, findings = [], []
    for i, note in enumerate(notes, 1):
        try:
            text, signed_by = open_note(note, trust.note_keys)
            checkpoint = parse_checkpoint(text)
            if checkpoint.origin not in {k.name for k in signed_by}:
                raise AuditError(f"origin {checkpoint.origin!r}: expected the signing key's "
                                 f"name")
            if not any(k.key in signed_by and k.valid_at(checkpoint.time) for k in trust.keys):
                raise AuditError(f"signed at {checkpoint.time}: expected a key valid then, "
                                 f"got {[k.vkey for k in signed_by]}")
        except (AuditError, ValueError) as exc:
            detail = getattr(exc, "message", str(exc))
            findings.append(Finding("checkpoint", f"kept checkpoint {i}: {detail} (trusted "
                                    f"keys from {trust.anchored_by})"))
            continue
        good.append(checkpoint)
    return good, findings


def against_kept(store: AuditStore, conn: Connection, kept: Sequence[Checkpoint],
                 stored: Sequence[Checkpoint]) -> list[Finding]:
    """Findings where the stored tree is not what the kept checkpoints signed (docstring).

    ``stored``: the stored checkpoints a trusted key signed, as extra material.
    """
    state = read_state(conn)
    roots: dict[int, bytes | None] = {}

    def matches(cp: Checkpoint) -> bool:
        if cp.size > state.size:
            return False
        if cp.size not in roots:
            roots[cp.size] = stored_root(store, conn, cp.size)
        return roots[cp.size] == cp.root

    bad = sorted((cp for cp in kept if not matches(cp)), key=lambda cp: cp.size)
    if not bad:
        return []
    first_bad = bad[0]
    material = [*kept, *stored]
    hi = min(first_bad.size, state.size + 1)
    lo = max((cp.size for cp in material if cp.size < hi and matches(cp)), default=0)
    sealed = first_unsealed_leaf(store, conn, [(cp.size, cp.root) for cp in material],
                                 state.size)
    if sealed is not None and sealed[0] is not None and sealed[0] < first_bad.size:
        index, owner = sealed[0], sealed[1]
        position = leaf_position(store, conn, index)
        return [Finding("rewritten", f"leaf {index} (notification id {position}) differs "
                        f"from the leaf hash checkpoint {owner} sealed, which the trusted "
                        f"checkpoints authenticate: history before leaf {first_bad.size} was "
                        f"rewritten from here (the kept checkpoint of {first_bad.size} leaves "
                        f"signed root {first_bad.root.hex()[:16]}…)",
                        leaf_index=index, position=position)]
    if sealed is not None and sealed[0] is None:
        lo = max(lo, min(sealed[2], state.size))  # leaves the seal authenticates are intact
    if first_bad.size > state.size:
        return [_truncated(store, conn, first_bad, state.size, lo)]
    first, last = leaf_position(store, conn, lo), leaf_position(store, conn, hi - 1)
    return [Finding(
        "rewritten",
        f"the kept checkpoint signed {first_bad.size} leaves with root "
        f"{first_bad.root.hex()[:16]}…, the stored tree gives "
        f"{(roots.get(first_bad.size) or b'').hex()[:16] or 'no root'}…: history before leaf "
        f"{first_bad.size} was rewritten.  The first difference lies in leaves "
        f"{lo}..{hi - 1} (notification ids {first}..{last} as stored now), after the largest "
        f"trusted checkpoint the tree still verifies ({lo} leaves); it cannot be located "
        f"more precisely: a checkpoint signs only the root at its size, and no sealed leaf "
        f"hashes that reproduce a trusted root remain in the store",
        leaf_index=lo, position=first)]


def _truncated(store: AuditStore, conn: Connection, kept: Checkpoint, size: int,
               intact: int) -> Finding:
    last = leaf_position(store, conn, size - 1) if size else None
    tail = (f"the last intact leaf is {size - 1} (notification id {last})" if size
            else "no leaf remains")
    if intact >= size:
        doubt = ""
    elif intact:
        doubt = (f"; the leaves that remain are confirmed intact only up to leaf {intact - 1} "
                 f"(no trusted checkpoint or seal covers more), so from leaf {intact} on "
                 f"they may have been rewritten as well")
    else:
        doubt = ("; no trusted checkpoint or seal covers the leaves that remain, so they may "
                 "have been rewritten as well")
    return Finding(
        "truncated",
        f"the kept checkpoint signed {kept.size} leaves, the log holds {size}: the log was "
        f"cut; the first missing leaf is {size} (its record, and with it its notification "
        f"id, is gone: it came after notification id {last}), {tail}{doubt}",
        leaf_index=size, position=None, last_intact_position=last)


def stored_material(signed: Sequence[tuple[int, Any]]) -> list[Checkpoint]:
    """The checkpoints out of ``audit.verify``'s checked list (size, (id, checkpoint))."""
    return [cp for _, (_, cp) in signed]
