"""Read-model views: a village and its exit readiness, balances, and the projections' lag.

``GET /villages/{code}`` is the village view (贫困村出列): households by status, poverty
incidence, the exit criteria, and the register page by page.  ``GET /balances`` and
``GET /balances/summary`` are the accounts of a region's subtree and their totals
(``as_of`` counts idle days, 资金滞留, up to a date; balances as of a past date are
``GET /replay/villages/…``).  ``GET /projections/lag`` is how far each projection is
behind the log.  Whoever reads them, the access log records the village and each
household of the register page shown, each account whose balance is shown, and the
region whose totals are shown.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from api.deps import (
    App,
    PageParams,
    Paging,
    Reader,
    RegionFilter,
    list_scope,
    record_reads,
    region_path_at,
    region_within,
)
from access.roles import Principal
from api.routes.traces import ReadModels
from api.schemas import ACCOUNT_ID, HOUSEHOLD_ID, OFFICIAL_ID, READ_PROBLEMS, IsoDate, Page
from domain.application import Zhuisu
from domain.errors import InvalidInput
from domain.money import FundSource
from domain.region import Region, RegionLevel
from projections import queries, runner

router = APIRouter(tags=["views"], responses=READ_PROBLEMS)

VILLAGE = {"code": "522625100001", "name": "坪地村", "parent_code": "522625100", "province": "52",
           "city": "5226", "county": "522625", "township": "522625100", "population": 1200}
ENTRY = {"household_id": HOUSEHOLD_ID, "code": "H1", "head_name": "张三", "status": "registered",
         "on_register": 1, "members_count": 3, "main_cause": "illness",
         "registered_on": "2025-01-23", "exited_on": None, "removed_on": None,
         "relapse_count": 0, "helper_official_id": OFFICIAL_ID, "helper_name": "李帮扶"}
READINESS = {"western_province": True, "ready": False, "criteria": [
    {"criterion": "poverty incidence (贫困发生率)", "value": 0.05, "threshold": 0.03,
     "met": False},
    {"criterion": "village collective income (村集体经济收入) ≥ 50,000 yuan",
     "threshold_fen": 5000000, "value": None, "met": "unknown",
     "why": "no event records village collective income yet"}]}
BALANCE = {"account_id": ACCOUNT_ID, "name": "羊场镇中央专项", "region_code": "522625100",
           "level": "township", "fund_source": "central", "received_fen": 0,
           "allocated_in_fen": 600000, "allocated_down_fen": 0, "paid_out_fen": 200000,
           "recovered_fen": 50000, "reversed_fen": 0, "balance_fen": 450000,
           "idle_since": "2025-01-02", "money_in_fen": 600000, "idle_days": 179}
MONEY = {k: BALANCE[k] for k in ("received_fen", "allocated_in_fen", "allocated_down_fen",
                                 "paid_out_fen", "recovered_fen", "reversed_fen", "money_in_fen")}


# models ---------------------------------------------------------------------------------------
class VillageOut(BaseModel):
    code: str
    name: str
    parent_code: str | None
    province: str | None
    city: str | None
    county: str | None
    township: str | None
    population: int | None = Field(description="registered population (户籍人口), if known")


class HouseholdCounts(BaseModel):
    applied: int = Field(description="every household that applied")
    registered: int = Field(description="on the register (建档立卡, including those exiting)")
    exited: int
    removed: int
    relapsed: int = Field(description="ever relapsed (返贫)")
    rejected: int
    in_identification: int


class People(BaseModel):
    registered: int
    exited: int


class Criterion(BaseModel):
    criterion: str
    value: float | None
    met: bool | str = Field(description='true, false or "unknown"')
    threshold: float | str | None = None
    threshold_fen: int | None = None
    threshold_share: float | None = None
    why: str | None = None


class Readiness(BaseModel):
    western_province: bool | None
    criteria: list[Criterion]
    ready: bool | str = Field(description='true, false or "unknown"')


class Cadre(BaseModel):
    official_id: str
    name: str | None
    households: int


class RegisterEntry(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENTRY]})

    household_id: str
    code: str
    head_name: str
    status: str
    on_register: int = Field(description="1 while on the register (registered or exiting)")
    members_count: int
    main_cause: str
    registered_on: str | None
    exited_on: str | None
    removed_on: str | None
    relapse_count: int
    helper_official_id: str | None
    helper_name: str | None


class VillageViewOut(BaseModel):
    """A village (村): households by status, incidence, exit readiness (贫困村出列), and
    its register, page by page (``limit``/``offset``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "village": VILLAGE,
        "households": {"applied": 70, "registered": 60, "exited": 5, "removed": 1,
                       "relapsed": 1, "rejected": 2, "in_identification": 2},
        "people": {"registered": 60, "exited": 15}, "incidence": 0.05,
        "exit_readiness": READINESS,
        "assistance_cadres": [{"official_id": OFFICIAL_ID, "name": "李帮扶", "households": 5}],
        "register": {"items": [ENTRY], "limit": 50, "offset": 0, "next_offset": None}}]})

    village: VillageOut
    households: HouseholdCounts
    people: People
    incidence: float | None = Field(description="people in registered households / the "
                                    "village's registered population; null when unknown")
    exit_readiness: Readiness
    assistance_cadres: list[Cadre]
    register_: Page[RegisterEntry] = Field(alias="register", description=(
        "the households and their status, in order of code, page by page"))


class Money(BaseModel):
    received_fen: int
    allocated_in_fen: int
    allocated_down_fen: int
    paid_out_fen: int
    recovered_fen: int
    reversed_fen: int
    money_in_fen: int = Field(description="received + allocated in")


class Idle(Money):
    balance_fen: int
    idle_since: str | None = Field(description="business date of the oldest unspent money")
    idle_days: int | None = Field(None, description="days idle on as_of (资金滞留); only with "
                                  "as_of")


class AccountBalance(Idle):
    model_config = ConfigDict(json_schema_extra={"examples": [BALANCE]})

    account_id: str
    name: str
    region_code: str
    level: str
    fund_source: str


class Totals(Idle):
    accounts: int


class BySource(Idle):
    fund_source: str


class ByPurpose(Money):
    purpose: str


class SummaryOut(BaseModel):
    """Totals of a region's subtree: overall, per fund source, per purpose."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "region_code": "522625100",
        "total": {**{k: v for k, v in BALANCE.items() if k in Totals.model_fields},
                  "accounts": 1},
        "by_fund_source": [{k: v for k, v in BALANCE.items() if k in BySource.model_fields}],
        "by_purpose": [{**MONEY, "purpose": "special_fund"}]}]})

    region_code: str
    total: Totals
    by_fund_source: list[BySource]
    by_purpose: list[ByPurpose]


class FailedEvent(BaseModel):
    """A stored event a projection could not take (its aggregate is in the server's log,
    not here: this view shows log positions only)."""

    position: int = Field(description="the event's notification id")
    step: str = Field(description="its type, e.g. FundAccount.Disbursed")
    error: str = Field(description="why the projection could not take it")


class Rebuild(BaseModel):
    """A new layout of the projection being built beside its live tables, which answer
    reads (complete, at ``position``) until the build has caught up and is switched in."""

    version: int = Field(description="the layout being built")
    position: int = Field(description="the last notification id the build has taken in")
    behind: int = Field(description="notifications between the build and the log's head")
    started_at: str | None = Field(None, description="when the build started (UTC)")


class Lag(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "position": 15754, "head": 15754, "lag": 0, "failed": 1, "failures": [{
            "position": 118, "step": "FundAccount.Disbursed",
            "error": "OverflowError: date value out of range"}]}]})

    position: int = Field(description="the last notification id the projection has taken in")
    head: int = Field(description="the last notification id in the log")
    lag: int
    failed: int = Field(0, description="stored events the projection could not take and went "
                                       "past (each is logged)")
    failures: list[FailedEvent] = Field(default_factory=list,
                                        description="the latest of them, newest first")
    rebuild: Rebuild | None = Field(None, description="a new layout being built beside the "
                                    "live tables (absent when none)")


# helpers --------------------------------------------------------------------------------------
def a_village(reader: Principal, app: Zhuisu, code: str, field: str) -> Region:
    """The village ``code``, if it lies in the reader's jurisdiction."""
    region = region_within(reader, app, code, field)
    if region.level is not RegionLevel.VILLAGE:
        raise InvalidInput(f"{code} is a {region.level.value}, not a village", field=field)
    return region


def with_register_page(request: Request, reader: Principal, region: Region, view: dict,
                       paging: PageParams) -> dict[str, Any]:
    """The view with one page of its register; the village and each household shown are
    recorded."""
    items, next_offset = paging.of(view["register"])
    record_reads(request, reader, [Read("region", region.code, dict(region.path)),
                                   *[Read("household", e["household_id"], dict(region.path))
                                     for e in items]])
    return {**view, "register": {"items": items, "limit": paging.limit,
                                 "offset": paging.offset, "next_offset": next_offset}}


def account_reads(app: Zhuisu, balances: list[dict[str, Any]]) -> list[Read]:
    """The accounts whose balances are shown (rows of ``queries.balances``)."""
    paths = {code: region_path_at(app, code) for code in {b["region_code"] for b in balances}}
    return [Read("account", b["account_id"], paths[b["region_code"]]) for b in balances]


VillageCode = Annotated[str, Path(min_length=1, max_length=64, examples=["522625100001"],
                                  description="the village's region code")]
AsOf = Annotated[IsoDate | None, Query(examples=["2025-06-30"], description=(
    "count idle days (资金滞留) up to this date"))]


# routes ---------------------------------------------------------------------------------------
@router.get("/villages/{code}", response_model=VillageViewOut)
def village_view(request: Request, reader: Reader, app: App, db: ReadModels, code: VillageCode,
                 paging: Paging) -> Any:
    """A village's households by status (registered, exited, removed, relapsed), poverty
    incidence and the village-exit criteria (贫困村出列), with its register page by page."""
    region = a_village(reader, app, code, "code")
    return with_register_page(request, reader, region, queries.village_view(db, code), paging)


@router.get("/balances", response_model=Page[AccountBalance])
def balances(request: Request, reader: Reader, app: App, db: ReadModels, paging: Paging,
             region: RegionFilter = None,
             fund_source: Annotated[FundSource | None, Query(description="only this fund "
                                                             "source")] = None,
             as_of: AsOf = None) -> Any:
    """Every account within a region's subtree (default: the token's jurisdiction): money
    in, allocated down, paid out, recovered, balance, idle since."""
    _, code = list_scope(reader, app, region)
    rows = queries.balances(db, region_code=code,
                            fund_source=fund_source.value if fund_source else None,
                            as_of=as_of)
    items, next_offset = paging.of(rows)
    record_reads(request, reader, account_reads(app, items))
    return {"items": items, "limit": paging.limit, "offset": paging.offset,
            "next_offset": next_offset}


@router.get("/balances/summary", response_model=SummaryOut)
def balance_summary(request: Request, reader: Reader, app: App, db: ReadModels,
                    region: RegionFilter = None, as_of: AsOf = None) -> Any:
    """Totals of a region's subtree (default: the token's region): overall, per fund
    source and per purpose."""
    _, code = list_scope(reader, app, region)
    if code is None:
        raise InvalidInput("name the region to sum (this token covers every region)",
                           field="region")
    found = queries.balance_summary(db, code, as_of=as_of)
    record_reads(request, reader, [Read("region", code, region_path_at(app, code))])
    return found


@router.get("/projections/lag", response_model=dict[str, Lag],
            response_model_exclude_none=True)
def projection_lag(reader: Reader, app: App) -> Any:
    """How far each projection (read model) is behind the event log.  On an embedded
    store the server catches them up after every write; on PostgreSQL, the workers of
    ``zhuisu project run`` do.  ``failed``: stored events a projection could not take
    (an odd event never stops it: it is recorded here and in the log, and skipped).
    ``rebuild``: a changed layout being built beside the live tables, which answer reads
    until it has caught up and is switched in."""
    return runner.lag(app, failures=10)
