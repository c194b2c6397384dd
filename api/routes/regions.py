"""The administrative hierarchy (省 → 市 → 县 → 乡镇 → 村) and its units: read by anyone
within the jurisdiction, created by administrators.

A new region's jurisdiction is its own path (its parent's path and itself), so a county's
administrator creates townships and villages in the county and nothing above it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, App, Dir, IdempotentWrite, Reader, region_within
from access.roles import check_covers
from api.schemas import READ_PROBLEMS, WRITE_PROBLEMS, Created
from projections.aggregates import region_view
from domain.region import RegionLevel, UnitKind

router = APIRouter(tags=["regions"])


class RegionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "5d6f0c2a-3b1e-5e4d-8f9a-0b1c2d3e4f50", "code": "522625100", "name": "羊场镇",
        "level": "township", "parent_code": "522625",
        "path": {"province": "52", "city": "5226", "county": "522625", "township": "522625100"},
        "population": None, "children": ["522625100001", "522625100002"]}]})

    id: str
    code: str
    name: str
    level: str
    parent_code: str | None
    path: dict[str, str]
    population: int | None
    children: list[str]


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"code": "522625100003", "name": "新寨村", "level": "village",
         "parent_code": "522625100", "population": 1200}]})

    code: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    name: str = Field(min_length=1, max_length=100)
    level: RegionLevel
    parent_code: str | None = Field(None, min_length=1, max_length=64,
                                    description="none for a province")
    population: int | None = Field(None, gt=0, le=2_000_000_000,
                                   description="registered population (户籍人口)")


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"code": "U522625100003", "name": "新寨村村委会", "kind": "village_committee",
         "region_code": "522625100003"}]})

    code: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    name: str = Field(min_length=1, max_length=100)
    kind: UnitKind
    region_code: str = Field(min_length=1, max_length=64)


def region_to_create(region: RegionIn, admin: Admin, app: App) -> RegionIn:
    path = dict(app.region(region.parent_code, "parent_code").path) if region.parent_code else {}
    path[region.level.value] = region.code
    check_covers(admin, path, f"region {region.code}", "parent_code")
    return region


def unit_to_establish(unit: UnitIn, admin: Admin, app: App) -> UnitIn:
    region_within(admin, app, unit.region_code, "region_code")
    return unit


@router.get("/regions/{code}", response_model=RegionOut, responses=READ_PROBLEMS)
def get_region(code: Annotated[str, Path(min_length=1, max_length=64)], reader: Reader,
               app: App, directory: Dir) -> Any:
    """A region, its path and its child regions."""
    region = region_within(reader, app, code, "code")
    return region_view(region, directory.children_of(region.code))


@router.post("/regions", response_model=Created, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def create_region(region: Annotated[RegionIn, Depends(region_to_create)], app: App,
                  response: Response) -> Any:
    """Create a region under its parent (administrators)."""
    region_id = app.create_region(region.code, region.name, region.level.value,
                                  region.parent_code, region.population)
    response.headers["Location"] = f"/regions/{region.code}"
    return {"id": str(region_id), "code": region.code}


@router.post("/units", response_model=Created, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def establish_unit(unit: Annotated[UnitIn, Depends(unit_to_establish)], app: App) -> Any:
    """Establish a unit (单位) at a region (administrators)."""
    unit_id = app.establish_unit(unit.code, unit.name, unit.kind.value, unit.region_code)
    return {"id": str(unit_id), "code": unit.code}
