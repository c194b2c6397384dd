"""Red flags (问题线索) raised by the rules of ``inspection.rules``, read from ``projections.flags``.

Flags are read within the token's jurisdiction (the flag's region path); every flag shown
to an inspector or a reviewer is recorded in the access log.  Lists page by flag id
(``after=next_after``).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from api.deps import App, Reader, RegionFilter, list_scope, record_reads
from access.roles import Principal, check_covers
from api.routes.traces import ReadModels
from api.schemas import READ_PROBLEMS, IsoDate
from inspection.rules import RULE_IDS
from projections import flags

router = APIRouter(tags=["flags"], responses=READ_PROBLEMS)

RuleId = enum.Enum("RuleId", {r: r for r in RULE_IDS}, type=str)  # type: ignore[misc]
MOVEMENT_ID = "dee7ea81-eed9-4272-934c-ef080475d018"
FLAG_EXAMPLE = {
    "flag_id": f"PAY_REMOVED:{MOVEMENT_ID}", "rule_id": "PAY_REMOVED", "severity": "high",
    "subject_kind": "payment", "subject_id": MOVEMENT_ID, "region_code": "522625100001",
    "region_path": {"province": "52", "city": "5226", "county": "522625",
                    "township": "522625100", "village": "522625100001"},
    "effective_date": "2025-07-01", "log_position": 311,
    "evidence": [{"kind": "payment", "ref": MOVEMENT_ID,
                  "account_id": "7d1e0b9a-0c59-5b0e-8a4f-5f2f3f1d2c3b"}],
    "signers": ["0c3d5b61-1f4e-5a0e-9d0b-2b8f3c7a9e10"], "detail": {},
    "explanation_zh": "向已清退户发放资金", "explanation_en": "payment to a removed household",
    "withdrawn_position": None, "standing": True}


class FlagOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [FLAG_EXAMPLE]})

    flag_id: str
    rule_id: str
    severity: str
    subject_kind: str
    subject_id: str
    region_code: str | None
    region_path: dict[str, str]
    effective_date: str | None
    log_position: int
    evidence: list[dict[str, Any]]
    signers: list[Any]
    detail: dict[str, Any]
    explanation_zh: str
    explanation_en: str
    withdrawn_position: int | None = None
    standing: bool = True


class FlagPage(BaseModel):
    """Standing flags by flag id; ask again with ``after=next_after`` for the next page."""

    items: list[FlagOut]
    limit: int
    next_after: str | None = Field(description="the flag id to continue after; null on the "
                                               "last page")


def record_flags(request: Request, principal: Principal, shown: list[dict]) -> None:
    record_reads(request, principal, [Read("flag", f["flag_id"], f.get("region_path") or {})
                                      for f in shown])


@router.get("/flags", response_model=FlagPage)
def list_flags(request: Request, reader: Reader, app: App, db: ReadModels,
               region: RegionFilter = None,
               rule_id: Annotated[RuleId | None, Query()] = None,
               subject_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
               severity: Annotated[Literal["high", "medium", "low"] | None, Query()] = None,
               date_from: Annotated[IsoDate | None, Query(description="effective date from "
                                                                      "(inclusive)")] = None,
               date_to: Annotated[IsoDate | None, Query(description="effective date to "
                                                                    "(inclusive)")] = None,
               after: Annotated[str | None, Query(min_length=1, max_length=300,
                                                  description="flags after this flag id")]
               = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Standing flags within a region's subtree (default: the token's jurisdiction), by
    rule, subject, severity and business date."""
    _, code = list_scope(reader, app, region)
    items = flags.list_flags(db, rule_id=rule_id.value if rule_id else None, region_code=code,
                             subject_id=subject_id, severity=severity, date_from=date_from,
                             date_to=date_to, after=after, limit=limit)
    record_flags(request, reader, items)
    return {"items": items, "limit": limit,
            "next_after": items[-1]["flag_id"] if len(items) == limit else None}


@router.get("/flags/{flag_id:path}", response_model=FlagOut)
def get_flag(flag_id: Annotated[str, Path(min_length=1, max_length=300,
                                          examples=[FLAG_EXAMPLE["flag_id"]])],
             request: Request, reader: Reader, db: ReadModels) -> Any:
    """One flag (standing or withdrawn), with its evidence, signers and explanation."""
    flag = flags.get_flag(db, flag_id)
    check_covers(reader, flag.get("region_path") or {}, f"flag {flag_id}", "flag_id")
    record_flags(request, reader, [flag])
    return flag
