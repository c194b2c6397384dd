"""线索处置: leads raised from flags or comparison matches, and every move to a conclusion
(``domain.lead``, read from ``projections.leads``).

Inspectors write (``CaseWriter``): ``POST /leads`` raises a lead from a flag or a match
within their jurisdiction (the same evidence again answers the lead that exists, 200; one
found 不属实 answers 409 ``LeadUnfounded`` with its reasons); ``POST /leads/{lead_id}/steps``
takes one move — ``assign`` (交办: the deadline is the n-th working day after the day of
交办 on the Chinese calendar, 调休 included: ``inspection.workdays``), ``verify`` (核实),
``report`` (反馈), ``review`` (审核), ``close`` (四类处置) or ``open_case`` (立案: opens the
case with the lead's evidence and closes the lead naming it).  Every move is recorded
under the caller's token (name, role, id), never the body's word.

Anyone may read within their jurisdiction; each lead shown is recorded in the access log
(as a flag read: kind ``lead``).  ``as_of`` (default: today in China time) decides which
leads are overdue.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from access.roles import Principal, check_covers
from api.deps import App, CaseWriter, IdempotentWrite, Reader, RegionFilter, list_scope, \
    record_reads
from api.routes.cases import recorded_by, text_field
from api.routes.traces import ReadModels
from api.schemas import READ_PROBLEMS, WRITE_PROBLEMS, IsoDate
from domain.case import CASE_NO_PATTERN, CaseType
from domain.lead import Lead, Verdict, lead_move, open_lead_case, raise_lead
from domain.official import Official
from domain.region import Unit
from inspection.rules.records import CHINA_STANDARD_TIME
from inspection.workdays import add_working_days
from projections import compare, flags, leads
from store.settings import utc_now

router = APIRouter(tags=["leads"])

LeadId = Annotated[str, Path(min_length=36, max_length=36, description="the lead's id")]
AsOf = Annotated[IsoDate | None, Query(description="judge overdue leads on this date "
                                                   "(default: today, China time)")]


def today() -> dt.date:
    return utc_now().astimezone(CHINA_STANDARD_TIME).date()


class LeadIn(BaseModel):
    """Raise a lead from a flag (``flag_id``) or a comparison match (``match_id``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "source_kind": "match", "source_ref": "COMPARE_PAID_AFTER_DEATH:dee7…:9a1b…",
        "effective_date": "2025-07-01"}]})

    source_kind: Literal["flag", "match"]
    source_ref: str = Field(min_length=1, max_length=300)
    effective_date: IsoDate


class _Move(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_date: IsoDate


class Assign(_Move):
    step: Literal["assign"]
    unit_code: str = Field(min_length=1, max_length=64)
    official_id: str = Field(min_length=1, max_length=64)
    working_days: int = Field(ge=1, le=250, description="the deadline in working days")
    note: str = Field("", max_length=2000, pattern=r"^[^\x00-\x1f]*$")


class EvidenceNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=32)
    ref: str | int = Field(description="a document number, a log position, an id")
    note: str = Field("", max_length=1000, pattern=r"^[^\x00-\x1f]*$")


class Verify(_Move):
    step: Literal["verify"]
    verdict: Verdict
    reasons: str = text_field(2000)
    evidence: list[EvidenceNote] = Field([], max_length=100)
    amount_fen: int = Field(0, ge=0, le=10**15, description="money involved (涉及金额)")


class Report(_Move):
    step: Literal["report"]
    report: str = text_field(2000)


class Review(_Move):
    step: Literal["review"]
    accepted: bool
    opinion: str = text_field(2000)


class Close(_Move):
    step: Literal["close"]
    disposition: Literal["talk_inquiry", "preliminary_check", "shelved", "concluded"]
    conclusion: str = text_field(2000)
    recovered_fen: int = Field(0, ge=0, le=10**15)


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    official_id: str = Field(min_length=1, max_length=64)
    reason: str = text_field()


class OpenCase(_Move):
    step: Literal["open_case"]
    case_no: str = Field(min_length=1, max_length=64, pattern=CASE_NO_PATTERN)
    case_type: CaseType
    title: str = text_field()
    conclusion: str = text_field(2000)
    subjects: list[SubjectIn] = Field([], max_length=50)


MoveIn = Annotated[Assign | Verify | Report | Review | Close | OpenCase,
                   Field(discriminator="step")]


class LeadResult(BaseModel):
    lead_id: str
    lead_no: str
    step: str | None = None
    recorded: bool
    case_id: str | None = None
    deadline: str | None = None


def record_leads(request: Request, principal: Principal, shown: list[dict]) -> None:
    record_reads(request, principal, [Read("lead", x["lead_id"], x.get("region_path") or {})
                                      for x in shown])


def _source(db: Any, kind: str, ref: str) -> dict:
    if kind == "flag":
        f = flags.get_flag(db, ref)
        return {"rule_id": f["rule_id"], "severity": f["severity"],
                "region_code": f["region_code"], "region_path": f["region_path"] or {},
                "summary": f["explanation_zh"], "signers": f["signers"],
                "evidence": [*f["evidence"], {"kind": "flag", "ref": ref}]}
    m = compare.get_match(db, ref)
    return {"rule_id": m["model_id"], "severity": m["severity"],
            "region_code": m["region_code"], "region_path": m["region_path"] or {},
            "summary": m["explanation_zh"], "signers": m["signers"], "evidence": m["evidence"]}


@router.post("/leads", response_model=LeadResult, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def raise_from(body: LeadIn, inspector: CaseWriter, app: App, db: ReadModels,
               response: Response) -> Any:
    """Raise a lead (线索) from a flag or a match in the caller's jurisdiction."""
    src = _source(db, body.source_kind, body.source_ref)
    check_covers(inspector, src["region_path"], f"{body.source_kind} {body.source_ref}",
                 "source_ref")
    result = raise_lead(app, source_kind=body.source_kind, source_ref=body.source_ref,
                        effective_date=body.effective_date, recorded_by=recorded_by(inspector),
                        **src)
    response.status_code = 201 if result["recorded"] else 200
    response.headers["Location"] = f"/leads/{result['lead_id']}"
    return result


@router.post("/leads/{lead_id}/steps", response_model=LeadResult, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def move(lead_id: LeadId, step: MoveIn, inspector: CaseWriter, app: App,
         response: Response) -> Any:
    """One move: assign (交办), verify (核实), report (反馈), review (审核), close (处置) or
    open_case (立案)."""
    lead = app.load(Lead, lead_id, "lead_id")
    check_covers(inspector, lead.region_path, f"lead {lead_id}", "lead_id")
    who = recorded_by(inspector)
    fields = step.model_dump(mode="json", exclude={"step"})
    deadline = None
    if isinstance(step, OpenCase):
        result = open_lead_case(app, lead_id, recorded_by=who, **fields)
    else:
        if isinstance(step, Assign):
            app.load(Unit, Unit.create_id(step.unit_code), "unit_code")
            app.load(Official, step.official_id, "official_id")
            fields["deadline"] = add_working_days(step.effective_date,
                                                  step.working_days).isoformat()
            deadline = fields["deadline"]
        result = lead_move(app, lead_id, step.step, recorded_by=who, **fields)
    response.status_code = 201 if result["recorded"] else 200
    return {**result, "step": step.step, "deadline": deadline}


@router.get("/leads", responses=READ_PROBLEMS)
def list_leads(request: Request, reader: Reader, app: App, db: ReadModels,
               region: RegionFilter = None,
               status: Annotated[Literal["raised", "assigned", "verified", "reported",
                                         "reviewed", "closed"] | None, Query()] = None,
               unit_code: Annotated[str | None, Query(max_length=64)] = None,
               overdue_only: Annotated[bool, Query()] = False, as_of: AsOf = None,
               after: Annotated[str | None, Query(max_length=36)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Leads within a region's subtree (default: the token's jurisdiction)."""
    _, code = list_scope(reader, app, region)
    items = leads.list_leads(db, as_of=as_of or today(), region_code=code, status=status,
                             unit_code=unit_code, overdue_only=overdue_only, after=after,
                             limit=limit)
    record_leads(request, reader, items)
    return {"items": items, "limit": limit,
            "next_after": items[-1]["lead_id"] if len(items) == limit else None}


@router.get("/leads/statistics", responses=READ_PROBLEMS)
def statistics(request: Request, reader: Reader, app: App, db: ReadModels,
               region: RegionFilter = None, as_of: AsOf = None) -> Any:
    """Per unit: leads, verified, 属实率, overdue, cases opened, money recovered (fen)."""
    _, code = list_scope(reader, app, region)
    found = leads.lead_statistics(db, as_of=as_of or today(), region_code=code)
    if code:
        record_reads(request, reader, [Read("region", code, app.region(code).path)])
    return found


@router.get("/leads/{lead_id}", responses=READ_PROBLEMS)
def get_lead(lead_id: LeadId, request: Request, reader: Reader, db: ReadModels,
             as_of: AsOf = None) -> Any:
    """A lead, where it stands, and every move with who recorded it."""
    found = leads.get_lead(db, lead_id, as_of=as_of or today())
    check_covers(reader, found.get("region_path") or {}, f"lead {lead_id}", "lead_id")
    record_leads(request, reader, [found])
    return found

