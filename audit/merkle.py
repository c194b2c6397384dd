"""RFC 6962 / RFC 9162 Merkle trees: the log's tree uses the domain's pure functions.

The hashing rule, proofs and their verification live in ``domain.merkle`` (pure, no I/O),
because the domain itself commits to the rows of a payment batch (``domain.batch``) with
the same tree; this module keeps the name the audit package has always imported.
"""

from domain.merkle import (  # noqa: F401
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    NodeGetter,
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
