"""A region at a glance (总览): households by status, and flags per 1,000 households by
township — the figures of the console's first screen, as plain dicts.

Counts come from the register (``register_households``) and the standing red flags
(``flags``) of the region's subtree; the money and the 三率一度 of the same screen are the
ordinary queries (``queries.balance_summary``, ``metrics.metrics``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from projections import register as reg
from projections.flags.tables import flags
from projections.queries import Db, connected

LEVELS = ("province", "city", "county", "township", "village")
STATUSES = ("in_identification", "registered", "exited", "removed", "rejected")


def _within(table: Any, region_code: str | None) -> Any:
    if not region_code:
        return True
    return or_(*[table.c[level] == region_code for level in LEVELS if level in table.c])


def status_counts(db: Db, region_code: str | None) -> dict[str, int]:
    """Households of the subtree by register status (``registered`` = on the register)."""
    h = reg.households
    q = (select(h.c.status, h.c.on_register, func.count(), func.sum(h.c.members_count))
         .where(_within(h, region_code)).group_by(h.c.status, h.c.on_register))
    counts = dict.fromkeys(STATUSES, 0) | {"people_registered": 0, "relapsed": 0, "total": 0}
    with connected(db) as conn:
        for status, on_register, n, people in conn.execute(q).all():
            key = ("registered" if on_register else status if status in STATUSES
                   else "in_identification")
            counts[key] += n
            counts["total"] += n
            if on_register:
                counts["people_registered"] += int(people or 0)
        counts["relapsed"] = conn.execute(
            select(func.count()).where(_within(h, region_code), h.c.relapse_count > 0)
        ).scalar_one()
    return counts


def flags_by_township(db: Db, region_code: str | None) -> list[dict[str, Any]]:
    """Per township of the subtree: households, standing flags (all and high), flags per
    1,000 households; most flagged first."""
    h, r = reg.households, reg.regions
    with connected(db) as conn:
        names = dict(conn.execute(select(r.c.code, r.c.name).where(
            r.c.level == "township", _within(r, region_code) if region_code else True)).all())
        if region_code in names:  # a township asks for itself
            pass
        households = dict(conn.execute(
            select(h.c.township, func.count()).where(_within(h, region_code))
            .group_by(h.c.township)).all())
        standing = flags.c.withdrawn_position.is_(None)
        counted = conn.execute(
            select(flags.c.township, flags.c.severity, func.count())
            .where(standing, _within(flags, region_code))
            .group_by(flags.c.township, flags.c.severity)).all()
    per: dict[str, dict[str, int]] = {}
    for township, severity, n in counted:
        if township is None:
            continue
        entry = per.setdefault(township, {"flags": 0, "high": 0})
        entry["flags"] += n
        entry["high"] += n if severity == "high" else 0
    rows = []
    for code in sorted(set(names) | set(households) | set(per)):
        if code is None:
            continue
        n = households.get(code, 0)
        f = per.get(code, {"flags": 0, "high": 0})
        rows.append({"code": code, "name": names.get(code, code), "households": n,
                     "flags": f["flags"], "high": f["high"],
                     "per_thousand": round(f["flags"] * 1000 / n, 1) if n else None})
    return sorted(rows, key=lambda x: (-(x["per_thousand"] or 0), x["code"]))


def money_of(db: Db, region_code: str) -> dict[str, int | float | None]:
    """The region's money without counting a transfer inside it twice, in fen:

    - ``into`` (到位): what entered the subtree — receipts anywhere in it, and allocations
      into the region's own accounts from above;
    - ``allocated`` (下达): what the region's own accounts passed down;
    - ``paid`` (发放): what any account of the subtree paid out to payees;
    - ``recovered`` (追回), ``balance`` (结余, held anywhere in the subtree);
    - ``progress`` (支出进度) = paid ÷ into.
    """
    from projections.queries import balances

    rows = balances(db, region_code=region_code)
    own = [r for r in rows if r["region_code"] == region_code]
    into = sum(r["received_fen"] for r in rows) + sum(r["allocated_in_fen"] for r in own)
    paid = sum(r["paid_out_fen"] for r in rows)
    return {"into": into, "allocated": sum(r["allocated_down_fen"] for r in own), "paid": paid,
            "recovered": sum(r["recovered_fen"] for r in rows),
            "balance": sum(r["balance_fen"] for r in rows), "accounts": len(rows),
            "progress": paid / into if into else None}
