"""RFC 6962 / RFC 9162 Merkle Tree Hash, incremental tree state and proofs.

Pure functions only: no database, no I/O.

Hashing rule (RFC 9162 section 2.1.1, identical to RFC 6962 section 2.1),
with HASH = SHA-256 and D[n] = (d0, ..., d{n-1}) the list of leaf inputs::

    MTH({})    = SHA-256()                                   (EMPTY_ROOT)
    MTH({d0})  = SHA-256(0x00 || d0)                         (hash_leaf)
    MTH(D[n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) (hash_children)

where k is the largest power of two strictly smaller than n (so the left
subtree is always perfect). The 0x00 / 0x01 prefixes separate leaves from
interior nodes, so no leaf can be confused with an interior node.

Node addressing: node (level, index) is the root of the perfect subtree of
2**level leaves starting at leaf index * 2**level; (0, i) is the hash of leaf
i. Every hash in a proof or in a tree's frontier is either such a node or is
derived from a few of them, so a store of perfect-subtree node hashes can
serve any proof with O(log n) lookups through ``get_node(level, index)``.

Inclusion proofs are PATH(m, D[n]) (RFC 9162 section 2.1.3.1) and
consistency proofs are PROOF(m, D[n]) (section 2.1.4.1), both ordered from
the bottom of the tree upwards. Verification follows sections 2.1.3.2 and
2.1.4.2 step by step and reports every failure as ``ProofError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeGetter = Callable[[int, int], bytes]
"""``get_node(level, index)``: hash of the perfect subtree of 2**level leaves at index * 2**level."""


class ProofError(ValueError):
    """A Merkle proof does not verify, or a hash or tree size is malformed."""


def hash_leaf(data: bytes) -> bytes:
    """Leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class CompactRange:
    """Incremental Merkle tree state over leaves [0, size).

    ``hashes`` is the frontier: the roots of the perfect subtrees on the
    tree's right edge, largest (leftmost) first, one per set bit of ``size``.
    ``(size, hashes)`` is the whole persistent state: store those two fields
    and restore with ``CompactRange(size, hashes)``.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"tree size: expected >= 0, got {self.size}")
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"frontier of size {self.size}: expected {self.size.bit_count()} "
                f"hashes, got {len(self.hashes)}"
            )
        for h in self.hashes:
            _check_hash("frontier hash", h)
        self.hashes = list(self.hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash (amortised O(1), worst case O(log n)).

        Returns the perfect-subtree nodes completed by this leaf as
        ``(level, index, hash)``, the leaf itself first, for a node store.
        """
        _check_hash("leaf hash", leaf_hash)
        node, level, index = leaf_hash, 0, self.size
        created = [(0, index, node)]
        while index & 1:
            node = hash_children(self.hashes.pop(), node)
            level, index = level + 1, index >> 1
            created.append((level, index, node))
        self.hashes.append(node)
        self.size += 1
        return created

    def root(self) -> bytes:
        """MTH of the leaves appended so far (O(log n))."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            root = hash_children(h, root)
        return root


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, in O(n) time and O(log n) space."""
    tree = CompactRange()
    for leaf_hash in leaf_hashes:
        tree.append(leaf_hash)
    return tree.root()


def _subtree_root(lo: int, hi: int, get_node: NodeGetter) -> bytes:
    """MTH(D[lo:hi]) where lo is aligned to a power of two >= hi - lo."""
    nodes = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        nodes.append(get_node(level, lo >> level))
        lo += 1 << level
    root = nodes.pop()
    while nodes:
        root = hash_children(nodes.pop(), root)
    return root


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """PATH(index, D[size]), bottom-up, using O(log size) node lookups."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(_subtree_root(mid, hi, get_node))
            hi = mid
        else:
            path.append(_subtree_root(lo, mid, get_node))
            lo = mid
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, get_node: NodeGetter) -> list[bytes]:
    """PROOF(size1, D[size2]), bottom-up; empty if size1 is 0 or size2."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"tree sizes must satisfy 0 <= size1 <= size2, got {size1}, {size2}")
    if size1 in (0, size2):
        return []
    path = []
    lo, hi, old_root_known = 0, size2, True  # SUBPROOF flag b.
    while hi != size1:
        mid = lo + _split(hi - lo)
        if size1 <= mid:
            path.append(_subtree_root(mid, hi, get_node))
            hi = mid
        else:
            path.append(_subtree_root(lo, mid, get_node))
            lo, old_root_known = mid, False
    if not old_root_known:
        path.append(_subtree_root(lo, hi, get_node))
    path.reverse()
    return path


def _node_getter(leaf_hashes: Sequence[bytes]) -> NodeGetter:
    """Build every perfect-subtree node of the tree over leaf_hashes (O(n))."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([hash_children(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return lambda level, index: levels[level][index]


def inclusion_proof_from_leaves(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the tree over all of leaf_hashes."""
    return inclusion_proof(index, len(leaf_hashes), _node_getter(leaf_hashes))


def consistency_proof_from_leaves(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the first size1 leaves to all of leaf_hashes."""
    return consistency_proof(size1, len(leaf_hashes), _node_getter(leaf_hashes))


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what}: expected {HASH_SIZE} bytes, got {len(value)} ({value.hex()})")


def _check_root(what: str, expected: bytes, got: bytes) -> None:
    if got != expected:
        raise ProofError(f"{what} mismatch: expected {expected.hex()}, got {got.hex()}")


def _length_error(what: str, expected: int, proof: Sequence[bytes]) -> ProofError:
    return ProofError(f"{what} length: expected {expected} hashes, got {len(proof)}")


def _decomp_inclusion(index: int, size: int) -> tuple[int, int]:
    """(inner, border) node counts of PATH(index, D[size])."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf_hash is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 section 2.1.3.2. Returns None or raises ProofError.
    """
    for what, h in [("leaf hash", leaf_hash), ("root", root), *(("proof hash", p) for p in proof)]:
        _check_hash(what, h)
    # Step 1: leaf_index must be smaller than tree_size.
    if not 0 <= index < size:
        raise ProofError(f"leaf index: expected 0 <= index < {size}, got {index}")
    expected_length = sum(_decomp_inclusion(index, size))
    # Steps 2-3.
    fn, sn, r = index, size - 1, leaf_hash
    # Step 4.
    for p in proof:
        if sn == 0:  # 4a: proof longer than the path to the root.
            raise _length_error("inclusion proof", expected_length, proof)
        if fn & 1 or fn == sn:  # 4b: p is a left sibling.
            r = hash_children(p, r)
            while not fn & 1 and fn != 0:  # Skip levels with no right sibling.
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c.
    # Step 5: proof must reach the root, and the root must match.
    if sn != 0:
        raise _length_error("inclusion proof", expected_length, proof)
    _check_root("root", root, r)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1).

    RFC 9162 section 2.1.4.2 for 0 < size1 < size2. Outside that range the
    proof must be empty: size1 == 0 requires root1 == EMPTY_ROOT, and
    size1 == size2 requires root1 == root2. Returns None or raises ProofError.
    """
    for what, h in [("root1", root1), ("root2", root2), *(("proof hash", p) for p in proof)]:
        _check_hash(what, h)
    if not 0 <= size1 <= size2:
        raise ProofError(f"tree sizes: expected 0 <= size1 <= size2, got {size1}, {size2}")
    if size1 == 0 or size1 == size2:
        if proof:
            raise _length_error("consistency proof", 0, proof)
        if size1 == 0:
            _check_root("empty tree root1", EMPTY_ROOT, root1)
        if size1 == size2:
            _check_root("root1 of equal-size trees", root2, root1)
        return
    # Expected length, for error messages only (RFC 9162 section 2.1.4.1).
    inner, border = _decomp_inclusion(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    expected_length = int(size1 != 1 << shift) + inner - shift + border
    path = list(proof)
    # Step 1.
    if not path:
        raise _length_error("consistency proof", expected_length, proof)
    # Step 2: the old tree is itself a node of the new tree.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # Steps 3-4.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:  # 6a: proof longer than the path to the root.
            raise _length_error("consistency proof", expected_length, proof)
        if fn & 1 or fn == sn:  # 6b: c is a left sibling, inside both trees.
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:  # c is a right sibling, only in the new tree.
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # Step 7.
    if sn != 0:
        raise _length_error("consistency proof", expected_length, proof)
    _check_root("root1", root1, fr)
    _check_root("root2", root2, sr)
