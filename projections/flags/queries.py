"""The flags read back: standing flags by rule, region subtree, subject, severity and date
(``list_flags``), one flag standing or withdrawn (``get_flag``), the flags on what an
official signed (``flags_signed_by``) and counts per rule (``flag_counts``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select

from domain.errors import InvalidInput, NotFound
from inspection.rules import RULE_IDS, RULES
from projections.flags.tables import LEVELS, flag_signers, flags
from projections.queries import Db, connected, plain

MAX_LIMIT = 1000


def _day(value: dt.date | str | None, field: str) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("must be a date YYYY-MM-DD", field=field) from None


def _in_region(region_code: str) -> Any:
    """The subtree: ``region_code`` at any level of the path (the flag's own region is its
    deepest level, so one index per level answers it)."""
    return or_(*[flags.c[level] == region_code for level in LEVELS])


def _flag(row: Any) -> dict:
    out = plain({c.name: row[c.name] for c in flags.columns if c.name not in LEVELS})
    out["standing"] = row["withdrawn_position"] is None
    return out


def list_flags(db: Db, *, rule_id: str | None = None, region_code: str | None = None,
               subject_id: str | None = None, severity: str | None = None,
               date_from: dt.date | str | None = None, date_to: dt.date | str | None = None,
               after: str | None = None, limit: int = 100,
               status: str = "standing") -> list[dict]:
    """Standing flags (``status``: or ``withdrawn``, or ``all``), by flag id, after the
    cursor ``after`` (a flag id), at most ``limit``.

    ``region_code`` matches any level of the flag's region path (the subtree);
    ``date_from``/``date_to`` bound ``effective_date`` (inclusive).
    """
    if rule_id is not None and rule_id not in RULES:
        raise InvalidInput(f"unknown rule; one of {list(RULE_IDS)}", field="rule_id")
    if severity is not None and severity not in ("high", "medium", "low"):
        raise InvalidInput("must be high, medium or low", field="severity")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    if status not in ("standing", "withdrawn", "all"):
        raise InvalidInput("must be standing, withdrawn or all", field="status")
    first, last = _day(date_from, "date_from"), _day(date_to, "date_to")
    f = flags.c
    q = select(flags)
    if status == "standing":
        q = q.where(f.withdrawn_position.is_(None))
    elif status == "withdrawn":
        q = q.where(f.withdrawn_position.is_not(None))
    if rule_id is not None:
        q = q.where(f.rule_id == rule_id)
    if region_code:
        q = q.where(_in_region(region_code))
    if subject_id is not None:
        q = q.where(f.subject_id == str(subject_id))
    if severity is not None:
        q = q.where(f.severity == severity)
    if first is not None:
        q = q.where(f.effective_date >= first)
    if last is not None:
        q = q.where(f.effective_date <= last)
    if after is not None:
        q = q.where(f.flag_id > after)
    with connected(db) as conn:
        return [_flag(r) for r in conn.execute(q.order_by(f.flag_id).limit(limit)).mappings()]


def flags_signed_by(db: Db, official_id: str, *, date_from: dt.date | None = None,
                    date_to: dt.date | None = None, limit: int = 50) -> dict:
    """Standing flags on steps ``official_id`` signed (谁签字谁负责): count by rule, and the
    first ``limit`` by business date."""
    s, f = flag_signers, flags
    where = [s.c.official_id == str(official_id), f.c.withdrawn_position.is_(None)]
    if date_from:
        where.append(f.c.effective_date >= date_from)
    if date_to:
        where.append(f.c.effective_date <= date_to)
    with connected(db) as conn:
        found = [dict(r) for r in conn.execute(
            select(f).join(s, s.c.flag_id == f.c.flag_id).where(*where)
            .order_by(f.c.effective_date, f.c.flag_id)).mappings()]
    found = [r for r in found if str(official_id) in r["signers"]]  # as raised last
    by_rule: dict[str, int] = {}
    for r in found:
        by_rule[r["rule_id"]] = by_rule.get(r["rule_id"], 0) + 1
    return {"count": len(found), "by_rule": by_rule,
            "items": [_flag(r) for r in found[:limit]]}


def get_flag(db: Db, flag_id: str) -> dict:
    """One flag, standing or withdrawn (``standing``, ``withdrawn_position``)."""
    with connected(db) as conn:
        row = conn.execute(select(flags).where(flags.c.flag_id == str(flag_id))
                           ).mappings().first()
    if row is None:
        raise NotFound(f"no flag {flag_id}", field="flag_id")
    return _flag(row)


def flag_counts(db: Db, region_code: str | None = None) -> dict[str, int]:
    """Standing flags per rule (every rule of the catalogue, 0 when none), in a subtree."""
    q = (select(flags.c.rule_id, func.count()).where(flags.c.withdrawn_position.is_(None))
         .group_by(flags.c.rule_id))
    if region_code:
        q = q.where(_in_region(region_code))
    counts = dict.fromkeys(RULE_IDS, 0)
    with connected(db) as conn:
        for rule_id, n in conn.execute(q).all():
            counts[rule_id] = n
    return counts
