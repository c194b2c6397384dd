"""大数据比对: import a department's register (upload, dry run, confirm), the comparison
models, the snapshots and the matches (``exchange.registers``, ``projections.compare``).

Importing is an inspector's act (``CaseWriter``): ``POST /registers`` with the file as
multipart form data, the department, the register kind and the as-of date answers the
dry run's summary (rows read, kept, refused with row, column, rule and the value masked);
``confirm=true`` stores the rows and the snapshot's event (201; the same file again: 200,
nothing new).  The importer recorded is the caller's token (name, role, id).  ID numbers
are hashed at once; none is in the answer, the log or the store.

Matches are read within the token's jurisdiction (the household's region); every match
shown is recorded in the access log as a read of its household.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from access.reads import Read
from access.roles import Principal, check_covers
from api.deps import App, CaseWriter, Reader, RegionFilter, list_scope, record_reads
from api.routes.cases import recorded_by
from api.routes.traces import ReadModels
from api.schemas import READ_PROBLEMS, WRITE_PROBLEMS, IsoDate
from domain.errors import InvalidInput
from domain.registers import KIND_TITLES, RegisterKind
from exchange.registers import import_register
from inspection.rules.compare import MODEL_IDS, CompareSettings, catalogue
from projections import compare

router = APIRouter(tags=["compare"])

ModelId = enum.Enum("ModelId", {m: m for m in MODEL_IDS}, type=str)  # type: ignore[misc]
MAX_UPLOAD = 256 * 1024 * 1024


class MatchOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    match_id: str
    model_id: str
    severity: str
    register_kind: str | None
    snapshot_id: str | None
    row_no: int | None
    household_id: str
    region_code: str | None
    region_path: dict[str, str]
    effective_date: str | None
    log_position: int
    evidence: list[dict[str, Any]]
    signers: list[str]
    detail: dict[str, Any]
    explanation_zh: str
    explanation_en: str


class MatchPage(BaseModel):
    items: list[MatchOut]
    limit: int
    next_after: str | None = Field(description="the match id to continue after")


def record_matches(request: Request, principal: Principal, shown: list[dict]) -> None:
    record_reads(request, principal, [Read("household", m["household_id"],
                                           m.get("region_path") or {}) for m in shown])


@router.get("/compare/models", responses=READ_PROBLEMS)
def models(reader: Reader) -> Any:
    """The comparison models (比对模型): id, severity, register read, explanation; and the
    thresholds in force."""
    settings = CompareSettings.from_env()
    return {"models": catalogue(), "registers": KIND_TITLES,
            "settings": {"vehicle_price_fen": settings.vehicle_price_fen,
                         "housing_area_m2": settings.housing_area_m2}}


@router.post("/registers", status_code=200, responses={
    201: {"description": "imported: the rows kept and the snapshot's event stored"},
    **WRITE_PROBLEMS})
async def import_file(
        inspector: CaseWriter, app: App, response: Response,
        file: Annotated[UploadFile, File(description=".xlsx, .xls or CSV")],
        department: Annotated[str, Form(min_length=1, max_length=100,
                                        description="提供数据的部门, e.g. 县民政局")],
        kind: Annotated[RegisterKind, Form()],
        as_of: Annotated[IsoDate, Form(description="the register's as-of date (数据截止日期)")],
        confirm: Annotated[bool, Form(description="false: the dry run's summary only")] = False,
) -> Any:
    """Import a department's register as an evidence snapshot (dry run unless ``confirm``)."""
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise InvalidInput(f"a register file is at most {MAX_UPLOAD} bytes", field="file")
    summary = await run_in_threadpool(
        import_register, app, department=department, kind=kind.value, as_of=as_of, data=data,
        filename=file.filename or "register", imported_by=recorded_by(inspector),
        confirm=confirm)
    response.status_code = 201 if summary["recorded"] else 200
    return summary


@router.get("/registers", responses=READ_PROBLEMS)
def snapshots(reader: Reader, db: ReadModels,
              kind: Annotated[RegisterKind | None, Query()] = None) -> Any:
    """The imported snapshots, newest first per register; ``current``: not superseded."""
    return {"items": compare.list_snapshots(db, kind=kind.value if kind else None)}


@router.get("/compare/matches", response_model=MatchPage, responses=READ_PROBLEMS)
def list_matches(request: Request, reader: Reader, app: App, db: ReadModels,
                 region: RegionFilter = None,
                 model_id: Annotated[ModelId | None, Query()] = None,
                 household_id: Annotated[str | None, Query(max_length=64)] = None,
                 snapshot_id: Annotated[str | None, Query(max_length=64)] = None,
                 after: Annotated[str | None, Query(max_length=300)] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Matches within a region's subtree (default: the token's jurisdiction)."""
    _, code = list_scope(reader, app, region)
    items = compare.list_matches(db, model_id=model_id.value if model_id else None,
                                 region_code=code, household_id=household_id,
                                 snapshot_id=snapshot_id, after=after, limit=limit)
    record_matches(request, reader, items)
    return {"items": items, "limit": limit,
            "next_after": items[-1]["match_id"] if len(items) == limit else None}


@router.get("/compare/matches/{match_id:path}", response_model=MatchOut,
            responses=READ_PROBLEMS)
def get_match(match_id: Annotated[str, Path(min_length=1, max_length=300)], request: Request,
              reader: Reader, db: ReadModels) -> Any:
    """One match with its evidence (snapshot and row, events by log position) and signers."""
    found = compare.get_match(db, match_id)
    check_covers(reader, found.get("region_path") or {}, f"match {match_id}", "match_id")
    record_matches(request, reader, [found])
    return found
