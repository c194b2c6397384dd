"""Which log keys a verifier trusts, and the key history the store must agree with.

The store's ``log_keys`` rows are not evidence: an insider who rewrites history can also
replace them with a key of their own and re-sign every checkpoint, and a verifier that
trusted the rows would see a store that agrees with itself.  So trust starts *outside*
the store, from an anchor:

1. the keys the verifier gives (``zhuisu verify --key VKEY`` or ``--keys FILE``, e.g. an
   export kept elsewhere), else
2. the public half of the log key file (``ZHUISU_LOG_KEY_FILE``: outside the database,
   the key that signs now), else
3. only where neither is at hand, the store's first key (the row no rotation
   introduced): then a replaced first key cannot be told, which the result says.

From the anchor, trust follows the key-rotation checkpoints stored in the log, each signed
by the old and the new key (``checkpoints.verify_rotation``): forwards (the old key
vouches for the new) and backwards (the new key, by signing, names its predecessor).
Nothing else makes a key trusted.  Each trusted key's validity is where the chain puts
it: from the rotation that introduced it (the first key: from its row's ``valid_from``)
until the rotation that retired it.

Then every ``log_keys`` row is held against that history; a finding of kind ``key``
names the key id of each row that is not a trusted key (added or replaced), that says it
was introduced by another checkpoint than the rotation that did, or whose validity was
edited, and of each trusted key the rows lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from audit.checkpoints import (
    NoteKey,
    parse_checkpoint,
    parse_note,
    parse_vkey,
    verify_rotation,
)
from audit.errors import AuditError
from audit.findings import Finding
from audit.logkey import LogKeyRecord, read_key
from audit.store import AuditStore


@dataclass(frozen=True)
class TrustedKey:
    """A log key the verifier trusts, valid (inclusive) from ``valid_from`` to
    ``valid_until``; None: unbounded."""

    key: NoteKey
    valid_from: str | None
    valid_until: str | None
    introduced_by: int | None

    def valid_at(self, time: str) -> bool:
        return ((self.valid_from is None or self.valid_from <= time)
                and (self.valid_until is None or time <= self.valid_until))


@dataclass(frozen=True)
class KeyTrust:
    """The trusted keys, where the trust came from, and what the key rows got wrong."""

    keys: tuple[TrustedKey, ...]
    anchored_by: str
    findings: tuple[Finding, ...]

    @property
    def note_keys(self) -> list[NoteKey]:
        return [k.key for k in self.keys]


@dataclass(frozen=True)
class Rotation:
    checkpoint_id: int
    time: str
    old: NoteKey
    new: NoteKey


def rotations(checkpoints: Sequence[tuple]) -> list[Rotation]:
    """The key rotations stored checkpoints record, each signed by its old and new key
    (rows ``(id, kind, origin, size, root, time, note)`` in id order); others skipped."""
    found = []
    for cid, _kind, _origin, _size, _root, _time, note in checkpoints:
        try:
            checkpoint = parse_checkpoint(parse_note(note)[0])
            if checkpoint.rotation is None:
                continue
            new = verify_rotation(note, checkpoint.rotation[0])
        except (AuditError, ValueError):
            continue  # not a rotation both keys signed: reported with the checkpoints
        found.append(Rotation(cid, checkpoint.time, parse_vkey(checkpoint.rotation[0]), new))
    return found


def key_file_anchor(store: AuditStore) -> NoteKey | None:
    """The public half of the log key file, if it can be read (outside the database)."""
    try:
        return NoteKey.of_private(store.config.origin, read_key(store.config.key_file))
    except (OSError, AuditError, ValueError, TypeError):
        return None


def trust(store: AuditStore, rows: Sequence[LogKeyRecord], checkpoints: Sequence[tuple],
          anchors: Sequence[NoteKey] | None = None) -> KeyTrust:
    """The trusted keys and the findings about the key rows (see the module docstring)."""
    chain = rotations(checkpoints)
    if anchors:
        start, source = list(anchors), "the log keys given to the verifier"
    elif (file_key := key_file_anchor(store)) is not None:
        start, source = [file_key], f"the log key file {store.config.key_file}"
    else:
        first = sorted((r for r in rows if r.introduced_by is None),
                       key=lambda r: (r.valid_from, r.key.key_id))
        start = [first[0].key] if first else []
        source = ("the store's first key (no key given and no log key file: a replaced "
                  "first key cannot be told)")
    trusted = list(dict.fromkeys(start))
    grew = True
    while grew:
        grew = False
        for r in chain:
            if (r.old in trusted) != (r.new in trusted):
                trusted.append(r.new if r.old in trusted else r.old)
                grew = True
    by_key = {r.key: r for r in rows}
    keys = []
    for key in trusted:
        introduced = next((r for r in chain if r.new == key and r.old in trusted), None)
        retired = next((r for r in chain if r.old == key and r.new in trusted), None)
        row = by_key.get(key)
        keys.append(TrustedKey(
            key, introduced.time if introduced else (row.valid_from if row else None),
            retired.time if retired else None,
            introduced.checkpoint_id if introduced else None))
    return KeyTrust(tuple(keys), source, tuple(_row_findings(rows, keys, source)))


def _row_findings(rows: Sequence[LogKeyRecord], keys: list[TrustedKey],
                  source: str) -> list[Finding]:
    findings = []
    trusted = {k.key: k for k in keys}
    for row in rows:
        kid = row.key.key_id.hex()
        k = trusted.get(row.key)
        if k is None:
            findings.append(Finding(
                "key", f"log key {kid} ({row.key.vkey}): expected a key introduced by a "
                f"rotation checkpoint signed by its predecessor, got a row no rotation "
                f"introduces (trust from {source}): the key rows were tampered with"))
            continue
        if row.introduced_by != k.introduced_by:
            findings.append(Finding(
                "key", f"log key {kid}: expected it introduced by "
                f"{_by(k.introduced_by)}, got a row saying {_by(row.introduced_by)}",
                checkpoint_id=k.introduced_by))
        if (k.valid_from is not None and row.valid_from != k.valid_from) or \
                row.valid_until != k.valid_until:
            findings.append(Finding(
                "key", f"log key {kid}: expected validity {k.valid_from or 'start'} .. "
                f"{k.valid_until or 'current'} (its rotations), got {row.valid_from} .. "
                f"{row.valid_until or 'current'}", checkpoint_id=k.introduced_by))
    stored = {r.key for r in rows}
    for k in keys:
        if k.key not in stored:
            findings.append(Finding(
                "key", f"log key {k.key.key_id.hex()} ({k.key.vkey}): trusted ({source}) "
                f"but the store has no row for it: the key rows were replaced or removed",
                checkpoint_id=k.introduced_by))
    return findings


def _by(checkpoint_id: int | None) -> str:
    return "no rotation (the first key)" if checkpoint_id is None else \
        f"rotation checkpoint {checkpoint_id}"
