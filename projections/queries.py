"""Queries over the balances and the register: plain dicts and lists, ready for JSON.

Every function takes a SQLAlchemy ``Connection`` or ``Engine`` (``projections.tracking.
engine_for(url)``).  Ids are those of the domain (``Household.create_id(code)``, …),
dates ISO strings, money integer fen.  Traces and responsibility chains are in
``projections.chains``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, cast, func, or_, select

from domain.errors import NotFound
from projections import balances as bal
from projections import register as reg
from projections.tracking import positions as tracking_positions

Db = Connection | Engine

# 贫困村出列: the poverty-incidence threshold is 3% in the western provinces, 2% elsewhere.
WESTERN_PROVINCES = frozenset({"15", "45", "50", "51", "52", "53", "54", "61", "62", "63", "64",
                               "65"})
COLLECTIVE_INCOME_MIN_FEN = 5_000_000  # 村集体经济收入 ≥ 50,000 yuan
INCOME_SHARE_OF_PROVINCE_MIN = 0.70  # 农民人均纯收入 ≥ 70% of the provincial average


@contextmanager
def connected(db: Db) -> Iterator[Connection]:
    if isinstance(db, Engine):
        with db.connect() as conn:
            yield conn
    else:
        yield db


def plain(value: Any) -> Any:
    """Rows and values as JSON-ready Python: dates as ISO strings."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def total(column: Any) -> Any:
    """SUM as a whole number on every store (PostgreSQL sums bigints as numeric)."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def positions(db: Db) -> dict[str, int]:
    """Tracking position (last notification id taken into account) of each projection."""
    with connected(db) as conn:
        return tracking_positions(conn)


# balances ------------------------------------------------------------------------------
def _in_region(table: Any, region_code: str) -> Any:
    return or_(table.c.region_code == region_code, table.c.province == region_code,
               table.c.city == region_code, table.c.county == region_code,
               table.c.township == region_code)


def _account(row: Any, as_of: dt.date | None) -> dict:
    r = {k: row[k] for k in ("account_id", "name", "region_code", "level", "fund_source",
                             *bal.MONEY, "balance_fen", "idle_since")}
    r["money_in_fen"] = r["received_fen"] + r["allocated_in_fen"]
    if as_of is not None:
        r["idle_days"] = (as_of - r["idle_since"]).days if r["idle_since"] else None
    return plain(r)


def balances(db: Db, *, region_code: str | None = None, fund_source: str | None = None,
             as_of: dt.date | None = None) -> list[dict]:
    """Every account (in a region's subtree, of a fund source): money in, allocated down,
    paid out, recovered, balance, idle since (and idle days on ``as_of``)."""
    q = select(bal.accounts).order_by(bal.accounts.c.region_code, bal.accounts.c.fund_source)
    if region_code:
        q = q.where(_in_region(bal.accounts, region_code))
    if fund_source:
        q = q.where(bal.accounts.c.fund_source == fund_source)
    with connected(db) as conn:
        return [_account(r, as_of) for r in conn.execute(q).mappings()]


def balance_summary(db: Db, region_code: str, *, as_of: dt.date | None = None) -> dict:
    """Totals of a region's subtree: overall, per fund source and per purpose."""
    a, f = bal.accounts, bal.flows
    sums = [total(a.c[c]).label(c) for c in (*bal.MONEY, "balance_fen")]
    idle = func.min(a.c.idle_since).label("idle_since")
    where = _in_region(a, region_code)
    with connected(db) as conn:
        overall = conn.execute(select(*sums, idle, func.count().label("accounts"))
                               .where(where)).mappings().one()
        by_source = conn.execute(select(a.c.fund_source, *sums, idle).where(where)
                                 .group_by(a.c.fund_source).order_by(a.c.fund_source)).mappings()
        by_source = [dict(r) for r in by_source]
        flow_sums = [total(f.c[c]).label(c) for c in bal.MONEY]
        by_purpose = conn.execute(
            select(f.c.purpose, *flow_sums).join(a, a.c.account_id == f.c.account_id)
            .where(where).group_by(f.c.purpose).order_by(f.c.purpose)).mappings()
        by_purpose = [dict(r) for r in by_purpose]

    def with_idle(r: dict) -> dict:
        r["money_in_fen"] = r["received_fen"] + r["allocated_in_fen"]
        if as_of is not None and "idle_since" in r:
            r["idle_days"] = (as_of - r["idle_since"]).days if r["idle_since"] else None
        return plain(r)

    return {"region_code": region_code, "total": with_idle(dict(overall)),
            "by_fund_source": [with_idle(r) for r in by_source],
            "by_purpose": [with_idle(r) for r in by_purpose]}


# the register ----------------------------------------------------------------------------
def household_view(db: Db, household_id: str) -> dict:
    """A household's register entry and the history of its procedures."""
    h = reg.households
    with connected(db) as conn:
        row = conn.execute(select(*[c for c in h.c if c.name not in reg.HASHES])
                           .where(h.c.household_id == str(household_id))).mappings().first()
        if row is None:
            raise NotFound(f"no household {household_id} in the register", field="household_id")
        steps = conn.execute(select(reg.history)
                             .where(reg.history.c.household_id == str(household_id))
                             .order_by(reg.history.c.version)).mappings().all()
        helper = None
        if row["helper_official_id"]:
            helper = conn.execute(select(reg.helpers).where(
                reg.helpers.c.official_id == row["helper_official_id"])).mappings().first()
    out = plain(dict(row))
    out["helper"] = plain(dict(helper)) if helper else None
    out["history"] = [plain({k: s[k] for k in ("version", "step", "effective_date", "status",
                                               "details", "log_position")}) for s in steps]
    return out


def village_view(db: Db, village_code: str) -> dict:
    """A village (村): its households by status, incidence and exit readiness (贫困村出列).

    ``registered`` counts households on the register now (建档立卡, including those in
    the exit procedure), ``exited`` those that left it by exit, ``removed`` the 清退,
    ``relapsed`` those that ever relapsed (返贫).  Incidence (贫困发生率) = people in
    registered households / the village's registered population, where that is known.
    Criteria the events do not carry yet are reported as ``"unknown"``, never guessed.
    """
    h = reg.households
    with connected(db) as conn:
        region = conn.execute(select(reg.regions).where(reg.regions.c.code == village_code)
                              ).mappings().first()
        if region is None or region["level"] != "village":
            raise NotFound(f"no village {village_code}", field="village_code")
        rows = conn.execute(
            select(h.c.household_id, h.c.code, h.c.head_name, h.c.status, h.c.on_register,
                   h.c.members_count, h.c.main_cause, h.c.registered_on, h.c.exited_on,
                   h.c.removed_on, h.c.relapse_count, h.c.helper_official_id)
            .where(h.c.village == village_code).order_by(h.c.code)).mappings().all()
        helper_ids = sorted({r["helper_official_id"] for r in rows if r["helper_official_id"]})
        names = {r.official_id: r.name for r in conn.execute(
            select(reg.helpers.c.official_id, reg.helpers.c.name)
            .where(reg.helpers.c.official_id.in_(helper_ids)))} if helper_ids else {}
    counts = {"applied": len(rows), "registered": 0, "exited": 0, "removed": 0, "relapsed": 0,
              "rejected": 0, "in_identification": 0}
    people = {"registered": 0, "exited": 0}
    helpers: dict[str, dict] = {}
    for r in rows:
        if r["on_register"]:
            counts["registered"] += 1
            people["registered"] += r["members_count"]
        elif r["status"] == "exited":
            counts["exited"] += 1
            people["exited"] += r["members_count"]
        elif r["status"] == "removed":
            counts["removed"] += 1
        elif r["status"] == "rejected":
            counts["rejected"] += 1
        else:
            counts["in_identification"] += 1
        counts["relapsed"] += r["relapse_count"] > 0
        if r["helper_official_id"] and r["on_register"]:
            cadre = helpers.setdefault(r["helper_official_id"], {
                "official_id": r["helper_official_id"],
                "name": names.get(r["helper_official_id"]), "households": 0})
            cadre["households"] += 1
    population = region["population"]
    incidence = people["registered"] / population if population else None
    return {
        "village": plain({k: region[k] for k in ("code", "name", "parent_code", "province",
                                                  "city", "county", "township", "population")}),
        "households": counts, "people": people, "incidence": incidence,
        "exit_readiness": exit_readiness(incidence, region["province"]),
        "assistance_cadres": sorted(helpers.values(), key=lambda c: c["official_id"]),
        "register": [plain({**dict(r), "helper_name": names.get(r["helper_official_id"])})
                     for r in rows],
    }


def exit_readiness(incidence: float | None, province_code: str | None) -> dict:
    """The village-exit criteria (贫困村出列), each ``True``, ``False`` or ``"unknown"``."""
    west = _is_western(province_code)
    if west is None:
        limit = None
        if incidence is None:
            met: bool | str = "unknown"
        elif incidence < 0.02:
            met = True  # below the stricter line: met wherever the province is
        elif incidence >= 0.03:
            met = False
        else:
            met = "unknown"
    else:
        limit = 0.03 if west else 0.02
        met = "unknown" if incidence is None else incidence < limit
    criteria = [
        {"criterion": "poverty incidence (贫困发生率)", "value": incidence,
         "threshold": limit if limit is not None else "0.02 (central, eastern) / 0.03 (western)",
         "met": met},
        {"criterion": "village collective income (村集体经济收入) ≥ 50,000 yuan",
         "threshold_fen": COLLECTIVE_INCOME_MIN_FEN, "value": None, "met": "unknown",
         "why": "no event records village collective income yet"},
        {"criterion": "per-capita net income ≥ 70% of the provincial average",
         "threshold_share": INCOME_SHARE_OF_PROVINCE_MIN, "value": None, "met": "unknown",
         "why": "no event records villagers' average income or the provincial average yet"},
    ]
    values = [c["met"] for c in criteria]
    ready: bool | str = False if False in values else ("unknown" if "unknown" in values else True)
    return {"western_province": west, "criteria": criteria, "ready": ready}


def _is_western(province_code: str | None) -> bool | None:
    """By the GB/T 2260 province code; None when the code is not a real province's."""
    if not province_code or len(province_code) < 2 or not province_code[:2].isdigit():
        return None
    prefix = int(province_code[:2])
    if not 11 <= prefix <= 65:
        return None
    return province_code[:2] in WESTERN_PROVINCES
