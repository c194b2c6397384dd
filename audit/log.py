"""The tamper-evident log's verbs: sign a checkpoint, list and export them, prove, rotate the key.

Each verb takes ``source``: the app's settings (anything with ``database_url``), a database
URL, an ``AuditConfig`` or an open ``AuditStore`` (kept open; anything else is opened and
closed by the verb).  ``now`` is injectable for tests; otherwise the system clock (UTC).

A checkpoint also *seals* the leaf hashes it added since the previous checkpoint
(``log_checkpoint_leaves``, chunks of ``SEAL_CHUNK`` hashes, 32 bytes per leaf).  The seal
is authenticated by the chain of signed roots, so if the events and the tree tables are
later rewritten together, verification still says at which leaf the rewrite begins
(``audit.verify``).  Without it a rewrite is located only to between two checkpoints.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from audit.alarm import check_leaf, refuse_if_alarmed
from audit.chains import current_heads, extension_lines
from audit.checkpoints import Checkpoint, NoteKey, format_time, parse_checkpoint, sign_note
from audit.errors import NotInLog
from audit.logkey import (
    LogKeyRecord,
    current_signing_key,
    known_keys,
    pending_path,
    write_new_key,
)
from audit.merkle import consistency_proof, inclusion_proof
from audit.proofs import consistency_bundle, inclusion_bundle
from audit.records import encode_record
from audit.store import (
    AuditStore,
    hash_rows,
    log_checkpoint_leaves,
    log_checkpoints,
    log_keys,
    merkle_leaves,
    opened,
)
from audit.tree_store import (
    catch_up,
    lock_state,
    read_state,
    with_stored_nodes,
)
from domain.errors import InvalidInput

SEAL_CHUNK = 8192


def _now(now: dt.datetime | None) -> str:
    return format_time(now or dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class CheckpointRecord:
    """A stored checkpoint: its id, kind ("checkpoint" or "key-rotation") and signed note."""

    id: int
    kind: str
    note: str

    @property
    def checkpoint(self) -> Checkpoint:
        return parse_checkpoint(self.note[:self.note.rfind("\n\n") + 1])

    def to_dict(self) -> dict[str, Any]:
        c = self.checkpoint
        return {"id": self.id, "kind": self.kind, "origin": c.origin, "tree_size": c.size,
                "root_hash": base64.b64encode(c.root).decode(), "time": c.time,
                "note": self.note}


# checkpoints ----------------------------------------------------------------------------
def _store_checkpoint(conn: Connection, kind: str, checkpoint: Checkpoint, note: str) -> int:
    cid = conn.execute(insert(log_checkpoints).values(
        kind=kind, origin=checkpoint.origin, tree_size=checkpoint.size,
        root_hash=checkpoint.root, time=checkpoint.time, note=note)
    ).inserted_primary_key[0]
    _seal_leaves(conn, cid, checkpoint.size)
    return cid


def _seal_leaves(conn: Connection, checkpoint_id: int, size: int) -> None:
    c = log_checkpoint_leaves.c
    start = conn.execute(select(func.coalesce(func.max(c.first_leaf + c.leaf_count), 0))
                         ).scalar_one()
    while start < size:
        stop = min(start + SEAL_CHUNK, size)
        hashes = conn.execute(select(merkle_leaves.c.leaf_hash)
                              .where(merkle_leaves.c.leaf_index >= start,
                                     merkle_leaves.c.leaf_index < stop)
                              .order_by(merkle_leaves.c.leaf_index)).scalars().all()
        conn.execute(insert(log_checkpoint_leaves).values(
            first_leaf=start, leaf_count=len(hashes), checkpoint_id=checkpoint_id,
            hashes=b"".join(hashes)))
        start = stop


def make_checkpoint(source: Any, *, now: dt.datetime | None = None) -> CheckpointRecord:
    """Catch the tree up, then sign and store a checkpoint of it (``zhuisu checkpoint``).

    The log key file is created on first use (``audit.logkey``).  The note also signs the
    heads of the chained tables (``audit.chains``: access log, token changes) as extension
    lines.  Refused (``IntegrityAlarm``) while the integrity alarm is raised.
    """
    with opened(source) as store:
        refuse_if_alarmed(store, "signing a checkpoint")
        catch_up(store)
        time = _now(now)
        with store.engine.begin() as conn:
            lock_state(conn)
            state = read_state(conn)
            key, private = current_signing_key(conn, store.config.key_file,
                                               store.config.origin, time)
            checkpoint = Checkpoint(store.config.origin, state.size, state.root, time)
            note = sign_note(checkpoint.body() + extension_lines(current_heads(store, conn)),
                             [(key.name, private)])
            cid = _store_checkpoint(conn, "checkpoint", checkpoint, note)
        return CheckpointRecord(cid, "checkpoint", note)


def rotate_log_key(source: Any, *, now: dt.datetime | None = None) -> CheckpointRecord:
    """Replace the log key; the rotation is a checkpoint signed by the old and the new key."""
    with opened(source) as store:
        refuse_if_alarmed(store, "rotating the log key")
        catch_up(store)
        path, origin, time = store.config.key_file, store.config.origin, _now(now)
        pending = pending_path(path)
        with store.engine.begin() as conn:
            lock_state(conn)
            old, old_private = current_signing_key(conn, path, origin, time)
            if pending.exists():
                pending.unlink()  # left by a rotation that never committed
            new_private = write_new_key(pending)
            new = NoteKey.of_private(origin, new_private)
            state = read_state(conn)
            checkpoint = Checkpoint(origin, state.size, state.root, time, (old.vkey, new.vkey))
            note = sign_note(checkpoint.body(), [(origin, old_private), (origin, new_private)])
            cid = _store_checkpoint(conn, "key-rotation", checkpoint, note)
            conn.execute(update(log_keys).where(log_keys.c.key_id == old.key_id.hex())
                         .values(valid_until=time))
            conn.execute(insert(log_keys).values(key_id=new.key_id.hex(), vkey=new.vkey,
                                                 valid_from=time, valid_until=None,
                                                 introduced_by=cid))
        os.replace(pending, path)
        return CheckpointRecord(cid, "key-rotation", note)


def _checkpoint_rows(conn: Connection, after_id: int = 0,
                     limit: int | None = None) -> list[CheckpointRecord]:
    q = (select(log_checkpoints.c.id, log_checkpoints.c.kind, log_checkpoints.c.note)
         .where(log_checkpoints.c.id > after_id).order_by(log_checkpoints.c.id))
    if limit is not None:
        q = q.limit(limit)
    return [CheckpointRecord(r.id, r.kind, r.note) for r in conn.execute(q)]


def list_checkpoints(source: Any, *, after_id: int = 0,
                     limit: int | None = None) -> list[CheckpointRecord]:
    """Stored checkpoints in the order they were signed, after ``after_id``."""
    with opened(source) as store, store.engine.connect() as conn:
        return _checkpoint_rows(conn, after_id, limit)


def get_checkpoint(source: Any, checkpoint_id: int | None = None) -> CheckpointRecord:
    """One checkpoint by id, or the latest."""
    with opened(source) as store, store.engine.connect() as conn:
        return _get_checkpoint(store, conn, checkpoint_id)


def _get_checkpoint(store: AuditStore, conn: Connection,
                    checkpoint_id: int | None) -> CheckpointRecord:
    table = store.table_sql("log_checkpoints")
    rows = (store.raw(conn, f"SELECT id, kind, note FROM {table} WHERE id = ?", (checkpoint_id,))
            if checkpoint_id is not None else
            store.raw(conn, f"SELECT id, kind, note FROM {table} ORDER BY id DESC LIMIT 1"))
    if not rows:
        raise NotInLog(f"checkpoint {checkpoint_id}: expected a stored checkpoint, got none"
                       if checkpoint_id is not None else "no checkpoint has been signed yet",
                       field="checkpoint_id")
    return CheckpointRecord(*rows[0])


# keys -----------------------------------------------------------------------------------
def public_key(source: Any) -> str:
    """The log's current public key as a vkey (``<origin>+<key id>+<base64 key>``).

    Before the first checkpoint this makes the key file (first start) and registers it.
    """
    with opened(source) as store:
        with store.engine.connect() as conn:
            current = [k for k in known_keys(conn) if k.valid_until is None]
        if current:
            return current[-1].key.vkey
        with store.engine.begin() as conn:
            lock_state(conn)
            key, _ = current_signing_key(conn, store.config.key_file, store.config.origin,
                                         _now(None))
        return key.vkey


def log_key_history(source: Any) -> list[LogKeyRecord]:
    """Every key the log has used, with validity and the rotation that introduced it."""
    with opened(source) as store, store.engine.connect() as conn:
        return known_keys(conn)


def export_checkpoints(source: Any, *, fmt: str = "json") -> str:
    """All checkpoints with the log's public keys: ``fmt="json"`` or ``"text"`` (for people)."""
    with opened(source) as store, store.engine.connect() as conn:
        keys = known_keys(conn)
        rows = _checkpoint_rows(conn)
    exported = _now(None)
    current = next((k.key.vkey for k in keys if k.valid_until is None), None)
    if fmt == "json":
        return json.dumps({"origin": store.config.origin, "exported": exported,
                           "public_key": current, "keys": [k.to_dict() for k in keys],
                           "checkpoints": [r.to_dict() for r in rows]},
                          ensure_ascii=False, indent=2)
    if fmt != "text":
        raise ValueError(f"export format: expected 'json' or 'text', got {fmt!r}")
    lines = [f"# zhuisu log checkpoints of {store.config.origin}, exported {exported}",
             "# Each checkpoint is a C2SP signed note (c2sp.org/tlog-checkpoint).",
             "# Log public keys (vkey, valid from, valid until):"]
    lines += [f"#   {k.key.vkey} {k.valid_from} {k.valid_until or 'current'}" for k in keys]
    for r in rows:
        lines += ["", f"# checkpoint {r.id} ({r.kind})", r.note.rstrip("\n")]
    return "\n".join(lines) + "\n"


# proofs ---------------------------------------------------------------------------------
def prove_inclusion(source: Any, *, position: int | None = None,
                    originator_id: uuid.UUID | str | None = None, version: int | None = None,
                    checkpoint_id: int | None = None) -> dict[str, Any]:
    """Inclusion bundle (``audit.proofs``) for one event in a checkpoint (default: latest).

    The event is named by its notification id ``position`` or by ``originator_id`` and
    ``version``.  The record bytes are read from the events table as they are now, and must
    still hash to the stored leaf: if not, the integrity alarm is raised (``audit.alarm``)
    and the proof refused, as it is while the alarm stands.
    """
    with opened(source) as store, store.engine.connect() as conn:
        refuse_if_alarmed(store, "a proof", conn)
        record = _get_checkpoint(store, conn, checkpoint_id)
        size = record.checkpoint.size
        if position is None:
            if originator_id is None or version is None:
                raise NotInLog("name the event by position, or by originator_id and version",
                               field="position")
            try:
                oid = uuid.UUID(str(originator_id))
            except ValueError as exc:
                raise InvalidInput("must be a UUID", field="originator_id") from exc
            position = store.events.position_of(conn, oid, int(version))
            if position is None:
                raise NotInLog(f"no event {oid} version {version} in the store",
                               field="originator_id")
        found = store.events.at_leaf_position(conn, store.table_sql("merkle_leaves"), position)
        if found is None:
            raise NotInLog(f"notification id {position}: expected an event that is a leaf of "
                           f"the tree, got none (not recorded, or not caught up)",
                           field="position")
        index, row = found[0], found[1:]
        if index >= size:
            raise NotInLog(f"event at notification id {position} is leaf {index}: expected a "
                           f"leaf of checkpoint {record.id} (size {size}), got a later one",
                           field="checkpoint_id")
        (row,), _ = hash_rows([row])
        check_leaf(store, conn, index, position, encode_record(row))
        proof = with_stored_nodes(store, conn, lambda get: inclusion_proof(index, size, get))
        return inclusion_bundle(record.note, index, encode_record(row), proof)


def prove_consistency(source: Any, old_checkpoint_id: int,
                      new_checkpoint_id: int | None = None) -> dict[str, Any]:
    """Consistency bundle from one checkpoint to a later one (default: latest)."""
    with opened(source) as store, store.engine.connect() as conn:
        refuse_if_alarmed(store, "a proof", conn)
        old = _get_checkpoint(store, conn, old_checkpoint_id)
        new = _get_checkpoint(store, conn, new_checkpoint_id)
        size1, size2 = old.checkpoint.size, new.checkpoint.size
        if size1 > size2:
            raise NotInLog(f"consistency: expected the old checkpoint ({size1} leaves) to be "
                           f"no larger than the new one, got {size2} leaves",
                           field="old_checkpoint_id")
        proof = with_stored_nodes(store, conn,
                                  lambda get: consistency_proof(size1, size2, get))
        return consistency_bundle(old.note, new.note, proof)
