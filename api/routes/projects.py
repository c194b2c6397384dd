"""Poverty-alleviation projects (扶贫项目), approved by the county: read them here; their
steps (approval, beneficiaries, acceptance) go through ``POST /commands``.  Every project
shown, and each beneficiary household of one shown in full, is recorded in the access log.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from access.reads import Read
from api.deps import (
    App,
    Dir,
    EventsAfter,
    EventsLimit,
    Paging,
    Reader,
    RegionFilter,
    list_scope,
    readable,
    reads_of,
    record_reads,
)
from api.schemas import READ_PROBLEMS, EventOut, Page
from projections.aggregates import EVENTS_PAGE, project_summary, project_view
from domain.household import Household
from domain.project import Project

router = APIRouter(tags=["projects"], responses=READ_PROBLEMS)

SUMMARY_EXAMPLE = {"id": "1c9e2f4a-6b8d-5a0c-9e1f-3a5b7c9d1e2f", "code": "PRJ1",
                   "name": "PRJ1 通组路硬化", "region_code": "522625100001",
                   "purpose_code": "prj_village_infrastructure", "budget_fen": 500000,
                   "paid_fen": 200000, "approved_on": "2025-02-01", "accepted_on": None,
                   "version": 3}


class ProjectSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUMMARY_EXAMPLE]})

    id: str
    code: str
    name: str
    region_code: str
    purpose_code: str
    budget_fen: int
    paid_fen: int
    approved_on: str
    accepted_on: str | None
    version: int


class ProjectOut(ProjectSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **SUMMARY_EXAMPLE, "region_path": {"province": "52", "city": "5226", "county": "522625",
                                           "township": "522625100", "village": "522625100001"},
        "beneficiary_household_ids": [], "events": []}]})

    region_path: dict[str, str]
    beneficiary_household_ids: list[str]
    events: list[EventOut]


def project_by_id(project_id: UUID, request: Request, reader: Reader, app: App) -> Project:
    project = app.load(Project, project_id, "project_id")
    return readable(request, reader, "project", project, project.region_path, "project_id")


@router.get("/projects", response_model=Page[ProjectSummary])
def list_projects(request: Request, reader: Reader, app: App, directory: Dir, paging: Paging,
                  region: RegionFilter = None) -> Any:
    """Projects within a region's subtree (default: the token's jurisdiction)."""
    level, code = list_scope(reader, app, region)
    items, next_offset = paging.of(directory.projects_within(level, code))
    projects = [app.load(Project, pid) for pid in items]
    record_reads(request, reader, [Read("project", str(p.id), dict(p.region_path))
                                   for p in projects])
    return {"items": [project_summary(p) for p in projects],
            "limit": paging.limit, "offset": paging.offset, "next_offset": next_offset}


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project: Annotated[Project, Depends(project_by_id)], request: Request,
                reader: Reader, app: App, events_after: EventsAfter = 0,
                events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    """A project, its budget and payments, beneficiaries and signed events; the
    beneficiary households are recorded in the access log with the project."""
    view = project_view(app, project, events_after, events_limit)
    record_reads(request, reader, reads_of(app, Household, view["beneficiary_household_ids"]))
    return view
