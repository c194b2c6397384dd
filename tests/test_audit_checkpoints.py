"""Signed checkpoints, the offline verifier, and the log key's life (first start, rotation).

The first half needs no database: a checkpoint text, record bytes and a public key are
enough to check a proof, and every tampering fails with a named error.  The second half
runs on SQLite and PostgreSQL (``app`` fixture): checkpoints kept, listed, exported, and
the key rotated on the record.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import log, proofs
from audit.checkpoints import (
    Checkpoint,
    NoteKey,
    follow_rotations,
    open_note,
    parse_checkpoint,
    parse_vkey,
    sign_note,
    verify_checkpoint,
    verify_rotation,
)
from audit.errors import (
    CheckpointFormatError,
    CheckpointSignatureError,
    LogKeyError,
    ProofBundleError,
    RecordFormatError,
)
from audit.logkey import read_key, write_new_key
from audit.merkle import (
    ProofError,
    consistency_proof_from_leaves,
    hash_leaf,
    inclusion_proof_from_leaves,
    root_from_leaf_hashes,
)
from audit.records import Record, encode_record
from audit.store import AuditConfig, AuditStore, log_checkpoints
from audit.verify import verify_log
from domain.application import Zhuisu

ORIGIN = "zhuisu.test/log"

# golang.org/x/mod/sumdb/note, the reference implementation: its documented example key
# and signed note.  Ed25519 is deterministic, so our note must be the same bytes.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC"
           "2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def go_private_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_signed_note_is_byte_for_byte_the_go_reference() -> None:
    assert sign_note(GO_TEXT, [("PeterNeumann", go_private_key())]) == GO_NOTE
    assert NoteKey.of_private("PeterNeumann", go_private_key()).vkey == GO_VKEY
    assert open_note(GO_NOTE, GO_VKEY)[0] == GO_TEXT


def test_vkey_whose_base64_holds_a_plus_sign_parses() -> None:
    key = parse_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert key.name == "TEST" and key.key_id.hex() == "7997405c"


def test_vkey_with_wrong_key_id_is_refused() -> None:
    with pytest.raises(CheckpointFormatError, match="key ID: expected c74f20a3"):
        parse_vkey(GO_VKEY.replace("c74f20a3", "c74f20a4"))


# a small log, built without a database ----------------------------------------------------
KEY = Ed25519PrivateKey.generate()
VKEY = NoteKey.of_private(ORIGIN, KEY).vkey
RECORDS = [encode_record(Record(p, uuid.uuid5(uuid.NAMESPACE_URL, str(p)).hex.encode(), 1,
                                b"domain.region:Region.Created", b'{"code":"%d"}' % p))
           for p in range(1, 14)]
LEAVES = [hash_leaf(r) for r in RECORDS]


def signed_checkpoint(size: int, key: Ed25519PrivateKey = KEY) -> str:
    body = Checkpoint(ORIGIN, size, root_from_leaf_hashes(LEAVES[:size]),
                      "2026-01-02T03:04:05Z").body()
    return sign_note(body, [(ORIGIN, key)])


NOTE = signed_checkpoint(13)


def bundle(index: int = 5) -> dict:
    return proofs.inclusion_bundle(NOTE, index, RECORDS[index],
                                   inclusion_proof_from_leaves(index, LEAVES))


def test_checkpoint_text_is_origin_size_root_and_time_lines() -> None:
    lines = NOTE.split("\n")
    assert lines[:4] == [ORIGIN, "13", base64.b64encode(root_from_leaf_hashes(LEAVES)).decode(),
                         "time 2026-01-02T03:04:05Z"]
    assert lines[4] == "" and lines[5].startswith(f"— {ORIGIN} ")
    assert parse_checkpoint(NOTE[:NOTE.index("\n\n") + 1]).size == 13


@pytest.mark.parametrize("body, error", [
    ("zhuisu.test/log\n013\nAAAA\ntime 2026-01-02T03:04:05Z\n", "leading zeroes"),
    ("zhuisu.test/log\n13\nAAAA\ntime 2026-01-02T03:04:05Z\n", "root hash: expected 32 bytes"),
    ("zhuisu.test/log\n13\n", "expected origin, size, root and time"),
    ("zhuisu test\n1\n" + "A" * 43 + "=\ntime 2026-01-02T03:04:05Z\n", "without spaces"),
    ("zhuisu.test/log\n1\n" + "A" * 43 + "=\ntime yesterday\n", "time line"),
])
def test_malformed_checkpoint_text_is_refused(body: str, error: str) -> None:
    with pytest.raises(CheckpointFormatError, match=error):
        parse_checkpoint(body)


def test_every_leaf_is_proven_offline_from_checkpoint_record_and_key() -> None:
    for index in range(13):
        result = proofs.verify_inclusion_bundle(json.dumps(bundle(index)), VKEY)
        assert result.record.position == index + 1 and result.checkpoint.size == 13


def test_consistency_of_every_earlier_checkpoint_is_proven_offline() -> None:
    for size in range(0, 14):
        b = proofs.consistency_bundle(signed_checkpoint(size), NOTE,
                                      consistency_proof_from_leaves(size, LEAVES))
        old, new = proofs.verify_consistency_bundle(b, VKEY)
        assert (old.size, new.size) == (size, 13)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(RECORDS[5]) - 1), st.integers(1, 255))
def test_any_changed_record_byte_fails_the_proof(at: int, flip: int) -> None:
    b = bundle(5)
    record = bytearray(RECORDS[5])
    record[at] ^= flip
    b["record"] = base64.b64encode(bytes(record)).decode()
    with pytest.raises((ProofError, RecordFormatError)):
        proofs.verify_inclusion_bundle(b, VKEY)


def test_changed_proof_hash_fails_with_proof_error_saying_expected_and_got() -> None:
    b = bundle(5)
    h = bytearray(base64.b64decode(b["proof"][1]))
    h[0] ^= 1
    b["proof"][1] = base64.b64encode(bytes(h)).decode()
    with pytest.raises(ProofError, match="root mismatch: expected .*, got "):
        proofs.verify_inclusion_bundle(b, VKEY)


def test_proof_for_another_leaf_index_fails() -> None:
    b = bundle(5)
    b["leaf_index"] = 4
    with pytest.raises(ProofError):
        proofs.verify_inclusion_bundle(b, VKEY)


def test_checkpoint_with_changed_text_fails_its_signature() -> None:
    b = bundle(5)
    b["checkpoint"] = NOTE.replace("\n13\n", "\n12\n")
    with pytest.raises(CheckpointSignatureError, match="does not verify"):
        proofs.verify_inclusion_bundle(b, VKEY)


def test_checkpoint_signed_by_another_key_fails() -> None:
    b = bundle(5)
    b["checkpoint"] = signed_checkpoint(13, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointSignatureError, match="expected a signature by one of"):
        proofs.verify_inclusion_bundle(b, VKEY)


def test_malformed_bundle_fails_with_bundle_error() -> None:
    with pytest.raises(ProofBundleError, match="type"):
        proofs.verify_inclusion_bundle({"type": "other"}, VKEY)
    b = bundle(5)
    b["record"] = "not base64!"
    with pytest.raises(ProofBundleError, match="record"):
        proofs.verify_inclusion_bundle(b, VKEY)


def test_consistency_with_a_forked_tree_fails() -> None:
    forked = LEAVES[:3] + [hash_leaf(b"forged")] + LEAVES[4:]
    body = Checkpoint(ORIGIN, 13, root_from_leaf_hashes(forked), "2026-01-02T03:04:05Z").body()
    b = proofs.consistency_bundle(signed_checkpoint(7), sign_note(body, [(ORIGIN, KEY)]),
                                  consistency_proof_from_leaves(7, forked))
    with pytest.raises(ProofError, match="root1 mismatch"):
        proofs.verify_consistency_bundle(b, VKEY)


# the log on a store --------------------------------------------------------------------
@pytest.fixture
def audit(app: Zhuisu, tmp_path: Path):
    store = AuditStore(AuditConfig(app.database_url, tmp_path / "keys" / "log-key", ORIGIN))
    with app.batch():
        app.create_region("52", "贵州省", "province", None)
        for i in range(6):
            app.create_region(f"52{i:02d}", f"市{i}", "city", "52")
    yield store
    store.close()


def test_log_key_is_made_on_first_start_with_mode_0600(audit: AuditStore) -> None:
    key_file = audit.config.key_file
    assert not key_file.exists()
    vkey = log.public_key(audit)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert log.public_key(audit) == vkey
    assert verify_checkpoint(log.make_checkpoint(audit).note, vkey).size == 7


def test_log_key_file_readable_by_others_is_refused(audit: AuditStore) -> None:
    log.public_key(audit)
    os.chmod(audit.config.key_file, 0o644)
    with pytest.raises(LogKeyError, match="expected mode 0600, got 0644"):
        log.make_checkpoint(audit)


def test_a_key_file_that_is_not_the_logs_key_is_refused(audit: AuditStore) -> None:
    vkey = log.public_key(audit)
    audit.config.key_file.unlink()
    with pytest.raises(LogKeyError, match=f"expected the key {re.escape(vkey)}, got no file"):
        log.make_checkpoint(audit)
    write_new_key(audit.config.key_file)
    with pytest.raises(LogKeyError, match=f"expected the log's current key {re.escape(vkey)}"):
        log.make_checkpoint(audit)


def test_checkpoints_are_kept_listed_and_exported_with_the_public_key(
        app: Zhuisu, audit: AuditStore) -> None:
    first = log.make_checkpoint(audit)
    app.create_region("5290", "市90", "city", "52")
    second = log.make_checkpoint(audit)
    assert [c.id for c in log.list_checkpoints(audit)] == [first.id, second.id]
    assert log.list_checkpoints(audit, after_id=first.id)[0].checkpoint.size == 8
    assert log.get_checkpoint(audit).id == second.id
    exported = json.loads(log.export_checkpoints(audit))
    assert exported["public_key"] == log.public_key(audit)
    assert [c["note"] for c in exported["checkpoints"]] == [first.note, second.note]
    text = log.export_checkpoints(audit, fmt="text")
    assert log.public_key(audit) in text and second.note.rstrip("\n") in text


def test_proofs_from_the_store_verify_offline(app: Zhuisu, audit: AuditStore) -> None:
    first = log.make_checkpoint(audit)
    app.create_region("5290", "市90", "city", "52")
    log.make_checkpoint(audit)
    vkey = log.public_key(audit)
    for position in range(1, 9):
        b = json.loads(json.dumps(log.prove_inclusion(audit, position=position)))
        assert proofs.verify_inclusion_bundle(b, vkey).record.position == position
    by_id = log.prove_inclusion(audit, originator_id=app.region("5290").id, version=1,
                                checkpoint_id=None)
    assert proofs.verify_inclusion_bundle(by_id, vkey).record.position == 8
    consistency = log.prove_consistency(audit, first.id)
    assert proofs.verify_consistency_bundle(consistency, vkey)[1].size == 8


def test_key_rotation_is_a_checkpoint_signed_by_old_and_new_key(app: Zhuisu,
                                                                 audit: AuditStore) -> None:
    before = log.make_checkpoint(audit)
    old = log.public_key(audit)
    rotation = log.rotate_log_key(audit)
    new = log.public_key(audit)
    assert new != old and verify_rotation(rotation.note, old) == parse_vkey(new)
    assert stat.S_IMODE(audit.config.key_file.stat().st_mode) == 0o600
    history = log.log_key_history(audit)
    assert [k.key.vkey for k in history] == [old, new]
    assert history[0].valid_until == history[1].valid_from == rotation.checkpoint.time
    assert history[1].introduced_by == rotation.id
    app.create_region("5290", "市90", "city", "52")
    after = log.make_checkpoint(audit)
    verify_checkpoint(before.note, old)
    verify_checkpoint(after.note, new)
    with pytest.raises(CheckpointSignatureError):
        verify_checkpoint(after.note, old)
    assert json.loads(log.export_checkpoints(audit))["keys"][1]["introduced_by_checkpoint"] == \
        rotation.id
    assert verify_log(audit).ok


def test_rotation_note_not_signed_by_the_new_key_is_refused(audit: AuditStore) -> None:
    log.make_checkpoint(audit)
    old = log.public_key(audit)
    note = log.rotate_log_key(audit).note
    with pytest.raises(CheckpointSignatureError, match="missing"):
        verify_rotation(note[:note.rindex("— ")], old)


def test_the_documented_checkpoint_example_verifies_with_its_vkey() -> None:
    note = ("zhuisu.example/log\n21\nGiZgImw3/iPOC7qhqF1nOE5DM3ldjC9tndLtolx0Z40=\n"
            "time 2026-11-23T15:28:01Z\n\n— zhuisu.example/log 0zxfuK1bCeDwg5cfGbeXjmeCF/flfP6H1I"
            "hHBvYCryVtLi6t9bpyR6CULGByBk5DXBNgelwgy7MIKcbMO367J4yLSAw=\n")
    checkpoint = verify_checkpoint(
        note, "zhuisu.example/log+d33c5fb8+AZygo7aV7+b+MLjgWazTCy9WT3kYsa7GuwAUe0f18rLE")
    assert (checkpoint.size, checkpoint.time) == (21, "2026-11-23T15:28:01Z")


def test_rotation_interrupted_between_commit_and_rename_is_finished_on_next_start(
        audit: AuditStore) -> None:
    log.make_checkpoint(audit)
    log.rotate_log_key(audit)
    new = log.public_key(audit)
    key_file = audit.config.key_file
    os.replace(key_file, key_file.with_name(key_file.name + ".new"))  # the rename never ran
    write_new_key(key_file)  # and the old key is still in its place
    verify_checkpoint(log.make_checkpoint(audit).note, new)
    assert not key_file.with_name(key_file.name + ".new").exists()


def test_checkpoint_signed_by_a_retired_key_after_its_retirement_is_reported(
        audit: AuditStore) -> None:
    log.make_checkpoint(audit)
    old_private = read_key(audit.config.key_file)
    rotation = log.rotate_log_key(audit)
    late = Checkpoint(ORIGIN, rotation.checkpoint.size, rotation.checkpoint.root,
                      "2999-01-01T00:00:00Z")
    with audit.engine.begin() as conn:
        conn.execute(log_checkpoints.insert().values(
            kind="checkpoint", origin=ORIGIN, tree_size=late.size, root_hash=late.root,
            time=late.time, note=sign_note(late.body(), [(ORIGIN, old_private)])))
    result = verify_log(audit)
    assert result.kind == "checkpoint" and "expected a key valid then" in result.message


def test_a_verifier_holding_the_first_key_follows_rotations_in_the_export(
        app: Zhuisu, audit: AuditStore) -> None:
    log.make_checkpoint(audit)
    first = log.public_key(audit)
    log.rotate_log_key(audit)
    log.rotate_log_key(audit)
    app.create_region("5290", "市90", "city", "52")
    log.make_checkpoint(audit)
    exported = json.loads(log.export_checkpoints(audit))
    trusted = follow_rotations([c["note"] for c in exported["checkpoints"]], first)
    assert [k.vkey for k in trusted] == [k["vkey"] for k in exported["keys"]]
    bundle = json.dumps(log.prove_inclusion(audit, position=8))
    assert proofs.verify_bundle(bundle, trusted).record.position == 8
    with pytest.raises(CheckpointSignatureError):
        proofs.verify_bundle(bundle, first)
    assert follow_rotations([c["note"] for c in exported["checkpoints"]],
                            NoteKey.of_private(ORIGIN, KEY)) == [NoteKey.of_private(ORIGIN, KEY)]
