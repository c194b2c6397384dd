"""Households (建档立卡户): one with its signed history, or a village's, page by page.

Their steps are submitted through ``POST /commands``.  Every household shown to an
inspector or a reviewer is recorded in the access log (``access.reads``).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from access.reads import Read
from api.deps import (
    App,
    Dir,
    EventsAfter,
    EventsLimit,
    Paging,
    Reader,
    readable,
    record_reads,
    region_within,
)
from api.schemas import HOUSEHOLD_ID, READ_PROBLEMS, EventOut, Page
from projections.aggregates import EVENTS_PAGE, household_summary, household_view
from domain.errors import InvalidInput
from domain.household import Household, Status
from domain.region import RegionLevel

router = APIRouter(tags=["households"], responses=READ_PROBLEMS)

SUMMARY_EXAMPLE = {"id": HOUSEHOLD_ID, "code": "H1", "status": "registered", "village_code": "V",
                   "members_count": 3, "main_cause": "illness", "version": 7}


class StatusChange(BaseModel):
    effective_date: str
    status: str


class HouseholdSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUMMARY_EXAMPLE]})

    id: str
    code: str
    status: str
    village_code: str
    members_count: int
    main_cause: str
    version: int


class HouseholdOut(HouseholdSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **SUMMARY_EXAMPLE, "status": "applied", "version": 1,
        "region_path": {"province": "P", "city": "C", "county": "K", "township": "T",
                        "village": "V"},
        "secondary_causes": [], "helper_official_id": None, "history": [], "events": []}]})

    region_path: dict[str, str]
    secondary_causes: list[str]
    helper_official_id: str | None
    history: list[StatusChange]
    events: list[EventOut]


def household_by_id(household_id: UUID, request: Request, reader: Reader, app: App) -> Household:
    household = app.load(Household, household_id, "household_id")
    return readable(request, reader, "household", household, household.region_path,
                    "household_id")


def household_by_code(code: Annotated[str, Path(max_length=64)], request: Request,
                      reader: Reader, app: App) -> Household:
    household = app.load(Household, Household.create_id(code), "code")
    return readable(request, reader, "household", household, household.region_path, "code")


def village_households(
        request: Request, reader: Reader, app: App, paging: Paging,
        directory: Dir,
        village: Annotated[str, Query(min_length=1, max_length=64,
                                      description="the village's region code")],
        status: Annotated[Status | None, Query(description="only households in this status")]
        = None) -> dict[str, Any]:
    """One page of a village's households, in order of application; each shown is recorded."""
    region = region_within(reader, app, village, "village")
    if region.level is not RegionLevel.VILLAGE:
        raise InvalidInput(f"{village} is a {region.level.value}, not a village", field="village")
    households = (app.load(Household, hid) for hid in directory.households_in(village))
    items, next_offset = paging.of(h for h in households if status is None or h.status is status)
    record_reads(request, reader, [Read("household", str(h.id), h.region_path) for h in items])
    return {"items": [household_summary(h) for h in items], "limit": paging.limit,
            "offset": paging.offset, "next_offset": next_offset}


@router.get("/households", response_model=Page[HouseholdSummary])
def list_households(page: Annotated[dict[str, Any], Depends(village_households)]) -> Any:
    """The households of one village (``village``), optionally in one ``status``."""
    return page


@router.get("/households/by-code/{code}", response_model=HouseholdOut)
def get_household_by_code(household: Annotated[Household, Depends(household_by_code)],
                          app: App, events_after: EventsAfter = 0,
                          events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    return household_view(app, household, events_after, events_limit)


@router.get("/households/{household_id}", response_model=HouseholdOut)
def get_household(household: Annotated[Household, Depends(household_by_id)], app: App,
                  events_after: EventsAfter = 0, events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    """A household, its status history and its signed events (a page of them)."""
    return household_view(app, household, events_after, events_limit)
