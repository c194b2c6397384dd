"""The canonical byte encoding of a stored event record: what one leaf of the log hashes.

Every row of the event store's table, in notification order, is one leaf of the log's
RFC 6962 Merkle tree (``audit.merkle``).  The leaf input is this record encoding, with all
integers big-endian and every variable-length field preceded by its length::

    record = 0x01                               format version (1 byte)
           ‖ uint64(position)                   notification id of the row (8 bytes)
           ‖ uint32(len(originator_id)) ‖ originator_id
                                                the 16 bytes of the aggregate's UUID
           ‖ int64(originator_version)          aggregate version of the event (8 bytes)
           ‖ uint32(len(topic)) ‖ topic         event class topic, UTF-8
           ‖ uint32(len(state)) ‖ state         the stored state bytes exactly as recorded

    leaf hash = SHA-256(0x00 ‖ record)          (RFC 6962 / RFC 9162 section 2.1.1)

The position is inside the leaf so that deleting, inserting or reordering rows changes
the leaves, not just their count.  ``state`` is what the recorder wrote (after any
compression or encryption the application is configured with), so a verifier needs
neither the domain code nor the cipher key.  A NULL read from a tampered row is encoded
as the empty value (version: -2**63); genuine rows never hold one, so it cannot match.

Worked example: position 7, originator id 6ba7b811-9dad-11d1-80b4-00c04fd430c8,
version 1, topic ``domain.region:Region.Created``, state ``{"code":"52"}``::

    01 0000000000000007 00000010 6ba7b8119dad11d180b400c04fd430c8
    0000000000000001 0000001c 646f6d61696e2e726567696f6e3a526567696f6e2e43726561746564
    0000000d 7b22636f6465223a223532227d

    leaf hash = 327c2bd561d80417c621944749c336472fd3d82b41cd3098a6dfde29fbeeb34e

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

_LEAF_HEAD = struct.Struct(">BBQI")  # 0x00 leaf prefix, format, position, len(originator_id)
_HEAD = struct.Struct(">BQI")  # format, position, len(originator_id)
_MID = struct.Struct(">qI")  # originator_version, len(topic)
_LEN = struct.Struct(">I")
_VERSION = struct.Struct(">q")


class Record(NamedTuple):
    """One stored event row, as the log sees it."""

    position: int
    originator_id: bytes
    originator_version: int
    topic: str
    state: bytes


def encode_record(record: Record | Sequence) -> bytes:
    """The canonical encoding of one record (see the module docstring)."""
    position, originator_id, version, topic, state = record
    t = topic.encode()
    return b"".join((_HEAD.pack(FORMAT, position, len(originator_id)), originator_id,
                     _MID.pack(version, len(t)), t, _LEN.pack(len(state)), state))


def decode_record(data: bytes) -> Record:
    """Parse a canonical encoding; the exact inverse of ``encode_record``."""
    try:
        fmt, position, n = _HEAD.unpack_from(data, 0)
        if fmt != FORMAT:
            raise RecordFormatError(f"record format: expected {FORMAT}, got {fmt}")
        at = _HEAD.size
        originator_id = data[at:at + n]
        at += n
        version, n = _MID.unpack_from(data, at)
        at += _MID.size
        topic = data[at:at + n].decode()
        at += n
        (n,) = _LEN.unpack_from(data, at)
        at += _LEN.size
        state = data[at:at + n]
        at += n
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"record of {len(data)} bytes is truncated or malformed: {exc}") \
            from exc
    if len(state) != n or at != len(data):
        raise RecordFormatError(f"record length: expected {at} bytes, got {len(data)}")
    return Record(position, originator_id, version, topic, state)


def record_leaf_hash(record: Record | Sequence) -> bytes:
    """SHA-256(0x00 ‖ encode_record(record))."""
    return hashlib.sha256(b"\x00" + encode_record(record)).digest()


def leaf_hashes(records: Iterable[Sequence]) -> list[bytes]:
    """Leaf hashes of many records: the same bytes as ``record_leaf_hash``, built in one pass.

    This is the verifier's inner loop, so the 0x00 prefix is packed with the header
    instead of copying each record again.
    """
    sha256, head, mid, size = hashlib.sha256, _LEAF_HEAD.pack, _MID.pack, _LEN.pack
    topics: dict[str, tuple[bytes, int]] = {}

    def topic_bytes(topic: str) -> tuple[bytes, int]:
        t = topic.encode()
        topics[topic] = (t, len(t))
        return t, len(t)

    out = []
    for position, oid, version, topic, state in records:
        t, tn = topics.get(topic) or topic_bytes(topic)
        out.append(sha256(b"".join((head(0, FORMAT, position, len(oid)), oid, mid(version, tn),
                                    t, size(len(state)), state))).digest())
    return out


def field_digests(record: Record | Sequence) -> bytes:
    """8-byte digests of originator id, version, topic and state, concatenated (32 bytes)."""
    _, originator_id, version, topic, state = record
    return b"".join(hashlib.sha256(v).digest()[:DIGEST_SIZE]
                    for v in (originator_id, _VERSION.pack(version), topic.encode(), state))


def differing_fields(a: bytes, b: bytes) -> tuple[str, ...]:
    """Names of the fields whose digests differ between two ``field_digests`` values."""
    return tuple(name for i, name in enumerate(FIELDS)
                 if a[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE]
                 != b[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE])
