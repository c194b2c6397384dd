"""The tamper-evident log (可追溯), and only that: anyone holding a published checkpoint can
prove that no event was changed, removed or slipped in.

Leaves are the stored event records in global order (RFC 6962: leaf = SHA-256(0x00‖record),
node = SHA-256(0x01‖left‖right)); checkpoints are C2SP signed notes.  May import: ``domain``
and ``store``.

======================================================  ===============================
the bytes a leaf hashes (record encoding)                ``records``
the Merkle tree hash, compact ranges, proofs (RFC 6962)  ``merkle``
the tree kept in the store, following the events         ``tree_store``
the audit tables and raw reads of the events table       ``store`` (``AuditStore``)
signed checkpoints (C2SP signed note)                    ``checkpoints``
the log's Ed25519 key, rotation                          ``logkey``
sign a checkpoint, export, prove, rotate: the verbs      ``log``
proof bundles and the offline verifier                   ``proofs``
full verification (``zhuisu verify``) and its findings   ``verify``, ``scan``, ``findings``
named failures                                           ``errors``
======================================================  ===============================
"""
