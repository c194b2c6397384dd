"""Signed checkpoints: a C2SP tlog-checkpoint body in a C2SP signed note, signed with Ed25519.

Pure functions, no database: the offline verifier needs only the note text and a key.

Checkpoint body (c2sp.org/tlog-checkpoint), one item per line, each ending in a newline::

    <origin>                      the log's name, e.g. zhuisu.example/log
    <tree size>                   decimal, no leading zeroes
    <root hash>                   standard base64 of the 32-byte RFC 6962 root
    time <YYYY-MM-DDTHH:MM:SSZ>   extension line: when the log signed it (UTC)
    [key-rotation <old vkey> <new vkey>]
                                  extension line of a key-rotation checkpoint only

Signed note (c2sp.org/signed-note): the body, a blank line, then one line per signature::

    — <key name> <base64(key ID (4 bytes) ‖ Ed25519 signature of the body)>

with ``key ID = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]`` and the key
name equal to the origin.  A public key is published as a *vkey*, the text form of Go's
``golang.org/x/mod/sumdb/note`` verifier keys: ``<name>+<hex key ID>+<base64(0x01 ‖ key)>``.

Verification (``open_note``): signatures by keys the verifier does not know are ignored;
a signature by a known key that fails rejects the note; at least one known key must have
signed.  A checkpoint as a person keeps it, and the log's public key (vkey)::

    zhuisu.example/log
    21
    GiZgImw3/iPOC7qhqF1nOE5DM3ldjC9tndLtolx0Z40=
    time 2026-11-23T15:28:01Z

    — zhuisu.example/log 0zxfuK1bCeDwg5cfGbeXjmeCF/flfP6H1IhHBvYCryVtLi6t9bpyR6CULGByBk5DXBNgelwgy7MIKcbMO367J4yLSAw=

    zhuisu.example/log+d33c5fb8+AZygo7aV7+b+MLjgWazTCy9WT3kYsa7GuwAUe0f18rLE

(``tests/test_audit_checkpoints.py`` checks this example, and that our notes are byte for
byte those of Go's ``golang.org/x/mod/sumdb/note`` for its published test key.)

The time line is an extension line (the spec allows them, and notes that monitors cannot
audit them): the issue asks that every checkpoint say when it was signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import CheckpointFormatError, CheckpointSignatureError
from audit.merkle import HASH_SIZE

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _b64decode(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointFormatError(f"{what}: expected standard base64, got {text!r}") from exc
    if base64.b64encode(data).decode() != text:
        raise CheckpointFormatError(f"{what}: expected canonical base64, got {text!r}")
    return data


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise CheckpointFormatError(f"key name / origin: expected non-empty text without "
                                    f"spaces or '+', got {name!r}")


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class NoteKey:
    """A log public key under its name (the origin)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise CheckpointFormatError(
                f"Ed25519 public key: expected 32 bytes, got {len(self.public_key)}")

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + bytes([ED25519])
                              + self.public_key).digest()[:4]

    @property
    def vkey(self) -> str:
        """``<name>+<hex key ID>+<base64(0x01 ‖ public key)>``."""
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def of_private(cls, name: str, private_key: Ed25519PrivateKey) -> NoteKey:
        return cls(name, private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def verify(self, signature: bytes, text: str) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


def parse_vkey(vkey: str) -> NoteKey:
    """The inverse of ``NoteKey.vkey``; checks the key ID against the key."""
    parts = vkey.strip().split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3:
        raise CheckpointFormatError(f"vkey: expected <name>+<hex id>+<base64 key>, got {vkey!r}")
    name, hex_id, encoded = parts
    key_bytes = _b64decode(encoded, "vkey key")
    if len(key_bytes) != 33 or key_bytes[0] != ED25519:
        raise CheckpointFormatError(f"vkey key: expected 0x01 and a 32-byte Ed25519 key, got "
                                    f"{len(key_bytes)} bytes starting {key_bytes[:1].hex()}")
    key = NoteKey(name, key_bytes[1:])
    if key.key_id.hex() != hex_id.lower():
        raise CheckpointFormatError(f"vkey key ID: expected {key.key_id.hex()}, got {hex_id}")
    return key


def as_keys(keys: str | NoteKey | Sequence[str | NoteKey]) -> list[NoteKey]:
    """One or many keys, each a ``NoteKey`` or a vkey string."""
    if isinstance(keys, (str, NoteKey)):
        keys = [keys]
    return [k if isinstance(k, NoteKey) else parse_vkey(k) for k in keys]


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint states: the log ``origin`` had ``size`` leaves with ``root`` at ``time``.

    ``rotation`` is ``(old vkey, new vkey)`` on the checkpoint that records a key rotation.
    """

    origin: str
    size: int
    root: bytes
    time: str
    rotation: tuple[str, str] | None = None

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(),
                 f"time {self.time}"]
        if self.rotation:
            lines.append(f"key-rotation {self.rotation[0]} {self.rotation[1]}")
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse and check a checkpoint body (the note text, without signatures)."""
    if not body.endswith("\n"):
        raise CheckpointFormatError("checkpoint: expected text ending in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 4:
        raise CheckpointFormatError(f"checkpoint: expected origin, size, root and time lines, "
                                    f"got {len(lines)} lines")
    origin, size, root_b64, time_line, *extensions = lines
    _check_name(origin)
    if not _SIZE.fullmatch(size):
        raise CheckpointFormatError(f"tree size: expected a decimal without leading zeroes, "
                                    f"got {size!r}")
    root = _b64decode(root_b64, "root hash")
    if len(root) != HASH_SIZE:
        raise CheckpointFormatError(f"root hash: expected {HASH_SIZE} bytes, got {len(root)}")
    if not time_line.startswith("time ") or not _TIME.fullmatch(time_line[5:]):
        raise CheckpointFormatError(f"time line: expected 'time YYYY-MM-DDTHH:MM:SSZ', "
                                    f"got {time_line!r}")
    rotation = None
    for line in extensions:
        words = line.split(" ")
        if words[0] == "key-rotation" and len(words) == 3 and rotation is None:
            parse_vkey(words[1]), parse_vkey(words[2])
            rotation = (words[1], words[2])
        elif not line:
            raise CheckpointFormatError("extension line: expected non-empty, got an empty line")
    return Checkpoint(origin, int(size), root, time_line[5:], rotation)


def sign_note(text: str, signers: Sequence[tuple[str, Ed25519PrivateKey]]) -> str:
    """The signed note: text, a blank line, one signature line per (key name, private key)."""
    if not text.endswith("\n") or "\n\n" in text or _CONTROL.search(text):
        raise CheckpointFormatError("note text: expected lines ending in a newline, no empty "
                                    "line and no control characters")
    lines = []
    for name, private_key in signers:
        key = NoteKey.of_private(name, private_key)
        signature = key.key_id + private_key.sign(text.encode())
        lines.append(f"{SIGNATURE_PREFIX}{name} {base64.b64encode(signature).decode()}\n")
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


def parse_note(note: str) -> tuple[str, list[NoteSignature]]:
    """(text, signatures) of a signed note, checking only the format."""
    if _CONTROL.search(note):
        raise CheckpointFormatError("signed note: expected no control characters but newline")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointFormatError("signed note: expected text, a blank line and signature "
                                    "lines each ending in a newline")
    text, block = note[:split + 1], note[split + 2:-1]
    signatures = []
    for line in block.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise CheckpointFormatError(f"signature line: expected '— <name> <base64>', "
                                        f"got {line!r}")
        name, encoded = line[len(SIGNATURE_PREFIX):].split(" ")
        _check_name(name)
        raw = _b64decode(encoded, "signature")
        if len(raw) < 5:
            raise CheckpointFormatError(f"signature: expected a key ID and a signature, "
                                        f"got {len(raw)} bytes")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if len(signatures) > MAX_SIGNATURES:
        raise CheckpointFormatError(f"signed note: expected at most {MAX_SIGNATURES} "
                                    f"signatures, got {len(signatures)}")
    return text, signatures


def open_note(note: str, trusted: str | NoteKey | Sequence[str | NoteKey]
              ) -> tuple[str, list[NoteKey]]:
    """(text, keys that signed it) if a trusted key signed the note.

    Otherwise ``CheckpointSignatureError``; format problems ``CheckpointFormatError``.
    """
    keys = {(k.name, k.key_id): k for k in as_keys(trusted)}
    text, signatures = parse_note(note)
    signed_by: list[NoteKey] = []
    for sig in signatures:
        key = keys.get((sig.name, sig.key_id))
        if key is None:
            continue  # an unknown key: ignored, as the spec requires
        if not key.verify(sig.signature, text):
            raise CheckpointSignatureError(
                f"signature by {sig.name}+{sig.key_id.hex()}: expected a valid Ed25519 signature "
                f"of the note text, got one that does not verify")
        if key not in signed_by:
            signed_by.append(key)
    if not signed_by:
        raise CheckpointSignatureError(
            f"signed note: expected a signature by one of "
            f"{sorted(f'{n}+{i.hex()}' for n, i in keys)}, got signatures by "
            f"{[f'{s.name}+{s.key_id.hex()}' for s in signatures]}")
    return text, signed_by


def verify_checkpoint(note: str, trusted: str | NoteKey | Sequence[str | NoteKey]) -> Checkpoint:
    """The checkpoint a signed note states, if a trusted key signed it (offline)."""
    text, signed_by = open_note(note, trusted)
    checkpoint = parse_checkpoint(text)
    names = {k.name for k in signed_by}
    if checkpoint.origin not in names:
        raise CheckpointSignatureError(f"checkpoint origin: expected the signing key's name "
                                       f"{sorted(names)}, got {checkpoint.origin!r}")
    return checkpoint


def verify_rotation(note: str, old_key: str | NoteKey) -> NoteKey:
    """The new log key announced by a key-rotation checkpoint that the old key signed.

    The note must name ``old_key`` as the old key and be signed by both the old and the new
    key: the old key vouches for the new one, the new one proves it is held.
    """
    old = as_keys(old_key)[0]
    text, _ = parse_note(note)
    checkpoint = parse_checkpoint(text)
    if checkpoint.rotation is None:
        raise CheckpointFormatError("key rotation: expected a 'key-rotation' line, got none")
    named_old, new = (parse_vkey(v) for v in checkpoint.rotation)
    if named_old != old:
        raise CheckpointSignatureError(f"key rotation: expected old key {old.vkey}, "
                                       f"got {named_old.vkey}")
    _, signed_by = open_note(note, [old, new])
    missing = [k.vkey for k in (old, new) if k not in signed_by]
    if missing:
        raise CheckpointSignatureError(f"key rotation: expected signatures by the old and the "
                                       f"new key, missing {missing}")
    return new


def follow_rotations(notes: Sequence[str], anchor: str | NoteKey) -> list[NoteKey]:
    """The keys a verifier who trusts ``anchor`` may trust, learnt from rotation checkpoints.

    ``notes`` are checkpoint notes in the order the log signed them (e.g. an export's);
    each key-rotation note signed by a key already trusted and by the new key adds the new
    key.  Other notes, and rotations from keys not (yet) trusted, are skipped.
    """
    trusted = as_keys(anchor)
    for note in notes:
        try:
            rotation = parse_checkpoint(parse_note(note)[0]).rotation
        except CheckpointFormatError:
            continue
        if rotation and parse_vkey(rotation[0]) in trusted:
            new = verify_rotation(note, rotation[0])
            if new not in trusted:
                trusted.append(new)
    return trusted
