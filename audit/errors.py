"""Named failures of the integrity layer.  Each says what was expected and what was found.

They are ``DomainError`` subclasses so the adapters map them to HTTP codes in the one place
they already map the domain's refusals.  ``audit.merkle.ProofError`` (a pure RFC 6962 module)
stays a plain ``ValueError``; ``audit.proofs`` raises it as ``ProofInvalid``, which is both.
"""

from __future__ import annotations

from audit.merkle import ProofError
from domain.errors import DomainError


class AuditError(DomainError):
    """Something in the tamper-evident log does not hold."""


class RecordFormatError(AuditError):
    """Bytes are not a canonical record encoding (``audit.records``)."""


class CheckpointFormatError(AuditError):
    """Text is not a checkpoint / signed note in the C2SP format (``audit.checkpoints``)."""


class CheckpointSignatureError(AuditError):
    """A signed note has no valid signature by a trusted key, or a bad one by a known key."""


class ProofBundleError(AuditError):
    """A proof bundle (``audit.proofs``) is malformed or does not fit its checkpoint."""


class ProofInvalid(AuditError, ProofError):
    """A proof's hashes do not lead to the signed root (``audit.merkle.ProofError``, as a
    refusal the adapters report: 422, one line)."""


class NotInLog(AuditError):
    """The event, leaf or checkpoint asked for is not (yet) in the log."""

    status = 404


class LogKeyError(AuditError):
    """The log's signing key file is missing, unsafe, or not the log's current key."""

    status = 500
