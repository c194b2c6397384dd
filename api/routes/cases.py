"""Cases of discipline inspection (纪检监察): open, take steps, order recovery, read, report.

Inspectors write cases (``CaseWriter``), within their jurisdiction (the case's region; a
recovery order's accounts too); what a case records is the inspector's decision, so
``recorded_by`` is the caller's token (name, role, token id), never the body.  A case's
number follows ``domain.case.CASE_NO_PATTERN``; each piece of evidence and each flag it
names must lie within the case's region subtree (located here, held to
``domain.case.check_within_case``: 422 ``EvidenceOutsideCase``; an unknown reference is
404 ``NotFound``), its dates within ``domain.limits``' windows.  Anyone may read within
their jurisdiction; whoever reads, the access log records every case shown — one case, a
page of cases, the cases behind a recovery total or a rectification list, a report — and
the officials, accounts, households, units and regions a recovery total, a
rectification list or an official's actions show.  Money is integer fen; reads come from
the read models (``projections.cases``), caught up with the log first.

Why one file: the case routes share one writer (``CaseWriter``) and its jurisdiction
checks; each route is a few lines over it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from api.deps import (
    App,
    CaseWriter,
    IdempotentWrite,
    Reader,
    RegionFilter,
    any_aggregate,
    list_scope,
    payee_reads,
    reads_of,
    record_reads,
    region_path_of,
    region_within,
    subject_of,
)
from access.roles import Principal, check_covers
from api.routes.traces import ReadModels, read_models
from api.schemas import ACCOUNT_ID, OFFICIAL_ID, READ_PROBLEMS, WRITE_PROBLEMS, IsoDate
from exchange import layout
from exchange import reports
from exchange.sources import Context
from domain.application import Zhuisu
from domain.case import (
    CASE_NO_PATTERN,
    AccountabilityAction,
    Basis,
    Case,
    CaseType,
    EvidenceKind,
    check_within_case,
    evidence_item,
)
from domain.errors import NotFound
from domain.fund_account import FundAccount
from domain.household import Household
from domain.official import Official
from domain.region import RegionPath, Unit
from projections import case_queries as cq
from projections import flags as flag_queries

router = APIRouter(tags=["cases"])

CASE_NO = "镇纪〔2025〕3号"
MOVEMENT_ID = "dee7ea81-eed9-4272-934c-ef080475d018"
TEXT = r"^[^\x00-\x1f]+$"  # no control characters (PostgreSQL refuses NUL in text)
CaseNo = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^/\x00-\x1f]+$",
                             examples=[CASE_NO], description="the case number (案号)")]
AsOf = Annotated[IsoDate | None, Query(description="judge rectification items as of this "
                                                   "date (default: the log clock)")]
Format = Annotated[Literal["xlsx", "csv"], Query(description="xlsx (the offices' layout: a "
                                                             "titled worksheet per part) or "
                                                             "csv (every part, each row led "
                                                             "by its part's name)")]
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the report as a file",
          "content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
                      {"schema": {"type": "string", "format": "binary"}},
                      "text/csv": {"schema": {"type": "string"}}}},
    **READ_PROBLEMS}


def text_field(max_length: int = 500) -> Any:
    """A required line of text without control characters."""
    return Field(min_length=1, max_length=max_length, pattern=TEXT)


# requests ---------------------------------------------------------------------------------
class EvidenceIn(BaseModel):
    """A piece of evidence: an event (log position), a household, official, payment (with
    its account), account, flag, or a document reference."""

    model_config = ConfigDict(extra="forbid")

    kind: EvidenceKind
    ref: int | str = Field(description="log position (event), id, flag id or document no.")
    note: str = Field("", max_length=1000, pattern=r"^[^\x00-\x1f]*$")
    account_id: str | None = Field(None, max_length=64, description="payments only")


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    official_id: str = Field(min_length=1, max_length=64)
    reason: str = text_field()


class CaseIn(BaseModel):
    """立案: 一案双查 adds the leaders over the subjects' units (``basis`` oversight)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "case_no": CASE_NO, "case_type": "false_claim", "title": "坪地村产业补助虚报冒领",
        "region_code": "522625100001", "effective_date": "2025-05-01",
        "incident_date": "2025-03-01",
        "subjects": [{"official_id": OFFICIAL_ID, "reason": "经办虚报"}],
        "evidence": [{"kind": "payment", "ref": MOVEMENT_ID, "account_id": ACCOUNT_ID,
                      "note": "虚报产业补助"}],
        "flag_ids": [f"PAY_REMOVED:{MOVEMENT_ID}"], "suspend_policies": ["hh_industry"]}]})

    case_no: str = Field(min_length=1, max_length=64, pattern=CASE_NO_PATTERN, description=(
        "the case number (案号): 1 to 64 letters, digits, '-', '_' and 〔〕"))
    case_type: CaseType
    title: str = text_field()
    region_code: str = Field(min_length=1, max_length=64)
    effective_date: IsoDate = Field(description="the date the case is opened (立案)")
    incident_date: IsoDate | None = Field(None, description="default: the opening date")
    subjects: list[SubjectIn] = Field([], max_length=50)
    evidence: list[EvidenceIn] = Field([], max_length=200)
    flag_ids: list[str] = Field([], max_length=200)
    suspend_policies: list[str] = Field([], max_length=20, description=(
        "purpose codes whose payments to the case's village are refused until it is "
        "rectified (暂停享受相关政策)"))


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_date: IsoDate


class LinkEvidence(_Step):
    step: Literal["link_evidence"]
    items: list[EvidenceIn] = Field(min_length=1, max_length=200)


class AddPerson(_Step):
    step: Literal["add_person"]
    official_id: str = Field(min_length=1, max_length=64)
    basis: Basis
    reason: str = text_field()
    region_code: str | None = Field(None, max_length=64)
    position: str | None = Field(None, max_length=64)


class RecordFinding(_Step):
    step: Literal["record_finding"]
    finding_id: str = text_field(128)
    text: str = text_field(5000)
    amount_fen: int | None = Field(None, ge=0, le=10**15)


class ImposeAccountability(_Step):
    step: Literal["impose_accountability"]
    official_id: str = Field(min_length=1, max_length=64)
    action: AccountabilityAction
    decision_no: str = text_field(128)
    reason: str = text_field()


class AddRectificationItem(_Step):
    step: Literal["add_rectification_item"]
    item_id: str = text_field(128)
    problem: str = text_field(2000)
    deadline: IsoDate
    unit_code: str = Field(min_length=1, max_length=64)
    official_id: str = Field(min_length=1, max_length=64)


class CompleteRectificationItem(_Step):
    step: Literal["complete_rectification_item"]
    item_id: str = text_field(128)
    evidence: str = text_field(2000)


class Rectify(_Step):
    step: Literal["rectify"]
    summary: str = text_field(5000)


class Close(_Step):
    step: Literal["close"]
    conclusion: str = text_field(5000)


StepIn = Annotated[LinkEvidence | AddPerson | RecordFinding | ImposeAccountability
                   | AddRectificationItem | CompleteRectificationItem | Rectify | Close,
                   Field(discriminator="step")]
STEP_EXAMPLES = {
    "impose_accountability": {"value": {
        "step": "impose_accountability", "effective_date": "2025-06-01",
        "official_id": OFFICIAL_ID, "action": "admonition_talk",
        "decision_no": "镇纪〔2025〕诫1号", "reason": "一案双查: 监管不力"}},
    "add_rectification_item": {"value": {
        "step": "add_rectification_item", "effective_date": "2025-05-02", "item_id": "R1",
        "problem": "退回虚报资金", "deadline": "2025-06-30", "unit_code": "U522625100001",
        "official_id": OFFICIAL_ID}},
    "rectify": {"value": {"step": "rectify", "effective_date": "2025-07-01",
                          "summary": "整改完成"}},
}


class RecoveryPaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=64)
    movement_id: str = Field(min_length=1, max_length=64)
    amount_fen: int | None = Field(None, ge=1, le=10**15,
                                   description="default: all that is still out")


class RecoveryOrderIn(BaseModel):
    """谁签字谁追回: each payment's amount is charged to the officials who signed it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "order_id": "追1", "effective_date": "2025-05-03", "reason": "虚报冒领",
        "payments": [{"account_id": ACCOUNT_ID, "movement_id": MOVEMENT_ID}]}]})

    order_id: str = text_field(128)
    effective_date: IsoDate
    reason: str = text_field()
    payments: list[RecoveryPaymentIn] = Field(min_length=1, max_length=500)


# answers ----------------------------------------------------------------------------------
class CaseResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "case_id": "6b1f0c2a-3b1e-5e4d-8f9a-0b1c2d3e4f50", "case_no": CASE_NO,
        "recorded": True}]})

    case_id: str
    case_no: str
    step: str | None = None
    recorded: bool = Field(description="false: an exact retry; nothing new stored")


SUMMARY_EXAMPLE = {
    "case_id": "6b1f0c2a-3b1e-5e4d-8f9a-0b1c2d3e4f50", "case_no": CASE_NO,
    "case_type": "false_claim", "title": "坪地村产业补助虚报冒领", "region_code": "522625100001",
    "region_path": {"province": "52", "county": "522625", "village": "522625100001"},
    "status": "open", "opened_on": "2025-05-01", "incident_date": "2025-03-01",
    "rectified_on": None, "closed_on": None, "suspend_policies": ["hh_industry"],
    "flag_ids": [], "recorded_by": "县纪委 王 (inspector, token 5f0c…)", "last_on": "2025-05-01",
    "log_position": 412}


class CaseSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUMMARY_EXAMPLE]})

    case_id: str
    case_no: str
    case_type: str
    title: str
    region_code: str
    region_path: dict[str, str]
    status: str
    opened_on: str
    incident_date: str
    rectified_on: str | None
    closed_on: str | None
    suspend_policies: list[str]
    flag_ids: list[str]
    recorded_by: str
    last_on: str
    log_position: int


class CasePage(BaseModel):
    """Cases in the order opened; ask again with ``after=next_after`` for the next page."""

    items: list[CaseSummary]
    limit: int
    next_after: int | None


class CaseOut(CaseSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **SUMMARY_EXAMPLE, "summary": None, "conclusion": None, "persons": [{
            "official_id": OFFICIAL_ID, "code": "head@522625100", "name": "镇长",
            "unit_code": "U522625100", "basis": "oversight",
            "reason": "一案双查: township_head (first) at 522625100 on 2025-03-01",
            "region_code": "522625100", "position": "township_head",
            "added_on": "2025-05-01"}],
        "evidence": [], "findings": [], "actions": [],
        "recovery": {"total": {"ordered_fen": 9000, "recovered_fen": 2500,
                               "outstanding_fen": 6500}, "orders": [], "by_official": []},
        "rectification": {"as_of": "2025-07-05", "items": []}, "suspensions": []}]})

    summary: str | None
    conclusion: str | None
    persons: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    recovery: dict[str, Any] = Field(description="orders → lines → officials charged: "
                                                 "ordered = recovered + outstanding, in fen")
    rectification: dict[str, Any]
    suspensions: list[dict[str, Any]]


class MoneyOut(BaseModel):
    ordered_fen: int
    recovered_fen: int
    outstanding_fen: int


class OutstandingOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "by": "official", "region_code": "522625", "case_no": None,
        "total": {"ordered_fen": 18001, "recovered_fen": 9500, "outstanding_fen": 8501},
        "items": [{"official_id": OFFICIAL_ID, "code": "party_secretary@522625100",
                   "name": "镇党委书记", "unit_code": "U522625100", "ordered_fen": 6001,
                   "recovered_fen": 3167, "outstanding_fen": 2834, "cases": [CASE_NO]}]}]})

    by: str
    region_code: str | None
    case_no: str | None
    total: MoneyOut
    items: list[dict[str, Any]]


class RectificationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2025-07-05", "log_clock": "2025-07-05", "overdue_only": True, "items": [{
            "case_id": "6b1f0c2a-3b1e-5e4d-8f9a-0b1c2d3e4f50", "case_no": CASE_NO,
            "item_id": "R1", "problem": "退回虚报资金", "unit_code": "U522625100001",
            "official": {"official_id": OFFICIAL_ID, "code": "party_secretary@522625100001",
                         "name": "村支书", "unit_code": "U522625100001"},
            "deadline": "2025-06-30", "added_on": "2025-05-02", "completed_on": None,
            "completion_evidence": None, "status": "overdue", "days_overdue": 5,
            "region_code": "522625100001", "region_path": {"village": "522625100001"}}]}]})

    as_of: str | None
    log_clock: str | None
    overdue_only: bool
    items: list[dict[str, Any]]


class ActionsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "official": {"official_id": OFFICIAL_ID, "code": "head@522625100", "name": "镇长",
                     "unit_code": "U522625100"},
        "actions": [{"case_id": "6b1f0c2a-3b1e-5e4d-8f9a-0b1c2d3e4f50", "case_no": CASE_NO,
                     "case_type": "false_claim", "title": "坪地村产业补助虚报冒领",
                     "action": "admonition_talk", "decision_no": "镇纪〔2025〕诫1号",
                     "reason": "一案双查: 监管不力", "imposed_on": "2025-06-01",
                     "region_path": {"village": "522625100001"}}],
        "cases": []}]})

    official: dict[str, Any]
    actions: list[dict[str, Any]]
    cases: list[dict[str, Any]]


# guards and helpers -----------------------------------------------------------------------
def recorded_by(principal: Principal) -> str:
    """Who records a case step: the token's name, role and id (never the body's word)."""
    return f"{principal.name} ({principal.role.value}, token {principal.token_id})"


def case_in_jurisdiction(principal: Principal, app: Zhuisu, case_no: str) -> Case:
    case = app.case(case_no)
    check_covers(principal, case.region_path, f"case {case_no}", "case_no")
    return case


# where evidence lies (for domain.case.check_within_case) ------------------------------------
def _aggregate(app: Zhuisu, cls: type, ref: Any, field: str) -> Any:
    found = any_aggregate(app, ref, field)
    if not isinstance(found, cls):
        raise NotFound(f"{ref} is not a {cls.__name__}", field=field)
    return found


def payment_path(app: Zhuisu, account: FundAccount, movement_id: str,
                 field: str) -> RegionPath:
    """Where a movement lies: a payment's payee (the household's village, the project's
    region, a supplier's project); any other movement, its account's region."""
    m = account.movements.get(str(movement_id))
    if m is None:
        raise NotFound(f"no movement {movement_id} on account {account.id}", field=field)
    payee = m.get("payee_id") if m.get("payee_kind") in ("household", "project") \
        else m.get("project_id")
    if payee:
        try:
            return subject_of(app, any_aggregate(app, payee, field)).region_path
        except NotFound:
            pass
    return dict(account.region_path)


def event_path(app: Zhuisu, position: int, field: str) -> RegionPath:
    """Where the event at a log position lies: its aggregate's region; a money event's,
    the payment it is or corrects."""
    found = app.recorder.select_notifications(start=position, limit=1)
    if not found or found[0].id != position:
        raise NotFound(f"no event at log position {position}", field=field)
    aggregate = any_aggregate(app, found[0].originator_id, field)
    if isinstance(aggregate, FundAccount):
        e = app.mapper.to_domain_event(found[0])
        mid = getattr(e, "of_movement_id", None) or getattr(e, "movement_id", None)
        if mid is not None and str(mid) in aggregate.movements:
            return payment_path(app, aggregate, str(mid), field)
    return subject_of(app, aggregate).region_path


def check_evidence(app: Zhuisu, principal: Principal, region_path: RegionPath,
                   items: list[EvidenceIn], flag_ids: list[str], field: str) -> None:
    """Every reference a case step names lies within the case's region subtree (a
    document has no region); an unknown one is ``NotFound``."""
    db = None
    for i, raw in enumerate(items):
        at = f"{field}[{i}]"
        item = evidence_item(raw.model_dump(mode="json", exclude_none=True), at)
        kind, ref, where = item["kind"], item["ref"], f"{at}.ref"
        if kind == "document":
            continue
        if kind == "event":
            path = event_path(app, ref, where)
        elif kind == "payment":
            account = _aggregate(app, FundAccount, item["account_id"], f"{at}.account_id")
            path = payment_path(app, account, ref, where)
        elif kind == "flag":
            db = db or read_models(principal, app)
            path = _flag_path(db, ref, where)
        else:
            cls = {"household": Household, "official": Official, "account": FundAccount}[kind]
            path = subject_of(app, _aggregate(app, cls, ref, where)).region_path
        check_within_case(region_path, f"{kind} {ref}", path, where)
    for i, flag_id in enumerate(flag_ids):
        db = db or read_models(principal, app)
        where = f"flag_ids[{i}]"
        check_within_case(region_path, f"flag {flag_id}", _flag_path(db, flag_id, where), where)


def _flag_path(db: Any, flag_id: str, field: str) -> RegionPath:
    try:
        return flag_queries.get_flag(db, flag_id).get("region_path") or {}
    except NotFound as exc:
        raise NotFound(f"no flag {flag_id}", field=field) from exc


# what reads show ----------------------------------------------------------------------------
def outstanding_reads(app: Zhuisu, found: dict) -> list[Read]:
    """What a recovery total shows besides its cases: the officials, units or regions it
    groups by, or each payment's account and payee."""
    items, by = found["items"], found["by"]
    if by == "official":
        return reads_of(app, Official, [e["official_id"] for e in items])
    if by == "unit":
        return reads_of(app, Unit, [Unit.create_id(e["unit_code"]) for e in items
                                    if e.get("unit_code")])
    if by == "region":
        return [Read("region", e["region_code"], e["region_path"]) for e in items]
    if by == "payment":
        return [*reads_of(app, FundAccount, [e["account_id"] for e in items]),
                *payee_reads(app, items)]
    return []


def record_cases(request: Request, principal: Principal, found: Iterable[dict]) -> None:
    """Record the cases shown (``case_id`` and ``region_path`` of each) in the access log."""
    seen: dict[str, dict] = {}
    for c in found:
        seen.setdefault(c["case_id"], c)
    record_reads(request, principal, [Read("case", cid, c["region_path"])
                                      for cid, c in seen.items()])


def record_cases_named(request: Request, principal: Principal, db: Any,
                       case_nos: Iterable[str]) -> None:
    if principal.audited("case"):
        record_cases(request, principal, cq.case_refs(db, case_nos))


def readable_case(request: Request, principal: Principal, db: Any, case_no: str,
                  as_of: IsoDate | None = None) -> dict:
    """A case's view, if the principal may see it; the read recorded when audited."""
    view = cq.case_view(db, case_no, as_of=as_of)
    check_covers(principal, view["region_path"], f"case {case_no}", "case_no")
    record_cases(request, principal, [view])
    return view


def file_response(data: bytes, fmt: str, name: str) -> Response:
    filename = f"{name}.{fmt}"
    return Response(data, media_type=layout.FORMATS[fmt], headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}"})


# writes -----------------------------------------------------------------------------------
@router.post("/cases", response_model=CaseResult, status_code=201,
             dependencies=[IdempotentWrite],
             responses={200: {"model": CaseResult, "description": "an exact retry of an opened "
                              "case; nothing new stored"}, **WRITE_PROBLEMS})
def open_case(body: CaseIn, inspector: CaseWriter, app: App, response: Response) -> Any:
    """立案: open a case in a region of the caller's jurisdiction (inspectors)."""
    region = region_within(inspector, app, body.region_code, "region_code")
    check_evidence(app, inspector, region.path, body.evidence, body.flag_ids, "evidence")
    result = app.open_case(
        case_no=body.case_no, case_type=body.case_type.value, title=body.title,
        region_code=body.region_code, effective_date=body.effective_date,
        incident_date=body.incident_date, subjects=[s.model_dump() for s in body.subjects],
        evidence=[e.model_dump(mode="json", exclude_none=True) for e in body.evidence],
        flag_ids=body.flag_ids, suspend_policies=body.suspend_policies,
        recorded_by=recorded_by(inspector))
    response.status_code = 201 if result["recorded"] else 200
    response.headers["Location"] = f"/cases/{quote(body.case_no, safe='')}"
    return {"case_id": result["case_id"], "case_no": body.case_no,
            "recorded": result["recorded"]}


@router.post("/cases/{case_no}/steps", response_model=CaseResult, status_code=201,
             dependencies=[IdempotentWrite],
             responses={200: {"model": CaseResult, "description": "an exact retry of a step "
                              "already taken; nothing new stored"}, **WRITE_PROBLEMS})
def case_step(case_no: CaseNo, inspector: CaseWriter, app: App, response: Response,
              step: Annotated[StepIn, Body(openapi_examples=STEP_EXAMPLES)]) -> Any:
    """One step of a case: link_evidence, add_person, record_finding,
    impose_accountability, add_rectification_item, complete_rectification_item, rectify
    (lifts the case's policy suspension), close."""
    case = case_in_jurisdiction(inspector, app, case_no)
    fields = step.model_dump(mode="json", exclude={"step"})
    if isinstance(step, LinkEvidence):
        check_evidence(app, inspector, case.region_path, step.items, [], "items")
        fields["items"] = [e.model_dump(mode="json", exclude_none=True) for e in step.items]
    result = app.case_step(case_no, step.step, **fields, recorded_by=recorded_by(inspector))
    response.status_code = 201 if result["recorded"] else 200
    return {"case_id": result["case_id"], "case_no": case_no, "step": step.step,
            "recorded": result["recorded"]}


@router.post("/cases/{case_no}/recovery-orders", response_model=CaseResult, status_code=201,
             dependencies=[IdempotentWrite],
             responses={200: {"model": CaseResult, "description": "an exact retry of an order "
                              "already recorded; nothing new stored"}, **WRITE_PROBLEMS})
def order_recovery(case_no: CaseNo, body: RecoveryOrderIn, inspector: CaseWriter,
                   app: App, response: Response) -> Any:
    """追回: order payments back, charged to their signers (谁签字谁追回)."""
    case_in_jurisdiction(inspector, app, case_no)
    for i, p in enumerate(body.payments):
        path = region_path_of(app, FundAccount, p.account_id, f"payments[{i}].account_id")
        check_covers(inspector, path, f"account {p.account_id}", f"payments[{i}].account_id")
    result = app.order_recovery(
        case_no, order_id=body.order_id, effective_date=body.effective_date,
        reason=body.reason, recorded_by=recorded_by(inspector),
        payments=[p.model_dump(exclude_none=True) for p in body.payments])
    response.status_code = 201 if result["recorded"] else 200
    return {"case_id": result["case_id"], "case_no": case_no, "step": "order_recovery",
            "recorded": result["recorded"]}


# reads ------------------------------------------------------------------------------------
@router.get("/cases", response_model=CasePage, responses=READ_PROBLEMS)
def list_cases(request: Request, reader: Reader, app: App, db: ReadModels,
               region: RegionFilter = None,
               status: Annotated[Literal["open", "rectified", "closed"] | None, Query()] = None,
               case_type: Annotated[CaseType | None, Query()] = None,
               after: Annotated[int, Query(ge=0, le=2**62, description="cases after this "
                                                                        "cursor")] = 0,
               limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
    """Cases within a region's subtree (default: the token's jurisdiction), oldest first."""
    _, code = list_scope(reader, app, region)
    page = cq.list_cases(db, region_code=code, status=status,
                         case_type=case_type.value if case_type else None, after=after,
                         limit=limit)
    record_cases(request, reader, page["items"])
    return page


@router.get("/cases/{case_no}", response_model=CaseOut, responses=READ_PROBLEMS)
def get_case(case_no: CaseNo, request: Request, reader: Reader, db: ReadModels,
             as_of: AsOf = None) -> Any:
    """A case: facts, persons (一案双查), evidence, findings, 问责, 追回 per line and per
    official, 整改 items, policy suspension."""
    return readable_case(request, reader, db, case_no, as_of)


@router.get("/cases/{case_no}/report", response_class=Response, responses=FILE_RESPONSES)
def case_report(case_no: CaseNo, request: Request, reader: Reader, app: App, db: ReadModels,
                format: Format = "xlsx", as_of: AsOf = None) -> Response:  # noqa: A002
    """The inspection report of a case, with the responsibility chain of each payment it
    concerns: .xlsx in the offices' layout (Chinese headers, 元, 合计, ID and bank numbers
    masked for the caller's role) or CSV (English field names, integer fen)."""
    readable_case(request, reader, db, case_no, as_of)
    made = reports.case_report(Context(db, app, role=reader.role.value), case_no, as_of=as_of)
    record_reads(request, reader, made.shown(format))
    return file_response(made.render(format), format, f"case-{case_no}")


@router.get("/recovery/outstanding", response_model=OutstandingOut, responses=READ_PROBLEMS)
def outstanding(request: Request, reader: Reader, app: App, db: ReadModels,
                by: Annotated[Literal["official", "unit", "region", "payment", "order"],
                              Query(description="group by")] = "official",
                region: RegionFilter = None) -> Any:
    """追回: ordered, recovered and outstanding fen, by official (split as ordered: 谁签字谁
    追回), unit, region, payment or order, for cases within a region's subtree."""
    _, code = list_scope(reader, app, region)
    found = cq.outstanding_recovery(db, by=by, region_code=code)
    record_cases_named(request, reader, db, {c for e in found["items"] for c in e["cases"]})
    record_reads(request, reader, outstanding_reads(app, found))
    return found


@router.get("/rectification-items", response_model=RectificationOut, responses=READ_PROBLEMS)
def rectification_items(request: Request, reader: Reader, app: App, db: ReadModels,
                        region: RegionFilter = None,
                        overdue_only: Annotated[bool, Query()] = False, as_of: AsOf = None,
                        limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> Any:
    """整改: rectification items, by deadline, with their status on ``as_of`` (default: the
    log clock, the latest business date in the log)."""
    _, code = list_scope(reader, app, region)
    found = cq.rectification_items(db, overdue_only=overdue_only, as_of=as_of,
                                   region_code=code, limit=limit)
    record_cases(request, reader, found["items"])
    record_reads(request, reader, reads_of(app, Official, [
        (i.get("official") or {}).get("official_id") for i in found["items"]]))
    return found


@router.get("/accountability-actions", response_model=ActionsOut, responses=READ_PROBLEMS)
def accountability_actions(request: Request, reader: Reader, app: App, db: ReadModels,
                           official_id: Annotated[str, Query(min_length=1, max_length=64)]
                           ) -> Any:
    """问责: the actions imposed on an official and the cases naming them, of the cases
    within the token's jurisdiction."""
    found = cq.official_actions(db, official_id)
    found["actions"] = [a for a in found["actions"] if reader.covers(a["region_path"])]
    found["cases"] = [c for c in found["cases"] if reader.covers(c["region_path"])]
    if not found["actions"] and not found["cases"]:
        official = app.load(Official, official_id, "official_id")
        check_covers(reader, app.region(official.region_code).path,
                     f"official {official_id}", "official_id")
    record_cases(request, reader, [*found["actions"], *found["cases"]])
    record_reads(request, reader, reads_of(app, Official, [official_id]))
    return found
