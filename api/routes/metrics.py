"""三率一度 and the county report: satisfaction surveys in, the four figures and a county's
inspection summary out.

A survey (群众满意度调查) is recorded by an inspector or an administrator on a village,
township or county of their jurisdiction, ``recorded_by`` the caller's token.  The
figures of a region and year (``projections.metrics``) and the county report
(``exchange.reports``: .xlsx in the offices' layout, or CSV) are read within the
jurisdiction; whoever reads them, the access log records the region whose figures are
shown and the cases and flags a county report shows (and the payee households whose
masked numbers its .xlsx shows).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from api.deps import (
    App,
    IdempotentWrite,
    Reader,
    SurveyWriter,
    record_reads,
    region_within,
)
from api.routes.cases import FILE_RESPONSES, AsOf, Format, file_response, recorded_by
from api.routes.traces import ReadModels
from api.schemas import READ_PROBLEMS, WRITE_PROBLEMS, IsoDate
from exchange import reports
from exchange.sources import Context
from domain.errors import InvalidInput
from domain.region import RegionLevel
from inspection.assessment import RELAPSE_WINDOW_DAYS
from projections.metrics import metrics

router = APIRouter(tags=["三率一度 and reports"])

RegionCode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$",
                                 examples=["522625"])]
Year = Annotated[int, Query(ge=2000, le=2100, description="the assessment year")]


class SurveyIn(BaseModel):
    """群众满意度调查: households asked, and how many were satisfied."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "survey_id": "2025-坪地村", "year": 2025, "effective_date": "2025-11-20",
        "surveyed": 50, "satisfied": 47}]})

    survey_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")
    year: int = Field(ge=2000, le=2100)
    effective_date: IsoDate
    surveyed: int = Field(ge=1, le=10_000_000)
    satisfied: int = Field(ge=0, le=10_000_000)


class SurveyResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"region_code": "522625100001", "survey_id": "2025-坪地村", "recorded": True}]})

    region_code: str
    survey_id: str
    recorded: bool = Field(description="false: an exact retry; nothing new stored")


class FigureOut(BaseModel):
    numerator: int
    denominator: int | None
    rate: float | None
    threshold: float
    meets: bool | None = Field(description="null when the denominator is unknown or zero")
    households: int | None = None


class RegionFigures(BaseModel):
    region_code: str
    name: str
    level: str
    population: int | None
    incidence: FigureOut
    wrong_exit: FigureOut
    missed: FigureOut
    satisfaction: FigureOut


FIGURE = {"numerator": 5, "denominator": 350, "rate": 0.0142857, "threshold": 0.03,
          "meets": True, "households": 2}


class MetricsOut(RegionFigures):
    """People (not households) in numerators and denominators, as the assessment counts."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "year": 2025, "relapse_window_days": 365, "western_province": True,
        "income_line_fen": 730000, "region_code": "522625200", "name": "坝区镇",
        "level": "township", "population": 350, "incidence": FIGURE,
        "wrong_exit": {**FIGURE, "numerator": 4, "denominator": 6, "rate": 0.667,
                       "threshold": 0.02, "meets": False},
        "missed": {**FIGURE, "numerator": 4, "denominator": 345, "rate": 0.0116,
                   "threshold": 0.02},
        "satisfaction": {"numerator": 135, "denominator": 150, "rate": 0.9, "threshold": 0.9,
                         "meets": True}, "children": []}]})

    year: int
    relapse_window_days: int
    western_province: bool | None
    income_line_fen: int | None
    children: list[RegionFigures]


@router.post("/regions/{code}/surveys", response_model=SurveyResult, status_code=201,
             dependencies=[IdempotentWrite],
             responses={200: {"model": SurveyResult, "description": "an exact retry; nothing "
                              "new stored"}, **WRITE_PROBLEMS})
def record_survey(code: RegionCode, body: SurveyIn, caller: SurveyWriter, app: App,
                  response: Response) -> Any:
    """Record a satisfaction survey of a village, township or county (inspectors,
    administrators)."""
    region_within(caller, app, code, "code")
    result = app.record_survey(code, survey_id=body.survey_id, year=body.year,
                               effective_date=body.effective_date, surveyed=body.surveyed,
                               satisfied=body.satisfied, recorded_by=recorded_by(caller))
    response.status_code = 201 if result["recorded"] else 200
    return {"region_code": code, "survey_id": body.survey_id, "recorded": result["recorded"]}


@router.get("/metrics/{region_code}", response_model=MetricsOut, responses=READ_PROBLEMS)
def get_metrics(region_code: RegionCode, year: Year, request: Request, reader: Reader, app: App,
                db: ReadModels,
                relapse_window_days: Annotated[int, Query(ge=0, le=3650)] = RELAPSE_WINDOW_DAYS
                ) -> Any:
    """三率一度 of a region's subtree in a year: poverty incidence, wrong-exit rate,
    missed-registration rate and satisfaction, each with numerator, denominator and
    whether it meets the national threshold; and the same for each child region."""
    region = region_within(reader, app, region_code, "region_code")
    found = metrics(db, region_code, year, relapse_window_days=relapse_window_days)
    record_reads(request, reader, [Read("region", region.code, dict(region.path))])
    return found


@router.get("/reports/county/{code}", response_class=Response, responses=FILE_RESPONSES)
def county_report(code: RegionCode, request: Request, reader: Reader, app: App,
                  db: ReadModels, format: Format = "xlsx",  # noqa: A002
                  year: Annotated[int | None, Query(ge=2000, le=2100, description=(
                      "for 三率一度 (default: the year of the log clock)"))] = None,
                  as_of: AsOf = None,
                  chain_limit: Annotated[int, Query(ge=0, le=1000, description=(
                      "responsibility chains of at most this many flagged payments"))] = 50
                  ) -> Response:
    """A county's inspection summary: flags per rule and township, cases by status and
    type, recovery outstanding per unit and official, 三率一度 per township, overdue
    rectification, and the responsibility chains of flagged payments."""
    region = region_within(reader, app, code, "code")
    if region.level is not RegionLevel.COUNTY:
        raise InvalidInput(f"{code} is a {region.level.value}, not a county", field="code")
    made = reports.county_report(Context(db, app, role=reader.role.value), code, year=year,
                                 as_of=as_of, chain_limit=chain_limit)
    record_reads(request, reader, [Read("region", region.code, dict(region.path)),
                                   *made.shown(format)])
    return file_response(made.render(format), format, f"county-{code}")
