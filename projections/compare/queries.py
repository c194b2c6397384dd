"""The matches and snapshots read back: matches by model, region subtree, household,
snapshot and severity (``list_matches``), one match (``get_match``), counts per model
(``match_counts``), the snapshots of the registers (``list_snapshots``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from domain.errors import InvalidInput, NotFound
from inspection.rules.compare import MODEL_IDS, MODELS
from projections.compare.tables import matches, snapshots
from projections.flags.tables import LEVELS
from projections.queries import Db, connected, plain

MAX_LIMIT = 1000


def _in_region(region_code: str) -> Any:
    return or_(*[matches.c[level] == region_code for level in LEVELS])


def _match(row: Any) -> dict:
    return plain({c.name: row[c.name] for c in matches.columns if c.name not in LEVELS})


def list_matches(db: Db, *, model_id: str | None = None, region_code: str | None = None,
                 household_id: str | None = None, snapshot_id: str | None = None,
                 severity: str | None = None, after: str | None = None,
                 limit: int = 100) -> list[dict]:
    """Matches by match id, after the cursor ``after``, at most ``limit``."""
    if model_id is not None and model_id not in MODELS:
        raise InvalidInput(f"unknown model; one of {list(MODEL_IDS)}", field="model_id")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    m = matches.c
    q = select(matches)
    if model_id is not None:
        q = q.where(m.model_id == model_id)
    if region_code:
        q = q.where(_in_region(region_code))
    if household_id is not None:
        q = q.where(m.household_id == str(household_id))
    if snapshot_id is not None:
        q = q.where(m.snapshot_id == str(snapshot_id))
    if severity is not None:
        q = q.where(m.severity == severity)
    if after is not None:
        q = q.where(m.match_id > after)
    with connected(db) as conn:
        return [_match(r) for r in conn.execute(q.order_by(m.match_id).limit(limit)).mappings()]


def get_match(db: Db, match_id: str) -> dict:
    with connected(db) as conn:
        row = conn.execute(select(matches).where(matches.c.match_id == str(match_id))
                           ).mappings().first()
    if row is None:
        raise NotFound(f"no match {match_id}", field="match_id")
    return _match(row)


def match_counts(db: Db, region_code: str | None = None) -> dict[str, int]:
    q = select(matches.c.model_id, func.count()).group_by(matches.c.model_id)
    if region_code:
        q = q.where(_in_region(region_code))
    counts = dict.fromkeys(MODEL_IDS, 0)
    with connected(db) as conn:
        for model_id, n in conn.execute(q).all():
            counts[model_id] = n
    return counts


def list_snapshots(db: Db, *, kind: str | None = None) -> list[dict]:
    """Every snapshot, newest first per register; ``current``: not superseded."""
    s = snapshots.c
    q = select(snapshots)
    if kind is not None:
        q = q.where(s.kind == kind)
    with connected(db) as conn:
        out = [plain(dict(r)) for r in conn.execute(
            q.order_by(s.department, s.kind, s.as_of.desc(), s.log_position.desc())).mappings()]
    for r in out:
        r["current"] = r["superseded_by"] is None
    return out
