"""三率一度: poverty incidence, wrong-exit rate, missed-registration rate and satisfaction,
per village, township or county and year, as ``docs/INSPECTION.md`` defines them.

The register projection keeps each household's state *now*; these rates need its state
at the end of a year and what it was when it applied.  So this projection keeps, per
household (``metrics_households``): where it lives, when it applied, its main cause,
income per capita and members at application, and dated timelines — on/off the register
(county approval and relapse put it on, exit approval and removal take it off), members
(application, annual reviews), exits and relapses — each entry with its log position, so
a backdated step (a removal recorded late) falls into place.  The figures are computed
on demand from these rows (a household imported from a roster, 花名册, is on from its
effective date and off from the roster's ``exited_on``, an exit), the registered population of ``register_regions``, the cases
(``case_evidence`` of ``fake_exit`` cases) and the surveys (``case_surveys``), by the
definitions of ``inspection.assessment``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Date,
    Index,
    Integer,
    String,
    Table,
    select,
)

from domain.errors import InvalidInput, NotFound
from domain.household import INCOME_LINES_FEN
from inspection.assessment import (
    INCIDENCE_LIMIT,
    RELAPSE_WINDOW_DAYS,
    THRESHOLDS,
    figure,
    household_facts,
)
from projections import cases as cs
from projections import register as reg
from projections.events import Event
from projections.projection import Projection, Rows, handles
from projections.queries import Db, _is_western, connected, plain
from projections.tracking import metadata

LEVELS = ("province", "city", "county", "township", "village")

households = Table(
    "metrics_households", metadata,
    Column("household_id", String(36), primary_key=True),
    Column("code", String(64), nullable=False),
    *[Column(level, String(32)) for level in LEVELS],
    Column("applied_on", Date, nullable=False),
    Column("main_cause", String(32), nullable=False),
    Column("income_at_application_fen", BigInteger, nullable=False),
    Column("members_at_application", Integer, nullable=False),
    Column("register", JSON, nullable=False),  # [[date, 1 on | 0 off, log position], …]
    Column("members", JSON, nullable=False),  # [[date, members, log position], …]
    Column("exits", JSON, nullable=False),  # [[exit approval date, log position], …]
    Column("relapses", JSON, nullable=False),  # [[date, log position], …]
)
Index("metrics_households_county", households.c.county)
Index("metrics_households_township", households.c.township)
Index("metrics_households_village", households.c.village)

ON_OFF = {"Household.ApprovedByCounty": 1, "Household.Relapsed": 1,
          "Household.ExitApprovedByCounty": 0, "Household.RemovedFromRegister": 0}


class Metrics(Projection):
    name = "metrics"
    version = 2  # 2: households imported from a roster
    tables = (households,)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        rows.load(households, {(e.originator_id,) for e in events
                               if e.step != "Household.Applied"})

    @handles("Household.Applied")
    def applied(self, e: Event, rows: Rows) -> None:
        path = e["region_path"]
        size = len(e["members"])
        rows.insert(households, {
            "household_id": e.originator_id, "code": e["household_code"],
            **{level: path.get(level) for level in LEVELS}, "applied_on": e.day,
            "main_cause": e["main_cause"], "income_at_application_fen": e["income_per_capita_fen"],
            "members_at_application": size, "register": [],
            "members": [[e.day.isoformat(), size, e.position]], "exits": [], "relapses": []})
        imported = e.get("batch")
        if imported:
            h = rows.need(households, e.originator_id)
            h["register"] = [[e.day.isoformat(), 1, e.position]]
            if imported.get("exited_on"):
                exited = str(imported["exited_on"])[:10]
                h["register"].append([exited, 0, e.position])
                h["exits"] = [[exited, e.position]]

    @handles(*ON_OFF, "Household.AnnualReviewRecorded")
    def changed(self, e: Event, rows: Rows) -> None:
        h = rows.need(households, e.originator_id)
        entry = [e.day.isoformat(), e.position]
        if e.step == "Household.AnnualReviewRecorded":
            h["members"] = [*h["members"], [entry[0], e["members_count"], e.position]]
        else:
            h["register"] = [*h["register"], [entry[0], ON_OFF[e.step], e.position]]
        if e.step == "Household.ExitApprovedByCounty":
            h["exits"] = [*h["exits"], entry]
        elif e.step == "Household.Relapsed":
            h["relapses"] = [*h["relapses"], entry]
        rows.changed(households, h)


# the figures (their definitions: inspection.assessment) -----------------------------------
def _fake_exits(conn: Connection) -> tuple[set[str], set[int]]:
    """Households, and exit approvals (log positions), named as evidence by ``fake_exit``
    cases (数字脱贫): as a household, an event or a flag raised about a household."""
    ev, c = cs.evidence, cs.cases
    rows = conn.execute(select(ev.c.kind, ev.c.ref).join(c, c.c.case_id == ev.c.case_id)
                        .where(c.c.case_type == "fake_exit",
                               ev.c.kind.in_(("household", "event", "flag")))).all()
    flagged = conn.execute(select(c.c.flag_ids).where(c.c.case_type == "fake_exit")).all()
    named, positions = set(), set()
    for kind, ref in rows:
        if kind == "household":
            named.add(ref)
        elif kind == "event" and ref.isdigit():
            positions.add(int(ref))
        else:
            named.add(ref.partition(":")[2])
    named |= {f.partition(":")[2] for (ids,) in flagged for f in ids}
    return named, positions


def _populations(conn: Connection, code: str, level: str) -> tuple[dict[str, dict],
                                                                    dict[str, list[str]]]:
    r = reg.regions
    where = r.c.code == code
    if level != "village":  # register_regions has no village column: a village has no children
        where = where | (r.c[level] == code)
    rows = conn.execute(select(r).where(where)).mappings().all()
    regions = {x["code"]: dict(x) for x in rows}
    children: dict[str, list[str]] = defaultdict(list)
    for x in regions.values():
        if x["parent_code"] in regions:
            children[x["parent_code"]].append(x["code"])
    return regions, children


def population(regions: dict[str, dict], children: dict[str, list[str]], code: str) -> int | None:
    """The registered population: the region's own, else the sum of its children's (when
    every child's is known)."""
    own = regions[code]["population"]
    if own is not None:
        return own
    kids = [population(regions, children, k) for k in children.get(code, [])]
    return sum(kids) if kids and all(k is not None for k in kids) else None  # type: ignore[misc]


def metrics(db: Db, region_code: str, year: int, *,
            relapse_window_days: int = RELAPSE_WINDOW_DAYS, children: bool = True) -> dict:
    """三率一度 of a region's subtree in ``year``, and of each child region."""
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 9999:
        raise InvalidInput("must be a year, e.g. 2025", field="year")
    with connected(db) as conn:
        region = conn.execute(select(reg.regions).where(reg.regions.c.code == region_code)
                              ).mappings().first()
        if region is None:
            raise NotFound(f"no region {region_code}", field="region_code")
        level = region["level"]
        regions, kids = _populations(conn, region_code, level)
        found = [dict(r) for r in conn.execute(
            select(households).where(households.c[level] == region_code)).mappings()]
        named, positions = _fake_exits(conn)
        s = cs.surveys
        polls = conn.execute(select(s.c.satisfied, s.c.surveyed, *[s.c[lv] for lv in LEVELS])
                             .where(s.c[level] == region_code, s.c.year == year)).mappings().all()
    west = _is_western(region["province"] or (region_code if level == "province" else None))
    facts = [(h, household_facts(h, year, relapse_window_days, named, positions)) for h in found]

    def figures(code: str, lvl: str) -> dict[str, Any]:
        mine = [f for h, f in facts if h[lvl] == code]
        mine_polls = [p for p in polls if p[lvl] == code]
        people = population(regions, kids, code)
        on = sum(f["on_register"] for f in mine)
        off = people - on if people is not None else None
        return {
            "region_code": code, "name": regions[code]["name"], "level": lvl,
            "population": people,
            "incidence": figure(on, people, INCIDENCE_LIMIT[bool(west)],
                                households=sum(1 for f in mine if f["on_register"])),
            "wrong_exit": figure(sum(f["wrong_exit"] for f in mine),
                                 sum(f["exited"] for f in mine), THRESHOLDS["wrong_exit"],
                                 households=sum(1 for f in mine if f["wrong_exit"])),
            "missed": figure(sum(f["missed"] for f in mine), off, THRESHOLDS["missed"],
                             households=sum(1 for f in mine if f["missed"])),
            "satisfaction": figure(sum(p["satisfied"] for p in mine_polls),
                                   sum(p["surveyed"] for p in mine_polls),
                                   THRESHOLDS["satisfaction"], at_least=True),
        }

    out = {"year": year, "relapse_window_days": relapse_window_days,
           "western_province": west, "income_line_fen": INCOME_LINES_FEN.get(year),
           **figures(region_code, level), "children": []}
    if children and level != "village":
        child_level = LEVELS[LEVELS.index(level) + 1]
        out["children"] = [figures(k, child_level) for k in sorted(kids.get(region_code, []))]
    return plain(out)
