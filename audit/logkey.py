"""The log's Ed25519 signing key: made on first start, published, rotated on the record.

The private key lives in one file, ``ZHUISU_LOG_KEY_FILE`` (default ``var/log-key``):
PKCS#8 PEM, created with mode 0600 (``O_EXCL``, so two first starts cannot both write it).
A key file that group or others may read is refused.  The database never holds it.

Every public key the log has used is in ``log_keys`` (key ID, vkey, valid from, valid
until, the rotation checkpoint that introduced it); ``valid_until IS NULL`` marks the
current key.  The first key is registered when the log first signs.

Rotation (``audit.log.rotate_log_key``): the new key is written beside the old one as
``<key file>.new`` (0600); a key-rotation checkpoint naming the old and the new vkey is
signed by both keys and stored in the same transaction that closes the old key's validity
and opens the new one's; only then does the new file replace the old one, so the retired
private key is gone and cannot sign again.  If the process stops between the commit and
the rename, the next start finds ``.new`` holding the registered current key and finishes
the rename.  A verifier that trusts the old key learns the new one from the rotation
checkpoint (``checkpoints.verify_rotation``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from sqlalchemy import Connection, func, insert, select

from audit.checkpoints import NoteKey, parse_vkey
from audit.errors import LogKeyError
from audit.store import log_keys


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def write_new_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and write it to ``path`` (must not exist), mode 0600."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        f.flush()
        os.fsync(f.fileno())
    return key


def read_key(path: Path) -> Ed25519PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise LogKeyError(f"log key file {path}: expected mode 0600, got {mode:04o}",
                          field="ZHUISU_LOG_KEY_FILE")
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise LogKeyError(f"log key file {path}: expected an Ed25519 key, "
                          f"got {type(key).__name__}", field="ZHUISU_LOG_KEY_FILE")
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``, generated there on first start."""
    try:
        return write_new_key(path)
    except FileExistsError:
        return read_key(path)


@dataclass(frozen=True)
class LogKeyRecord:
    """One row of ``log_keys``."""

    key: NoteKey
    valid_from: str
    valid_until: str | None
    introduced_by: int | None

    def valid_at(self, time: str) -> bool:
        return self.valid_from <= time and (self.valid_until is None or time <= self.valid_until)

    def to_dict(self) -> dict[str, object]:
        return {"vkey": self.key.vkey, "key_id": self.key.key_id.hex(),
                "valid_from": self.valid_from, "valid_until": self.valid_until,
                "introduced_by_checkpoint": self.introduced_by}


def known_keys(conn: Connection) -> list[LogKeyRecord]:
    """Every key the log has used, oldest first."""
    rows = conn.execute(select(log_keys).order_by(func.coalesce(log_keys.c.introduced_by, 0)))
    return [LogKeyRecord(parse_vkey(r.vkey), r.valid_from, r.valid_until, r.introduced_by)
            for r in rows]


def current_signing_key(conn: Connection, path: Path, origin: str,
                        now: str) -> tuple[NoteKey, Ed25519PrivateKey]:
    """The current key and its private half, checked against ``log_keys``.

    Call inside the transaction that will use it, after ``tree_store.lock_state``: on first
    use it registers the key valid from ``now``.
    """
    current = [k for k in known_keys(conn) if k.valid_until is None]
    if not current:
        private = load_or_create_key(path)
        key = NoteKey.of_private(origin, private)
        conn.execute(insert(log_keys).values(key_id=key.key_id.hex(), vkey=key.vkey,
                                             valid_from=now, valid_until=None,
                                             introduced_by=None))
        return key, private
    expected = current[-1].key
    pending = pending_path(path)
    if pending.exists() and NoteKey.of_private(origin, read_key(pending)) == expected:
        os.replace(pending, path)  # finish a rotation interrupted after its commit
    if not path.exists():
        raise LogKeyError(f"log key file {path}: expected the key {expected.vkey}, got no file",
                          field="ZHUISU_LOG_KEY_FILE")
    private = read_key(path)
    key = NoteKey.of_private(origin, private)
    if key != expected:
        raise LogKeyError(f"log key file {path}: expected the log's current key "
                          f"{expected.vkey}, got {key.vkey} (restore the file or check "
                          f"ZHUISU_LOG_ORIGIN)", field="ZHUISU_LOG_KEY_FILE")
    return key, private
