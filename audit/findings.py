"""What full verification reports: findings located by leaf and notification id.

``VerificationResult.ok`` or the findings, the first (lowest leaf index) first; the kinds are
described in ``audit.verify``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("changed", "deleted", "inserted", "swapped", "reordered", "truncated", "rewritten",
         "tree", "checkpoint", "signature", "key", "snapshot")


@dataclass(frozen=True)
class Finding:
    """One thing that does not hold, located by leaf index and notification id if it can be."""

    kind: str
    message: str
    leaf_index: int | None = None
    position: int | None = None
    fields: tuple[str, ...] = ()
    other_position: int | None = None
    checkpoint_id: int | None = None
    last_intact_position: int | None = None  # truncated: the last notification id still there

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class VerificationResult:
    """OK, or the findings with the first (lowest leaf index) first."""

    tree_size: int
    records: int
    checkpoints: int
    pending: int
    findings: tuple[Finding, ...]
    seconds: float
    snapshots: int = 0  # snapshots held against a replay of their aggregate
    signatures: int | None = None  # signatures re-verified (verify --signatures), else None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def first_bad_position(self) -> int | None:
        return self.first.position if self.first else None

    @property
    def kind(self) -> str | None:
        return self.first.kind if self.first else None

    @property
    def message(self) -> str:
        if self.ok:
            signed = ("" if self.signatures is None
                      else f", {self.signatures} signatures re-verified")
            return (f"OK: {self.records} records, {self.tree_size} leaves, "
                    f"{self.checkpoints} checkpoints and {self.snapshots} snapshots verified"
                    f"{signed} ({self.pending} records not yet in the tree)")
        where = f" at leaf {self.first.leaf_index}" if self.first.leaf_index is not None else ""
        return f"{self.first.kind}{where}: {self.first.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "tree_size": self.tree_size,
                "records": self.records, "checkpoints": self.checkpoints,
                "pending": self.pending, "snapshots": self.snapshots,
                "signatures": self.signatures, "seconds": round(self.seconds, 3),
                "findings": [f.to_dict() for f in self.findings]}
