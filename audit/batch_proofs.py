"""Batch-row proofs (``zhuisu-batch-row/v1``): one payment of a signed batch, proven offline.

A row of a payment batch (支付令 + 分户清单, ``domain.batch``) is its own event, and its
batch's manifest another; the officials signed the manifest only, which commits to the
rows by Merkle root.  A batch-row bundle lets anyone check, with nothing but the log's
public key (and, optionally, the officials' public keys), that

1. both records — the manifest (``FundAccount.BatchOrdered``) and the row
   (``FundAccount.Disbursed``) — are leaves of the tree a signed checkpoint commits to;
2. the row record decodes to the row given (``domain.batch.payment_row_of``), of that
   batch, at that index, on the same account;
3. the row's leaf (``domain.batch.row_leaf``) folds with the path to the manifest's
   ``rows_root`` at its index among ``row_count`` rows;
4. the manifest record carries that root, that count, and the signed content and
   signatures given;
5. (``officials`` given) every signature verifies over ``domain.signing.step_message`` of
   the manifest's signed content (``domain.signed.signed_content``).

::

    {"type": "zhuisu-batch-row/v1", "checkpoint": "<signed note>",
     "batch_id": "…", "row_index": 1, "row_count": 3, "rows_root": "<hex>",
     "row": {…the row as signed…}, "path": ["<hex>", …],
     "manifest": {"step": "FundAccount.BatchOrdered", "subject": "<account id>",
                  "content": {…}, "signatures": [{official_id, role, key_id, signature, …}]},
     "manifest_proof": {"leaf_index": 130, "record": "<base64>", "proof": ["<base64>", …]},
     "row_proof": {"leaf_index": 132, "record": "<base64>", "proof": [...]}}

``officials``: a list of ``{"official_id", "key_id", "public_key"}`` (base64 Ed25519), the
officials' keys as the county publishes them; they are not in the bundle, so a bundle
alone cannot vouch for its own signers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from audit import log
from audit.checkpoints import Checkpoint, verify_checkpoint
from audit.errors import ProofBundleError, ProofInvalid
from audit.merkle import hash_leaf
from audit.proofs import Keys, _unb64, verify_inclusion
from audit.records import Record, decode_record
from domain import batch as batches
from domain.merkle import ProofError
from domain.signed import signed_content
from domain.signing import canonical_json, step_message, unb64, verify_signature

BATCH_ROW = "zhuisu-batch-row/v1"
MANIFEST_STEP = "FundAccount.BatchOrdered"
ROW_STEP = "FundAccount.Disbursed"


def _state(record: Record) -> dict[str, Any]:
    """A record's event fields (dates as dates), decoded as the application stores them."""
    from audit.signatures import event_mapper

    try:
        data = event_mapper().transcoder.decode(record.state)
    except Exception as exc:  # noqa: BLE001 - any undecodable state is a bad record
        raise ProofInvalid(f"record at notification id {record.position}: its state does "
                           f"not decode ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise ProofInvalid(f"record at notification id {record.position}: not an event")
    return data


def _step(record: Record) -> str:
    return record.topic.decode("utf-8", "replace").rpartition(":")[2]


def manifest_content(state: Mapping[str, Any]) -> dict[str, Any]:
    """The content the officials signed, as JSON (dates ISO), from a manifest's fields."""
    return json.loads(canonical_json(signed_content(SimpleNamespace(**state))))


def batch_row_bundle(source: Any, *, manifest_position: int, row_position: int,
                     rows_as_signed: Sequence[Mapping[str, Any]], index: int,
                     checkpoint_id: int | None = None) -> dict[str, Any]:
    """The bundle for row ``index`` of a batch, under one checkpoint (default: latest).

    ``rows_as_signed``: every row of the batch as signed (``payment_row_of``), for the
    path; the row's own fields are taken from its record, and the path must lead to the
    root the manifest record carries.
    """
    cp = log.get_checkpoint(source, checkpoint_id)
    m = log.prove_inclusion(source, position=manifest_position, checkpoint_id=cp.id)
    r = log.prove_inclusion(source, position=row_position, checkpoint_id=cp.id)
    m_record = decode_record(_unb64(m["record"], "manifest record"))
    r_record = decode_record(_unb64(r["record"], "row record"))
    manifest = _state(m_record)
    bid, i, row = batches.payment_row_of(_state(r_record))
    if i != index or str(bid) != str(manifest["batch_id"]):
        raise ProofInvalid(f"the row record is row {i} of batch {bid}, not row {index} of "
                           f"batch {manifest['batch_id']}")
    path = batches.row_path(batches.PAYMENT_ROW, bid, rows_as_signed, index)
    row_json = json.loads(canonical_json(row))
    batches.check_row(batches.PAYMENT_ROW, bid, index, row_json, manifest["row_count"], path,
                      manifest["rows_root"])
    return {"type": BATCH_ROW, "checkpoint": m["checkpoint"], "batch_id": str(bid),
            "row_index": index, "row_count": manifest["row_count"],
            "rows_root": manifest["rows_root"], "row": row_json, "path": path,
            "manifest": {"step": MANIFEST_STEP, "subject": m_record.originator_id.decode(),
                         "content": manifest_content(manifest),
                         "signatures": json.loads(canonical_json(manifest["signatures"]))},
            "manifest_proof": {k: m[k] for k in ("leaf_index", "record", "proof")},
            "row_proof": {k: r[k] for k in ("leaf_index", "record", "proof")}}


@dataclass(frozen=True)
class VerifiedBatchRow:
    checkpoint: Checkpoint
    batch_id: str
    row_index: int
    row_count: int
    manifest_position: int
    row_position: int
    signatures_checked: int  # 0 without officials' keys


def _included(checkpoint: Checkpoint, part: Any, what: str) -> Record:
    if not isinstance(part, dict) or any(k not in part for k in ("leaf_index", "record",
                                                                 "proof")):
        raise ProofBundleError(f"{what}: expected leaf_index, record and proof")
    if not isinstance(part["leaf_index"], int) or isinstance(part["leaf_index"], bool):
        raise ProofBundleError(f"{what}.leaf_index: expected an integer")
    if not isinstance(part["proof"], list):
        raise ProofBundleError(f"{what}.proof: expected a list of base64 hashes")
    record = _unb64(part["record"], f"{what}.record")
    decoded = decode_record(record)
    try:
        verify_inclusion(hash_leaf(record), part["leaf_index"], checkpoint.size,
                         [_unb64(p, f"{what}.proof[{k}]") for k, p in enumerate(part["proof"])],
                         checkpoint.root)
    except ProofInvalid as exc:
        raise ProofInvalid(f"{what}: {exc}") from exc
    return decoded


def verify_batch_row_bundle(bundle: str | bytes | dict, public_keys: Keys,
                            officials: Sequence[Mapping[str, Any]] | None = None
                            ) -> VerifiedBatchRow:
    """Check a batch-row bundle (see the module docstring); raises a named error."""
    if isinstance(bundle, (str, bytes)):
        try:
            bundle = json.loads(bundle)
        except ValueError as exc:
            raise ProofBundleError(f"batch-row bundle: expected JSON, got {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("type") != BATCH_ROW:
        got = bundle.get("type") if isinstance(bundle, dict) else type(bundle).__name__
        raise ProofBundleError(f"bundle type: expected {BATCH_ROW!r}, got {got!r}")
    for name in ("checkpoint", "batch_id", "row_index", "row_count", "rows_root", "row",
                 "path", "manifest", "manifest_proof", "row_proof"):
        if name not in bundle:
            raise ProofBundleError(f"batch-row bundle: expected field {name!r}, got none")
    if not isinstance(bundle["checkpoint"], str):
        raise ProofBundleError("checkpoint: expected the signed note text")
    checkpoint = verify_checkpoint(bundle["checkpoint"], public_keys)
    m_record = _included(checkpoint, bundle["manifest_proof"], "manifest_proof")
    r_record = _included(checkpoint, bundle["row_proof"], "row_proof")
    if _step(m_record) != MANIFEST_STEP or _step(r_record) != ROW_STEP:
        raise ProofInvalid(f"the records are a {_step(m_record)} and a {_step(r_record)}: "
                           f"expected a {MANIFEST_STEP} and a {ROW_STEP}")
    if m_record.originator_id != r_record.originator_id:
        raise ProofInvalid("the row record is another account's event than the manifest's")
    manifest, row_state = _state(m_record), _state(r_record)
    if not row_state.get("batch"):
        raise ProofInvalid("the row record is a payment of no batch")
    bid, index, row = batches.payment_row_of(row_state)
    if canonical_json(row) != canonical_json(bundle["row"]):
        raise ProofInvalid("the row record does not decode to the row given")
    if (str(bid), index) != (str(bundle["batch_id"]), bundle["row_index"]):
        raise ProofInvalid(f"the row record is row {index} of batch {bid}, not row "
                           f"{bundle['row_index']} of batch {bundle['batch_id']}")
    if str(manifest.get("batch_id")) != str(bid):
        raise ProofInvalid(f"the manifest record is batch {manifest.get('batch_id')}, not {bid}")
    if (manifest.get("rows_root"), manifest.get("row_count")) != (bundle["rows_root"],
                                                                 bundle["row_count"]):
        raise ProofInvalid("the manifest record carries another rows_root or row_count than "
                           "the bundle's")
    if not isinstance(bundle["path"], list):
        raise ProofBundleError("path: expected a list of hex hashes")
    try:
        batches.check_row(batches.PAYMENT_ROW, str(bid), index, bundle["row"],
                          bundle["row_count"], bundle["path"], bundle["rows_root"])
    except ProofError as exc:
        raise ProofInvalid(f"the row does not fold to the manifest's rows_root: {exc}") from exc
    given = bundle["manifest"]
    content = manifest_content(manifest)
    if not isinstance(given, dict) or canonical_json(given.get("content")) != canonical_json(
            content) or canonical_json(given.get("signatures")) != canonical_json(
            manifest["signatures"]):
        raise ProofInvalid("the manifest's content or signatures differ from its record's")
    checked = 0
    if officials is not None:
        checked = _check_signatures(manifest["signatures"], m_record.originator_id.decode(),
                                    content, officials)
    return VerifiedBatchRow(checkpoint, str(bid), index, bundle["row_count"],
                            m_record.position, r_record.position, checked)


def _check_signatures(signatures: Sequence[Mapping[str, Any]], subject: str,
                      content: Mapping[str, Any],
                      officials: Sequence[Mapping[str, Any]]) -> int:
    keys: dict[tuple[str, str], bytes] = {}
    for i, o in enumerate(officials):
        try:
            keys[(str(o["official_id"]), str(o["key_id"]))] = unb64(o["public_key"],
                                                                   "public_key")
        except (KeyError, TypeError) as exc:
            raise ProofBundleError(f"officials[{i}]: expected official_id, key_id and "
                                   f"public_key") from exc
    encoded = canonical_json(content)
    for s in signatures:
        key = keys.get((str(s["official_id"]), str(s["key_id"])))
        if key is None:
            raise ProofInvalid(f"no public key given for official {s['official_id']} key "
                               f"{s['key_id']} ({s['role']})")
        message = step_message(MANIFEST_STEP, uuid.UUID(subject), encoded, s["official_id"],
                               s["role"], s["key_id"])
        if not verify_signature(key, s["signature"], message):
            raise ProofInvalid(f"the {s['role']} signature of official {s['official_id']} does "
                               "not verify over the manifest's signed content")
    return len(signatures)


__all__ = ["BATCH_ROW", "VerifiedBatchRow", "batch_row_bundle", "manifest_content",
           "verify_batch_row_bundle"]
