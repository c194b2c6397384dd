"""Proof bundles and the offline verifier: no database, only texts, bytes and a public key.

An inclusion bundle says "this record is leaf ``leaf_index`` of the tree this checkpoint
signed"; a consistency bundle says "the later checkpoint's tree extends the earlier one's".
Both are JSON objects a person can keep beside the checkpoint export::

    {"type": "zhuisu-inclusion-proof/v1",
     "checkpoint": "<signed note text>",
     "leaf_index": 5,
     "record": "<base64 canonical record encoding (audit.records)>",
     "proof": ["<base64 32-byte hash>", ...]}          RFC 9162 PATH, bottom-up

    {"type": "zhuisu-consistency-proof/v1",
     "old_checkpoint": "<signed note>", "new_checkpoint": "<signed note>",
     "proof": ["<base64 32-byte hash>", ...]}          RFC 9162 PROOF, bottom-up

A receipt is what a write is answered with (``runtime.followers``): the log positions of
the events it stored, each with its inclusion proof, under one checkpoint signed after
them — several inclusion proofs sharing a checkpoint::

    {"type": "zhuisu-receipt/v1",
     "checkpoint": "<signed note>" | null,              null: not yet covered (pending)
     "entries": [{"position": 1207, "leaf_index": 1206,
                  "record": "<base64 record>", "proof": ["<base64 hash>", ...]}, ...]}

A pending receipt has only the positions and leaf indexes; its proofs are fetched later
(``GET /log/proofs/inclusion?position=N``).  ``verify_receipt_bundle`` checks a receipt
(``zhuisu verify-proof`` takes it, or the whole answer of the write that holds it).

Verification, step by step, each step raising its own named error:
1. the checkpoint note carries a valid signature by a trusted log key
   (``CheckpointSignatureError``; format problems ``CheckpointFormatError``);
2. the record bytes are a canonical record (``RecordFormatError``);
3. the Merkle proof recomputes the signed root (``audit.merkle.ProofError``, saying
   expected vs. got).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit import merkle
from audit.checkpoints import Checkpoint, NoteKey, verify_checkpoint
from audit.errors import ProofBundleError, ProofInvalid
from audit.merkle import hash_leaf
from audit.records import Record, decode_record

def verify_inclusion(*args: Any) -> None:
    """``merkle.verify_inclusion``, its ``ProofError`` raised as ``ProofInvalid``."""
    try:
        merkle.verify_inclusion(*args)
    except merkle.ProofError as exc:
        raise ProofInvalid(str(exc)) from exc


def verify_consistency(*args: Any) -> None:
    """``merkle.verify_consistency``, its ``ProofError`` raised as ``ProofInvalid``."""
    try:
        merkle.verify_consistency(*args)
    except merkle.ProofError as exc:
        raise ProofInvalid(str(exc)) from exc


INCLUSION = "zhuisu-inclusion-proof/v1"
CONSISTENCY = "zhuisu-consistency-proof/v1"
RECEIPT = "zhuisu-receipt/v1"
Keys = str | NoteKey | Sequence[str | NoteKey]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProofBundleError(f"{what}: expected a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofBundleError(f"{what}: expected standard base64, got {text[:40]!r}") from exc


def _load(bundle: str | bytes | dict, kind: str, fields: Sequence[str]) -> dict:
    if isinstance(bundle, (str, bytes)):
        try:
            bundle = json.loads(bundle)
        except ValueError as exc:
            raise ProofBundleError(f"proof bundle: expected JSON, got {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("type") != kind:
        got = bundle.get("type") if isinstance(bundle, dict) else type(bundle).__name__
        raise ProofBundleError(f"proof bundle type: expected {kind!r}, got {got!r}")
    missing = [f for f in fields if f not in bundle]
    if missing:
        raise ProofBundleError(f"proof bundle: expected field {missing[0]!r}, got none")
    if not isinstance(bundle["proof"], list):
        raise ProofBundleError("proof: expected a list of base64 hashes")
    return bundle


@dataclass(frozen=True)
class VerifiedInclusion:
    checkpoint: Checkpoint
    leaf_index: int
    record: Record


def verify_inclusion_proof(checkpoint_note: str, record: bytes, leaf_index: int,
                           proof: Sequence[bytes], public_keys: Keys) -> VerifiedInclusion:
    """Check that ``record`` (canonical bytes) is leaf ``leaf_index`` of the signed tree."""
    checkpoint = verify_checkpoint(checkpoint_note, public_keys)
    decoded = decode_record(record)
    verify_inclusion(hash_leaf(record), leaf_index, checkpoint.size, list(proof), checkpoint.root)
    return VerifiedInclusion(checkpoint, leaf_index, decoded)


def verify_consistency_proof(old_note: str, new_note: str, proof: Sequence[bytes],
                             public_keys: Keys) -> tuple[Checkpoint, Checkpoint]:
    """Check that the newer signed tree extends the older one."""
    old = verify_checkpoint(old_note, public_keys)
    new = verify_checkpoint(new_note, public_keys)
    if old.origin != new.origin:
        raise ProofBundleError(f"checkpoint origin: expected {old.origin!r} in both, "
                               f"got {new.origin!r}")
    verify_consistency(old.size, new.size, list(proof), old.root, new.root)
    return old, new


@dataclass(frozen=True)
class VerifiedReceipt:
    checkpoint: Checkpoint
    entries: tuple[VerifiedInclusion, ...]


def receipt_bundle(checkpoint_note: str | None,
                   entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A receipt; each entry ``{"position", "leaf_index"[, "record": bytes, "proof": [bytes]]}``."""
    out = []
    for e in entries:
        item: dict[str, Any] = {"position": e["position"], "leaf_index": e["leaf_index"]}
        if "record" in e:
            item["record"] = _b64(e["record"])
            item["proof"] = [_b64(p) for p in e["proof"]]
        out.append(item)
    return {"type": RECEIPT, "checkpoint": checkpoint_note, "entries": out}


def verify_receipt_bundle(bundle: str | bytes | dict, public_keys: Keys) -> VerifiedReceipt:
    """Check a receipt: one signed checkpoint, and each entry's record is the leaf it names
    (at the position it names) in that checkpoint's tree."""
    if isinstance(bundle, (str, bytes)):
        try:
            bundle = json.loads(bundle)
        except ValueError as exc:
            raise ProofBundleError(f"receipt: expected JSON, got {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("type") != RECEIPT:
        got = bundle.get("type") if isinstance(bundle, dict) else type(bundle).__name__
        raise ProofBundleError(f"receipt type: expected {RECEIPT!r}, got {got!r}")
    entries = bundle.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ProofBundleError("entries: expected a non-empty list of log positions")
    note = bundle.get("checkpoint")
    if note is None:
        first = entries[0] if isinstance(entries[0], dict) else {}
        raise ProofBundleError(f"checkpoint: none yet (a pending receipt); fetch each proof "
                               f"with GET /log/proofs/inclusion?position="
                               f"{first.get('position')} once a checkpoint covers leaf "
                               f"{first.get('leaf_index')}")
    if not isinstance(note, str):
        raise ProofBundleError("checkpoint: expected the signed note text")
    checkpoint = verify_checkpoint(note, public_keys)
    verified = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or any(k not in e for k in ("position", "leaf_index",
                                                               "record", "proof")):
            raise ProofBundleError(f"entries[{i}]: expected position, leaf_index, record "
                                   f"and proof")
        if not isinstance(e["leaf_index"], int) or isinstance(e["leaf_index"], bool):
            raise ProofBundleError(f"entries[{i}].leaf_index: expected an integer, "
                                   f"got {e['leaf_index']!r}")
        if not isinstance(e["proof"], list):
            raise ProofBundleError(f"entries[{i}].proof: expected a list of base64 hashes")
        record = _unb64(e["record"], f"entries[{i}].record")
        decoded = decode_record(record)
        if decoded.position != e["position"]:
            raise ProofBundleError(f"entries[{i}].position: expected {decoded.position} (the "
                                   f"record's own), got {e['position']!r}")
        verify_inclusion(hash_leaf(record), e["leaf_index"], checkpoint.size,
                         [_unb64(p, f"entries[{i}].proof[{k}]") for k, p in enumerate(e["proof"])],
                         checkpoint.root)
        verified.append(VerifiedInclusion(checkpoint, e["leaf_index"], decoded))
    return VerifiedReceipt(checkpoint, tuple(verified))


def inclusion_bundle(checkpoint_note: str, leaf_index: int, record: bytes,
                     proof: Sequence[bytes]) -> dict[str, Any]:
    return {"type": INCLUSION, "checkpoint": checkpoint_note, "leaf_index": leaf_index,
            "record": _b64(record), "proof": [_b64(p) for p in proof]}


def consistency_bundle(old_note: str, new_note: str, proof: Sequence[bytes]) -> dict[str, Any]:
    return {"type": CONSISTENCY, "old_checkpoint": old_note, "new_checkpoint": new_note,
            "proof": [_b64(p) for p in proof]}


def verify_inclusion_bundle(bundle: str | bytes | dict, public_keys: Keys) -> VerifiedInclusion:
    """``verify_inclusion_proof`` on a JSON bundle (text or already parsed)."""
    b = _load(bundle, INCLUSION, ["checkpoint", "leaf_index", "record", "proof"])
    if not isinstance(b["leaf_index"], int) or isinstance(b["leaf_index"], bool):
        raise ProofBundleError(f"leaf_index: expected an integer, got {b['leaf_index']!r}")
    if not isinstance(b["checkpoint"], str):
        raise ProofBundleError("checkpoint: expected the signed note text")
    return verify_inclusion_proof(
        b["checkpoint"], _unb64(b["record"], "record"), b["leaf_index"],
        [_unb64(p, f"proof[{i}]") for i, p in enumerate(b["proof"])], public_keys)


def verify_consistency_bundle(bundle: str | bytes | dict,
                              public_keys: Keys) -> tuple[Checkpoint, Checkpoint]:
    """``verify_consistency_proof`` on a JSON bundle (text or already parsed)."""
    b = _load(bundle, CONSISTENCY, ["old_checkpoint", "new_checkpoint", "proof"])
    if not isinstance(b["old_checkpoint"], str) or not isinstance(b["new_checkpoint"], str):
        raise ProofBundleError("old_checkpoint, new_checkpoint: expected signed note texts")
    return verify_consistency_proof(
        b["old_checkpoint"], b["new_checkpoint"],
        [_unb64(p, f"proof[{i}]") for i, p in enumerate(b["proof"])], public_keys)


def verify_bundle(bundle: str | bytes | dict,
                  public_keys: Keys) -> VerifiedInclusion | tuple[Checkpoint, Checkpoint]:
    """Verify an inclusion or a consistency bundle, whichever ``bundle["type"]`` says."""
    if isinstance(bundle, (str, bytes)):
        try:
            bundle = json.loads(bundle)
        except ValueError as exc:
            raise ProofBundleError(f"proof bundle: expected JSON, got {exc}") from exc
    kind = bundle.get("type") if isinstance(bundle, dict) else None
    if kind == CONSISTENCY:
        return verify_consistency_bundle(bundle, public_keys)
    if kind == INCLUSION:
        return verify_inclusion_bundle(bundle, public_keys)
    raise ProofBundleError(f"proof bundle type: expected {INCLUSION!r} or {CONSISTENCY!r}, "
                           f"got {kind!r}")
