"""The tamper-evident log (可追溯), and only that: anyone holding a published checkpoint can
prove that no event was changed, removed or slipped in.

Leaves are the stored event records in global order (RFC 6962: leaf = SHA-256(0x00‖record),
node = SHA-256(0x01‖left‖right)); checkpoints are C2SP signed notes.  Nothing the store
holds is taken on its word: a record's signatures are checked before it becomes a leaf,
log keys are trusted from outside the store, snapshots are replayed.  May import:
``domain`` and ``store``.

======================================================  ===============================
the bytes a leaf hashes (record encoding)                ``records``
the Merkle tree hash, compact ranges, proofs (RFC 6962)  ``merkle``
the tree kept in the store, following the events         ``tree_store``
the audit tables and raw reads of the events table       ``store`` (``AuditStore``)
signed checkpoints (C2SP signed note)                    ``checkpoints``
the log's Ed25519 key, rotation                          ``logkey``
sign a checkpoint, export, prove, rotate: the verbs      ``log``
proof bundles and the offline verifier                   ``proofs``
a batch row's proof (支付令 row → manifest → checkpoint)  ``batch_proofs``
full verification (``zhuisu verify``) and its findings   ``verify``, ``scan``, ``findings``
stored signatures checked again (tree, ``--signatures``)  ``signatures``
which log keys to trust; the key history                 ``keyhistory``
checkpoints kept outside the store; locating a rewrite   ``kept``
snapshots held against a replay of their aggregate       ``snapshots``
the server's own re-verification, page by page           ``sweep``
the integrity alarm (完整性告警), kept in the store      ``alarm``
a write's receipt: positions, checkpoint, proofs         ``receipts``
chain heads of other tables signed by checkpoints        ``chains``
named failures                                           ``errors``
======================================================  ===============================
"""
