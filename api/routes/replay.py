"""Replay (时间回溯): a village as the reviewer saw it then, or as it stood on a business date.

``GET /replay/villages/{code}`` answers with the village view (counts, incidence, exit
readiness, the register with each household's status) and the balances of the accounts
that hold the village's money, as of

- ``position=N``: the log up to notification id N;
- ``as_of=DATE&mode=known``: only what was recorded by the end of that day (China
  Standard Time) — what a reviewer saw then;
- ``as_of=DATE`` (``mode=effective``, the default): everything recorded up to now (or up
  to ``position``), but statuses and money as of that business date.

The meaning of each is in ``projections/replay.py``.  Each answer is a replay into a
scratch read model of the events of the aggregates it is made of only (the village's
region, households and their helpers, the accounts at the village and its township),
found in the replay index: its cost follows the village, not the log.  Whoever reads them, the access log records what is shown: the village, each
household of the register page and each account; an aggregate replayed (and any household
or project its events shown paid).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import App, Paging, Reader, payee_reads, record_reads, subject_of
from access.roles import check_covers
from api.routes.views import (
    BALANCE,
    ENTRY,
    READINESS,
    VILLAGE,
    AccountBalance,
    VillageCode,
    VillageViewOut,
    a_village,
    account_reads,
    with_register_page,
)
from api.schemas import HOUSEHOLD_ID, READ_PROBLEMS, IsoDate
from projections.aggregates import aggregate_view
from domain.errors import NotFound
from projections import replay as rp

router = APIRouter(tags=["replay"], responses=READ_PROBLEMS)


class AsOfOut(BaseModel):
    mode: str = Field(description="position, known or effective")
    date: str | None = Field(description="the date asked for")
    position: int = Field(description="the log was replayed up to this notification id")
    head: int = Field(description="the last notification id in the log now")
    recorded_by: str | None = Field(description="known: the end of the day (UTC) by which "
                                    "the events shown were recorded")


class ReplayedVillageOut(BaseModel):
    """A village and its accounts as of a past point."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": {"mode": "known", "date": "2025-06-30", "position": 10230, "head": 15733,
                  "recorded_by": "2025-06-30T15:59:59.999999+00:00"},
        "village": {
            "village": VILLAGE,
            "households": {"applied": 62, "registered": 58, "exited": 0, "removed": 1,
                           "relapsed": 0, "rejected": 2, "in_identification": 1},
            "people": {"registered": 180, "exited": 0}, "incidence": 0.15,
            "exit_readiness": READINESS, "assistance_cadres": [],
            "register": {"items": [ENTRY], "limit": 50, "offset": 0, "next_offset": 50}},
        "accounts": [{**BALANCE, "idle_days": 179}]}]})

    as_of: AsOfOut
    village: VillageViewOut
    accounts: list[AccountBalance] = Field(description="the accounts holding the village's "
                                           "money (村账乡代管: its township's)")


@router.get("/replay/villages/{code}", response_model=ReplayedVillageOut)
def replay_village(
        request: Request, reader: Reader, app: App, code: VillageCode, paging: Paging,
        as_of: Annotated[IsoDate | None, Query(
            examples=["2025-06-30"], description="a date, YYYY-MM-DD")] = None,
        mode: Annotated[rp.Mode, Query(description=(
            "known: as recorded by the end of as_of; effective: as of business date as_of, "
            "known now (or at position)"))] = rp.Mode.EFFECTIVE,
        position: Annotated[int | None, Query(ge=0, le=2**62, examples=[1234], description=(
            "the log up to this notification id (with as_of: effective on that date as "
            "known at this position)"))] = None) -> Any:
    """A village as of a past date or log position: register counts, incidence, exit
    readiness, households with their status (page by page) and its accounts' balances."""
    region = a_village(reader, app, code, "code")
    at = rp.moment(app, as_of=as_of, mode=mode, position=position)
    found = rp.village_as_of(app, code, at, field="code")
    found["village"] = with_register_page(request, reader, region, found["village"], paging)
    record_reads(request, reader, account_reads(app, found["accounts"]))
    return found


class ReplayedAggregateOut(BaseModel):
    """An aggregate as of a past point: its state then and its events up to then."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "aggregate_id": HOUSEHOLD_ID, "type": "Household",
        "as_of": {"mode": "position", "date": None, "position": 1234, "head": 15733,
                  "recorded_by": None},
        "version": 3,
        "state": {"id": HOUSEHOLD_ID, "code": "H1", "status": "verified",
                  "village_code": VILLAGE, "members_count": 3, "main_cause": "illness",
                  "version": 3, "history": []},
        "events": [{"version": 1, "step": "Household.Applied",
                    "timestamp": "2025-01-05T02:00:00+00:00",
                    "effective_date": "2025-01-05", "content": {}, "signatures": []}]}]})

    aggregate_id: str
    type: str = Field(description="Household, FundAccount, Project, Official, Case, Region …")
    as_of: AsOfOut
    version: int | None = Field(description="the version shown (null: effective on a date)")
    state: dict[str, Any] | None = Field(None, description="its state at that version")
    effective_state: dict[str, Any] | None = Field(
        None, description="effective on a date: the register entry of a household or the "
        "balance of an account on that business date")
    events: list[dict[str, Any]] = Field(description="its events up to then, in order")


@router.get("/replay/aggregates/{aggregate_id}", response_model=ReplayedAggregateOut,
            response_model_exclude_none=True)
def replay_aggregate(
        request: Request, reader: Reader, app: App,
        aggregate_id: Annotated[UUID, Path(description="any aggregate's UUID")],
        as_of: Annotated[IsoDate | None, Query(
            examples=["2025-06-30"], description="a date, YYYY-MM-DD")] = None,
        mode: Annotated[rp.Mode, Query(description=(
            "known: as recorded by the end of as_of; effective: as of business date as_of "
            "(households and fund accounts only)"))] = rp.Mode.EFFECTIVE,
        position: Annotated[int | None, Query(ge=0, le=2**62, examples=[1234], description=(
            "the log up to this notification id"))] = None) -> Any:
    """Any aggregate (household, account, project, official, case, region …) as of a past
    log position or date, with its events up to then.  The subject's region decides the
    jurisdiction; the aggregate shown is recorded in the access log (with any household
    or project its events shown paid)."""
    try:
        current = app.repository.get(aggregate_id)
    except AggregateNotFoundError as exc:
        raise NotFound(f"no aggregate {aggregate_id}", field="aggregate_id") from exc
    subject = subject_of(app, current)
    check_covers(reader, subject.region_path, f"{type(current).__name__} {aggregate_id}",
                 "aggregate_id")
    at = rp.moment(app, as_of=as_of, mode=mode, position=position)
    found = aggregate_view(rp.aggregate_as_of(app, aggregate_id, at))
    record_reads(request, reader, [subject, *payee_reads(
        app, [e.get("fields") or {} for e in found["events"]])])
    return found
