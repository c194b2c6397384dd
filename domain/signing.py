"""Signatures on procedure steps and money events (签字).

Canonical encoding — what exactly an official signs
----------------------------------------------------
A signature covers one *step*: the event name, the aggregate it happens to, the step's
content (every field the command carries except the signatures themselves) and the
signer's own declaration (official id, role, key id).  The message is the UTF-8 JSON
text of that object with keys sorted, no insignificant white space and non-ASCII kept
as is (``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``).
Dates are ISO ``YYYY-MM-DD`` strings, money is an integer number of fen, ids are
lower-case hyphenated UUID strings.  The leading ``"zhuisu-step/v1"`` domain tag keeps a
step signature from ever being valid as any other kind of message.

Worked example: preparer ``5f0c…`` signs ``FundAccount.Disbursed`` on account ``9a1e…``::

    {"content":{"amount_fen":120000,"document_no":"QX-2025-0042",...},
     "signer":{"key_id":"3b7f0c1d2e4a5968","official_id":"5f0c…","role":"preparer"},
     "step":"FundAccount.Disbursed","subject":"9a1e…","tag":"zhuisu-step/v1"}

The signature is Ed25519 (RFC 8032) over those bytes, carried base64-encoded.  The key
id is the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from domain.errors import InvalidInput

TAG = "zhuisu-step/v1"


class Role(str, enum.Enum):
    """Signature roles: 经办 preparer, 审核 reviewer, 审批 approver, 见证 witness."""

    PREPARER = "preparer"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    WITNESS = "witness"


_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> Any:
    """Reduce a value to the JSON types the canonical encoding allows."""
    kind = type(value)
    if kind in _SCALARS:  # the common case, decided without isinstance chains
        return value
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, float):
        raise InvalidInput("floats are not allowed in signed content; use integer fen")
    return value


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Any) -> bytes:
    return _ENCODER.encode(_plain(obj)).encode("utf-8")


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.:-]*")


def _json_str(text: str) -> bytes:
    """JSON string literal; ids, roles and step names need no escaping (fast path)."""
    if _PLAIN_TEXT.fullmatch(text):
        return b'"' + text.encode("ascii") + b'"'
    return canonical_json(text)


_TAG_JSON = b'"' + TAG.encode("ascii") + b'"'


def step_message(
    step: str, subject: UUID | str, content: Mapping[str, Any] | bytes, official_id: str,
    role: str, key_id: str,
) -> bytes:
    """The exact bytes one signer signs for one step (see module docstring).

    ``content`` may be given already encoded (``canonical_json(content)``), so a step with
    several signers encodes its content once; the result is byte-for-byte the canonical
    JSON of the whole object, whose sorted keys are content, signer, step, subject, tag.
    """
    content_json = content if isinstance(content, bytes) else canonical_json(content)
    signer = b"".join((b'{"key_id":', _json_str(key_id), b',"official_id":',
                       _json_str(str(official_id)), b',"role":', _json_str(str(_plain(role))),
                       b"}"))
    return b"".join((b'{"content":', content_json, b',"signer":', signer, b',"step":',
                     _json_str(step), b',"subject":', _json_str(str(subject)),
                     b',"tag":', _TAG_JSON, b"}"))


def content_digest(step: str, subject: UUID | str, content: Mapping[str, Any] | bytes) -> str:
    """A stable digest of a step's content; equal digests mean the same command.

    SHA-256 of the canonical JSON of ``{"content", "step", "subject"}``.
    """
    content_json = content if isinstance(content, bytes) else canonical_json(content)
    return hashlib.sha256(b"".join((
        b'{"content":', content_json, b',"step":', _json_str(step),
        b',"subject":', _json_str(str(subject)), b"}"))).hexdigest()


def key_id_of(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes", field="public_key")
    return hashlib.sha256(public_key).hexdigest()[:16]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("must be standard base64", field=field) from exc


@dataclass(frozen=True)
class Signature:
    """One official's signature on a step, as carried in a command and stored in its event."""

    official_id: str
    role: Role
    key_id: str
    signature: str  # base64 Ed25519 signature

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], index: int = 0) -> Signature:
        where = f"signatures[{index}]"
        try:
            role = Role(d["role"])
        except KeyError as exc:
            raise InvalidInput(f"missing {exc.args[0]}", field=f"{where}.{exc.args[0]}") from exc
        except ValueError as exc:
            raise InvalidInput(
                f"role must be one of {[r.value for r in Role]}", field=f"{where}.role"
            ) from exc
        for key in ("official_id", "key_id", "signature"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise InvalidInput("must be a non-empty string", field=f"{where}.{key}")
        return cls(str(d["official_id"]), role, d["key_id"], d["signature"])

    def as_dict(self) -> dict[str, str]:
        return {
            "official_id": self.official_id,
            "role": self.role.value,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def verify_signature(public_key: bytes, signature_b64: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            unb64(signature_b64, "signature"), message
        )
    except (InvalidSignature, InvalidInput, ValueError):
        return False
    return True


class SigningKey:
    """An official's private key, held by the official (CLI key file), never by zhuisu."""

    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.public_bytes = private.public_key().public_bytes_raw()
        self.key_id = key_id_of(self.public_bytes)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic key from a 32-byte seed (demo data, tests)."""
        return cls(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()))

    def private_bytes(self) -> bytes:
        return self._private.private_bytes_raw()

    def sign_step(
        self, step: str, subject: UUID | str, content: Mapping[str, Any],
        official_id: str, role: Role | str,
    ) -> Signature:
        role = Role(role)
        message = step_message(step, subject, content, official_id, role.value, self.key_id)
        return Signature(str(official_id), role, self.key_id, b64(self._private.sign(message)))


def sign_command(step: str, subject: UUID | str, content: Mapping[str, Any],
                 signers: list[tuple[str, SigningKey, Role | str]]) -> dict[str, Any]:
    """Build a signed command envelope: every (official id, key, role) signs the content.

    This is the client's side of the contract (the CLI's ``zhuisu sign``, tests, demo data).
    """
    return {
        "step": step,
        "subject": str(subject),
        "content": dict(content),
        "signatures": [key.sign_step(step, subject, content, official_id, role).as_dict()
                       for official_id, key, role in signers],
    }
