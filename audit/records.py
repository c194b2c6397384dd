"""The canonical byte encoding of a stored event record: what one leaf of the log hashes.

Every row of the event store's table, in notification order, is one leaf of the log's
RFC 6962 Merkle tree (``audit.merkle``).  The leaf input is this record encoding: a
fixed-width header (integers big-endian) and then the three variable fields it measures::

    record = 0x01                        format version (1 byte)
           ‖ uint64(position)            notification id of the row
           ‖ int64(originator_version)   aggregate version of the event
           ‖ uint32(len(originator_id))  ‖ uint32(len(topic)) ‖ uint32(len(state))
           ‖ originator_id               the aggregate's UUID as 32 lowercase hex digits (ASCII)
           ‖ topic                       event class topic, UTF-8
           ‖ state                       the stored state bytes exactly as recorded

    leaf hash = SHA-256(0x00 ‖ record)   (RFC 6962 / RFC 9162 section 2.1.1)

The position is inside the leaf so that deleting, inserting or reordering rows changes
the leaves, not just their count.  ``state`` is what the recorder wrote (after any
compression or encryption the application is configured with), so a verifier needs
neither the domain code nor the cipher key.  The originator id is the text the SQLite
recorder stores (``uuid.hex``) and what PostgreSQL's ``uuid`` prints without dashes, so
both stores give the same bytes.  Header first, so that one ``struct.pack`` per record
builds it: this is the verifier's inner loop.  A NULL read from a tampered row is encoded
as the empty value (version: -2**63); genuine rows never hold one, so it cannot match.

Worked example: position 7, originator id 6ba7b811-9dad-11d1-80b4-00c04fd430c8,
version 1, topic ``domain.region:Region.Created``, state ``{"code":"52"}``::

    01 0000000000000007 0000000000000001 00000020 0000001c 0000000d
    3662613762383131396461643131643138306234303063303466643433306338
    646f6d61696e2e726567696f6e3a526567696f6e2e43726561746564
    7b22636f6465223a223532227d

    leaf hash = 1eb525b2e7eccf61e0340ac9e06205d66da3527d0fed1a62db42c9bab5726041

(``tests/test_audit_log.py`` checks this example.)

Field digests: beside each leaf the tree store keeps ``field_digests(record)``, the first
8 bytes of SHA-256 of each of originator id, version (8 bytes), topic and state, so that
verification can name which field of a changed row differs and recognise a row that moved.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from audit.errors import RecordFormatError

FORMAT = 1
FIELDS = ("originator_id", "originator_version", "topic", "state")
DIGEST_SIZE = 8
NULL_VERSION = -(2**63)

_HEAD = struct.Struct(">BQqIII")  # format, position, version, 3 lengths
_LEAF_HEAD = struct.Struct(">BBQqIII")  # the same after the 0x00 leaf prefix
_VERSION = struct.Struct(">q")


class Record(NamedTuple):
    """One stored event row, as the log sees it (text fields as their UTF-8 bytes)."""

    position: int
    originator_id: bytes
    originator_version: int
    topic: bytes
    state: bytes


def encode_record(record: Record | Sequence) -> bytes:
    """The canonical encoding of one record (see the module docstring)."""
    position, oid, version, topic, state = record[:5]
    return (_HEAD.pack(FORMAT, position, version, len(oid), len(topic), len(state))
            + oid + topic + state)


def decode_record(data: bytes) -> Record:
    """Parse a canonical encoding; the exact inverse of ``encode_record``."""
    try:
        fmt, position, version, n_id, n_topic, n_state = _HEAD.unpack_from(data, 0)
    except struct.error as exc:
        raise RecordFormatError(f"record header: expected {_HEAD.size} bytes, "
                                f"got {len(data)}") from exc
    if fmt != FORMAT:
        raise RecordFormatError(f"record format: expected {FORMAT}, got {fmt}")
    expected = _HEAD.size + n_id + n_topic + n_state
    if len(data) != expected:
        raise RecordFormatError(f"record length: expected {expected} bytes, got {len(data)}")
    at = _HEAD.size
    oid, topic = data[at:at + n_id], data[at + n_id:at + n_id + n_topic]
    return Record(position, oid, version, topic, data[at + n_id + n_topic:])


def record_leaf_hash(record: Record | Sequence) -> bytes:
    """SHA-256(0x00 ‖ encode_record(record))."""
    return hashlib.sha256(b"\x00" + encode_record(record)).digest()


def leaf_hashes(rows: Iterable[Sequence]) -> list[bytes]:
    """Leaf hashes of many records (5-tuples): the same bytes as ``record_leaf_hash``.

    This is the verifier's inner loop: the 0x00 prefix is packed with the header and the
    fields are fed to the hash without building the record.
    """
    sha256, head = hashlib.sha256, _LEAF_HEAD.pack
    out = []
    append = out.append
    for p, o, v, t, s in rows:
        h = sha256(head(0, FORMAT, p, v, len(o), len(t), len(s)))
        h.update(o)
        h.update(t)
        h.update(s)
        append(h.digest())
    return out


def field_digests(record: Record | Sequence) -> bytes:
    """8-byte digests of originator id, version, topic and state, concatenated (32 bytes)."""
    _, oid, version, topic, state = record[:5]
    return b"".join(hashlib.sha256(v).digest()[:DIGEST_SIZE]
                    for v in (oid, _VERSION.pack(version), topic, state))


def differing_fields(a: bytes, b: bytes) -> tuple[str, ...]:
    """Names of the fields whose digests differ between two ``field_digests`` values."""
    return tuple(name for i, name in enumerate(FIELDS)
                 if a[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE]
                 != b[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE])
