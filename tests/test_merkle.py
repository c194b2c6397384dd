"""Tests for audit.merkle: published RFC 6962 vectors, an RFC reference, properties.

Known-answer vectors are the RFC 6962 test data of certificate-transparency /
transparency-dev/merkle (testonly/constants.go and proof/verify_test.go).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    consistency_proof_from_leaves,
    hash_children,
    hash_leaf,
    inclusion_proof,
    inclusion_proof_from_leaves,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAF_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
LEAVES = [hash_leaf(d) for d in LEAF_INPUTS]

# Root hash of the tree over the first n leaf inputs, n = 0..8.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# NODES[level][index]: every perfect subtree of the 8-leaf tree.
NODES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# Compact-range frontier (right-edge perfect subtree roots) for sizes 0..8.
FRONTIERS = [
    [],
    [NODES[0][0]],
    [NODES[1][0]],
    [NODES[1][0], NODES[0][2]],
    [NODES[2][0]],
    [NODES[2][0], NODES[0][4]],
    [NODES[2][0], NODES[1][2]],
    [NODES[2][0], NODES[1][2], NODES[0][6]],
    [NODES[3][0]],
]

# (leaf index, tree size, proof); the published vectors number leaves from 1.
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 8, [NODES[0][1], NODES[1][1], NODES[2][1]]),
    (5, 8, [NODES[0][4], NODES[1][3], NODES[2][0]]),
    (2, 3, [NODES[1][0]]),
    (1, 5, [NODES[0][0], NODES[1][1], NODES[0][4]]),
]

# (size1, size2, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, [NODES[0][1], NODES[1][1], NODES[2][1]]),
    (6, 8, [NODES[1][2], NODES[1][3], NODES[2][0]]),
    (2, 5, [NODES[1][1], NODES[0][4]]),
    (6, 7, [NODES[1][2], NODES[0][6], NODES[2][0]]),
]


# --- Naive reference, written straight from RFC 9162 sections 2.1.1-2.1.4. ---


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]  # Already a leaf hash.
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def make_leaves(n: int) -> list[bytes]:
    return [hash_leaf(i.to_bytes(4, "big")) for i in range(n)]


def flip_byte(value: bytes, byte: int) -> bytes:
    return value[:byte] + bytes([value[byte] ^ 0x01]) + value[byte + 1 :]


def flip(proof: list[bytes], element: int, byte: int) -> list[bytes]:
    return [flip_byte(p, byte) if i == element else p for i, p in enumerate(proof)]


def node_store(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """(level, index) -> hash, filled the way a DB store would be: from append()."""
    tree, store = CompactRange(), {}
    for leaf in leaves:
        store.update(((level, index), node) for level, index, node in tree.append(leaf))
    return store


# --- Hashing rule and known answers. ---


def test_empty_root_is_sha256_of_empty_string():
    assert EMPTY_ROOT == ROOTS[0] == hashlib.sha256(b"").digest()
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_leaf_and_node_hashes_use_0x00_and_0x01_prefixes():
    assert hash_leaf(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert hash_children(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert hash_leaf(b"") == NODES[0][0]


@pytest.mark.parametrize("size", range(9))
def test_root_matches_published_rfc6962_vector(size):
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]
    assert ref_mth(LEAVES[:size]) == ROOTS[size]


def test_perfect_subtree_nodes_match_published_vectors():
    store = node_store(LEAVES)
    expected = {(lvl, i): node for lvl, row in enumerate(NODES) for i, node in enumerate(row)}
    assert store == expected


@pytest.mark.parametrize("size", range(9))
def test_compact_range_frontier_matches_published_vector(size):
    tree = CompactRange()
    for leaf in LEAVES[:size]:
        tree.append(leaf)
    assert (tree.size, tree.hashes) == (size, FRONTIERS[size])
    assert tree.root() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_proof_matches_published_vector(index, size, proof):
    assert inclusion_proof_from_leaves(index, LEAVES[:size]) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size]) is None


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proof_matches_published_vector(size1, size2, proof):
    assert consistency_proof_from_leaves(size1, LEAVES[:size2]) == proof
    assert verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2]) is None


@pytest.mark.parametrize("size", range(1, 41))
def test_proofs_equal_naive_rfc_reference(size):
    leaves = make_leaves(size)
    assert root_from_leaf_hashes(leaves) == ref_mth(leaves)
    for index in range(size):
        assert inclusion_proof_from_leaves(index, leaves) == ref_path(index, leaves)
    for size1 in range(1, size):
        assert consistency_proof_from_leaves(size1, leaves) == ref_subproof(size1, leaves, True)


def test_proofs_from_node_store_equal_proofs_from_leaves():
    leaves = make_leaves(77)
    store = node_store(leaves)
    lookups = []

    def get_node(level: int, index: int) -> bytes:
        lookups.append((level, index))
        return store[(level, index)]

    assert inclusion_proof(45, 77, get_node) == inclusion_proof_from_leaves(45, leaves)
    assert consistency_proof(45, 77, get_node) == consistency_proof_from_leaves(45, leaves)
    assert len(lookups) <= 4 * (77).bit_length()  # O(log n) lookups, not O(n).


# --- Error reporting. ---


def test_proof_error_is_value_error_and_names_expected_and_got_hex():
    proof = INCLUSION_VECTORS[1][2]
    with pytest.raises(ValueError) as excinfo:
        verify_inclusion(LEAVES[0], 0, 8, proof, ROOTS[7])
    assert isinstance(excinfo.value, ProofError)
    assert f"expected {ROOTS[7].hex()}, got {ROOTS[8].hex()}" in str(excinfo.value)


def test_inclusion_proof_fails_for_index_not_below_size():
    with pytest.raises(ProofError, match="expected 0 <= index < 8, got 8"):
        verify_inclusion(LEAVES[0], 8, 8, [], ROOTS[8])
    with pytest.raises(ProofError):
        verify_inclusion(EMPTY_ROOT, 0, 0, [], EMPTY_ROOT)


def test_inclusion_proof_fails_for_wrong_length_hashes():
    with pytest.raises(ProofError, match="expected 32 bytes, got 0"):
        verify_inclusion(b"", 0, 1, [], b"")
    with pytest.raises(ProofError, match="proof hash"):
        verify_inclusion(LEAVES[0], 0, 2, [LEAVES[1][:31]], ROOTS[2])


@pytest.mark.parametrize("extra", [EMPTY_ROOT, ROOTS[8]])
def test_inclusion_proof_fails_with_extra_or_missing_hashes(extra):
    index, size, proof = INCLUSION_VECTORS[2]
    for bad in ([*proof, extra], [extra, *proof], proof[:-1]):
        with pytest.raises(ProofError, match="inclusion proof length: expected 3 hashes"):
            verify_inclusion(LEAVES[index], index, size, bad, ROOTS[size])


def test_consistency_trivial_cases_need_empty_proof_and_matching_roots():
    assert verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT) is None
    assert verify_consistency(0, 5, [], EMPTY_ROOT, ROOTS[5]) is None
    assert verify_consistency(5, 5, [], ROOTS[5], ROOTS[5]) is None
    with pytest.raises(ProofError, match="expected 0 hashes, got 1"):
        verify_consistency(5, 5, [EMPTY_ROOT], ROOTS[5], ROOTS[5])
    with pytest.raises(ProofError, match=f"expected {ROOTS[5].hex()}, got {ROOTS[4].hex()}"):
        verify_consistency(5, 5, [], ROOTS[4], ROOTS[5])
    with pytest.raises(ProofError, match=f"expected {EMPTY_ROOT.hex()}"):
        verify_consistency(0, 5, [], ROOTS[1], ROOTS[5])
    with pytest.raises(ProofError, match="expected 0 <= size1 <= size2, got 2, 1"):
        verify_consistency(2, 1, [], ROOTS[2], ROOTS[1])


def test_consistency_proof_fails_when_empty_for_growing_tree():
    with pytest.raises(ProofError, match="consistency proof length: expected 1 hashes, got 0"):
        verify_consistency(1, 2, [], ROOTS[1], ROOTS[2])


def test_consistency_proof_fails_for_swapped_roots():
    size1, size2, proof = CONSISTENCY_VECTORS[2]
    with pytest.raises(ProofError, match="root1 mismatch"):
        verify_consistency(size1, size2, proof, ROOTS[size2], ROOTS[size1])


def test_inclusion_proof_does_not_bind_tree_size_without_root():
    # Documented RFC behaviour: a proof for leaf 0 of 3 also "verifies" at
    # size 4 against the size-3 root, so sizes must be authenticated with roots.
    assert verify_inclusion(LEAVES[0], 0, 4, [NODES[0][1], LEAVES[2]], ROOTS[3]) is None


def test_compact_range_round_trips_through_size_and_hashes():
    tree = CompactRange()
    for leaf in make_leaves(13):
        tree.append(leaf)
    restored = CompactRange(tree.size, list(tree.hashes))
    leaf = hash_leaf(b"next")
    assert restored.append(leaf) == tree.append(leaf)
    assert restored == tree and restored.root() == root_from_leaf_hashes([*make_leaves(13), leaf])


def test_compact_range_rejects_inconsistent_state():
    with pytest.raises(ValueError, match="expected 2 hashes, got 1"):
        CompactRange(3, [EMPTY_ROOT])
    with pytest.raises(ValueError):
        CompactRange(-1, [])
    with pytest.raises(ProofError):
        CompactRange(1, [b"short"])


# --- Properties over random trees (sizes up to 300). ---

TREE = 300
ALL_LEAVES = make_leaves(TREE)
ALL_ROOTS = [root_from_leaf_hashes(ALL_LEAVES[:n]) for n in range(TREE + 1)]
sizes = st.integers(min_value=1, max_value=TREE)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(st.integers(min_value=0, max_value=TREE))
def test_compact_range_root_equals_batch_root_at_every_size(size):
    tree = CompactRange()
    assert tree.root() == ALL_ROOTS[0]
    for n, leaf in enumerate(ALL_LEAVES[:size], start=1):
        tree.append(leaf)
        assert tree.root() == ALL_ROOTS[n]


@FAST
@given(sizes)
def test_every_inclusion_proof_verifies(size):
    leaves = ALL_LEAVES[:size]
    store = node_store(leaves)
    for index in range(size):
        proof = inclusion_proof(index, size, lambda lvl, i: store[(lvl, i)])
        verify_inclusion(leaves[index], index, size, proof, ALL_ROOTS[size])


@FAST
@given(st.integers(min_value=0, max_value=TREE))
def test_every_consistency_proof_verifies(size2):
    store = node_store(ALL_LEAVES[:size2])
    for size1 in range(size2 + 1):
        proof = consistency_proof(size1, size2, lambda lvl, i: store[(lvl, i)])
        verify_consistency(size1, size2, proof, ALL_ROOTS[size1], ALL_ROOTS[size2])


@st.composite
def leaf_in_tree(draw):
    size = draw(st.integers(min_value=2, max_value=TREE))
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@FAST
@given(leaf_in_tree(), st.data())
def test_inclusion_proof_fails_when_any_byte_is_flipped(tree, data):
    size, index = tree
    proof = inclusion_proof_from_leaves(index, ALL_LEAVES[:size])
    element = data.draw(st.integers(0, len(proof) - 1))
    byte = data.draw(st.integers(0, 31))
    with pytest.raises(ProofError, match="root mismatch"):
        verify_inclusion(ALL_LEAVES[index], index, size, flip(proof, element, byte), ALL_ROOTS[size])
    with pytest.raises(ProofError):
        verify_inclusion(flip_byte(ALL_LEAVES[index], byte), index, size, proof, ALL_ROOTS[size])


@FAST
@given(leaf_in_tree(), st.data())
def test_inclusion_proof_fails_for_wrong_index(tree, data):
    size, index = tree
    proof = inclusion_proof_from_leaves(index, ALL_LEAVES[:size])
    wrong = data.draw(st.integers(-1, size + 1).filter(lambda i: i != index))
    with pytest.raises(ProofError):
        verify_inclusion(ALL_LEAVES[index], wrong, size, proof, ALL_ROOTS[size])


@FAST
@given(leaf_in_tree())
def test_inclusion_proof_fails_for_wrong_size(tree):
    size, index = tree
    proof = inclusion_proof_from_leaves(index, ALL_LEAVES[:size])
    for wrong in (size * 2, size // 2, index):  # index: leaf no longer in the tree.
        with pytest.raises(ProofError):
            verify_inclusion(ALL_LEAVES[index], index, wrong, proof, ALL_ROOTS[size])


@st.composite
def growing_trees(draw):
    size2 = draw(st.integers(min_value=2, max_value=TREE))
    return draw(st.integers(min_value=1, max_value=size2 - 1)), size2


@FAST
@given(growing_trees(), st.data())
def test_consistency_proof_fails_when_any_byte_is_flipped(sizes_, data):
    size1, size2 = sizes_
    proof = consistency_proof_from_leaves(size1, ALL_LEAVES[:size2])
    element = data.draw(st.integers(0, len(proof) - 1))
    byte = data.draw(st.integers(0, 31))
    with pytest.raises(ProofError, match="mismatch"):
        verify_consistency(size1, size2, flip(proof, element, byte), ALL_ROOTS[size1], ALL_ROOTS[size2])
    with pytest.raises(ProofError, match="mismatch"):
        verify_consistency(size1, size2, proof, flip_byte(ALL_ROOTS[size1], byte), ALL_ROOTS[size2])


@FAST
@given(growing_trees(), st.data())
def test_consistency_proof_fails_for_wrong_old_size(sizes_, data):
    size1, size2 = sizes_
    proof = consistency_proof_from_leaves(size1, ALL_LEAVES[:size2])
    wrong = data.draw(st.integers(0, size2 + 1).filter(lambda n: n != size1))
    with pytest.raises(ProofError):
        verify_consistency(wrong, size2, proof, ALL_ROOTS[size1], ALL_ROOTS[size2])


@FAST
@given(growing_trees())
def test_consistency_proof_fails_for_wrong_new_size(sizes_):
    size1, size2 = sizes_
    proof = consistency_proof_from_leaves(size1, ALL_LEAVES[:size2])
    for wrong in (size2 * 2, size2 // 2):
        with pytest.raises(ProofError):
            verify_consistency(size1, wrong, proof, ALL_ROOTS[size1], ALL_ROOTS[size2])
