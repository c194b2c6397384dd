"""The tamper-evident log (可追溯): public key, signed checkpoints, proofs, verification.

Anyone may fetch the log's public key; with it, a checkpoint and a proof bundle, an outsider
checks offline that an event is in the log and that the log only grew
(``zhuisu verify-proof``, ``audit.proofs``).  Signing a checkpoint or rotating the key is
an administrator's act; reading checkpoints, proofs and the full verification is for any
reader.

An inclusion proof's record is the stored event itself (a household's names and income,
a payment): it goes only to a token whose jurisdiction covers the event's subject (the
aggregate's region, ``api.deps.subject_of``), and that read is recorded in the access log.
Any other reader gets the same proof with the leaf hash in place of the record
(``zhuisu-leaf-inclusion-proof/v1``): enough to check that *some* leaf is in the signed
tree, nothing of what it says.  Checkpoints, consistency proofs and the public key hold
no record and stay open to every reader (witnesses).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from access.roles import Principal
from api.deps import Admin, App, Reader, public, record_reads, subject_of
from api.schemas import READ_PROBLEMS, WRITE_PROBLEMS
from audit import log, proofs
from audit.merkle import hash_leaf
from audit.records import decode_record
from audit.store import AuditStore
from audit.verify import verify_log
from domain.errors import InvalidInput

router = APIRouter(prefix="/log", tags=["log"])

NOTE_EXAMPLE = ("zhuisu.example/log\n385\nYdAP6f08AjoSqBiXJYD767MnX5p92P841AlnYUrdJt0=\n"
                "time 2026-11-23T16:47:39Z\n\n— zhuisu.example/log b74GqDYg…5QE=\n")
VKEY_EXAMPLE = "zhuisu.example/log+6fbe06a8+AeNKC0zrWbdKF4jxIt7wIpm6UlCcfg8eQRmlt5XPCyDH"


def get_audit(request: Request) -> AuditStore:
    """The log's store on the application's database (opened by the app's lifespan)."""
    return request.app.state.audit


Audit = Annotated[AuditStore, Depends(get_audit)]


class PublicKeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "public_key": VKEY_EXAMPLE, "origin": "zhuisu.example/log", "keys": []}]})

    public_key: str = Field(description="the current log key as a vkey: origin+key id+key")
    origin: str
    keys: list[dict[str, Any]] = Field(description="every key the log has used, with validity")


class CheckpointOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 1, "kind": "checkpoint", "origin": "zhuisu.example/log", "size": 385,
        "root": "61d00fe9…", "time": "2026-11-23T16:47:39Z", "note": NOTE_EXAMPLE}]})

    id: int
    kind: str = Field(description="'checkpoint' or 'key-rotation'")
    origin: str
    size: int
    root: str
    time: str
    note: str = Field(description="the signed note (C2SP tlog-checkpoint) as text")


def _checkpoint(record: log.CheckpointRecord) -> dict[str, Any]:
    cp = record.checkpoint
    return {"id": record.id, "kind": record.kind, "origin": cp.origin, "size": cp.size,
            "root": cp.root.hex(), "time": cp.time, "note": record.note}


@router.get("/public-key", response_model=PublicKeyOut)
@public
def public_key(audit: Audit) -> Any:
    """The log's public key: all an outsider needs to check checkpoints and proofs."""
    return {"public_key": log.public_key(audit), "origin": audit.config.origin,
            "keys": [k.to_dict() for k in log.log_key_history(audit)]}


@router.get("/checkpoints", response_model=list[CheckpointOut], responses=READ_PROBLEMS)
def list_checkpoints(audit: Audit, _: Reader,
                     after: Annotated[int, Query(ge=0, le=2**62,
                                                 description="ids after this")] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Signed checkpoints, oldest first (page with ``after`` = the last id seen)."""
    return [_checkpoint(r) for r in log.list_checkpoints(audit, after_id=after, limit=limit)]


@router.post("/checkpoints", response_model=CheckpointOut, status_code=201,
             responses=WRITE_PROBLEMS)
async def make_checkpoint(audit: Audit, _: Admin) -> Any:
    """Catch the tree up and sign a checkpoint of it now (the server also does this
    periodically)."""
    return _checkpoint(await run_in_threadpool(log.make_checkpoint, audit))


@router.get("/checkpoints/{checkpoint_id}", response_model=CheckpointOut,
            responses=READ_PROBLEMS)
def get_checkpoint(checkpoint_id: Annotated[str, Path(
        pattern=r"^(latest|[1-9][0-9]{0,17})$", examples=["latest", "42"],
        description="a checkpoint id or 'latest'")],
        audit: Audit, _: Reader) -> Any:
    """One checkpoint by id, or ``latest``."""
    cid = None if checkpoint_id == "latest" else _int(checkpoint_id, "checkpoint_id")
    return _checkpoint(log.get_checkpoint(audit, cid))


@router.get("/export", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}},
                      "application/json": {"schema": {"type": "object"}}},
          "description": "the checkpoints as text, or as JSON with format=json"},
    **READ_PROBLEMS})
def export(audit: Audit, _: Reader,
           fmt: Annotated[str, Query(alias="format", pattern="^(text|json)$")] = "text") -> Any:
    """Every checkpoint with the log's public keys, to keep outside the system."""
    media = "application/json" if fmt == "json" else "text/plain; charset=utf-8"
    return PlainTextResponse(log.export_checkpoints(audit, fmt=fmt), media_type=media)


@router.post("/key/rotate", response_model=CheckpointOut, status_code=201,
             responses=WRITE_PROBLEMS)
async def rotate_key(audit: Audit, _: Admin) -> Any:
    """Replace the log key; the rotation is a checkpoint signed by the old and new keys."""
    return _checkpoint(await run_in_threadpool(log.rotate_log_key, audit))


LEAF_INCLUSION = "zhuisu-leaf-inclusion-proof/v1"


def disclosed(request: Request, reader: Principal, app: Any, bundle: dict[str, Any]
              ) -> dict[str, Any]:
    """The bundle as is, its record's read recorded, if the reader's jurisdiction covers
    the event's subject; otherwise the proof with the leaf hash (SHA-256(0x00‖record)) in
    place of the record.  Check it with the checkpoint's signature and RFC 9162 inclusion
    of ``leaf_hash`` at ``leaf_index`` (``audit.checkpoints.verify_checkpoint``,
    ``audit.merkle.verify_inclusion``)."""
    record = base64.b64decode(bundle["record"])
    stored = decode_record(record)
    try:
        aggregate = app.repository.get(UUID(stored.originator_id.decode()),
                                       deepcopy_from_cache=False)
        subject = subject_of(app, aggregate)
    except (AggregateNotFoundError, ValueError):  # a row no aggregate answers to: no region
        subject = Read("event", str(stored.position), {})
    if reader.covers(subject.region_path):
        record_reads(request, reader, [subject])
        return bundle
    return {"type": LEAF_INCLUSION, "checkpoint": bundle["checkpoint"],
            "leaf_index": bundle["leaf_index"],
            "leaf_hash": base64.b64encode(hash_leaf(record)).decode(),
            "proof": bundle["proof"],
            "record_withheld": f"the event's subject lies outside the token's jurisdiction "
                               f"({reader.jurisdiction}): only its leaf hash is shown"}


@router.get("/proofs/inclusion", responses=READ_PROBLEMS)
def inclusion_proof(request: Request, audit: Audit, app: App, reader: Reader,
                    position: Annotated[int | None, Query(ge=1, le=2**62, description=
                                        "the event's notification id")] = None,
                    originator_id: Annotated[UUID | None, Query(description=
                                             "or the aggregate id …")] = None,
                    version: Annotated[int | None, Query(ge=1, le=2**62,
                                                         description="… and version")] = None,
                    checkpoint_id: Annotated[int | None, Query(ge=1, le=2**62, description=
                                             "default: the latest")] = None) -> Any:
    """Proof bundle that one event is in a signed checkpoint (verify offline).  The event's
    record is in it only for a token whose jurisdiction covers the event's subject (the
    read is recorded in the access log); others get its leaf hash in its place
    (``zhuisu-leaf-inclusion-proof/v1``)."""
    bundle = log.prove_inclusion(audit, position=position,
                                 originator_id=None if originator_id is None
                                 else str(originator_id),
                                 version=version, checkpoint_id=checkpoint_id)
    return disclosed(request, reader, app, bundle)


@router.get("/proofs/consistency", responses=READ_PROBLEMS)
def consistency_proof(audit: Audit, _: Reader,
                      old: Annotated[int, Query(ge=1, le=2**62, description="older checkpoint id")],
                      new: Annotated[int | None, Query(ge=1, le=2**62, description=
                                     "newer checkpoint id (default: the latest)")] = None) -> Any:
    """Proof bundle that the newer checkpoint's log extends the older one's."""
    return log.prove_consistency(audit, old, new)


class VerifyProofIn(BaseModel):
    bundle: dict[str, Any] = Field(description="a bundle from /log/proofs/*", json_schema_extra={
        "required": ["type"], "properties": {"type": {"enum": [
            "zhuisu-inclusion-proof/v1", "zhuisu-consistency-proof/v1"]}}})
    public_keys: list[str] = Field(min_length=1, description="trusted log keys (vkeys)")


@router.post("/proofs/verify", responses=READ_PROBLEMS)
def verify_proof(body: Annotated[VerifyProofIn, Body()], _: Reader) -> Any:
    """Check a proof bundle as an outsider would: the bundle and public keys only."""
    result = proofs.verify_bundle(body.bundle, body.public_keys)
    if isinstance(result, tuple):
        old, new = result
        return {"ok": True, "kind": "consistency", "old_size": old.size, "new_size": new.size}
    return {"ok": True, "kind": "inclusion", "leaf_index": result.leaf_index,
            "position": result.record.position, "tree_size": result.checkpoint.size}


@router.get("/verify", responses=READ_PROBLEMS)
async def verify(audit: Audit, _: Reader,
                 signatures: Annotated[bool, Query(description=
                                       "also re-verify every stored signature (slower)")]
                 = False) -> Any:
    """Recompute the whole log and hold it against the stored tree, every checkpoint (with
    log keys trusted from the server's log key file, not the store's rows), the key
    history and every snapshot: OK, or the first position that differs and what kind of
    change it is.  A record the tree stopped before (its signatures do not hold) is
    reported as a ``signature`` finding."""
    return (await run_in_threadpool(
        lambda: verify_log(audit, signatures=signatures))).to_dict()


def _int(text: str, field: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise InvalidInput("must be a checkpoint id or 'latest'", field=field) from exc
    if not 0 < value <= 2**62:
        raise InvalidInput("must be a checkpoint id (1 … 2^62) or 'latest'", field=field)
    return value
