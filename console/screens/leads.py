"""线索处置: leads raised from red flags or comparison matches, carried through 交办 (to a
unit and a person, the deadline in working days on the Chinese calendar), 核实 (属实 /
部分属实 / 不属实 with reasons), 反馈, 审核 and 处置 (谈话函询, 初步核实, 暂存待查, 予以了结)
or 立案 (the case opened with the lead's evidence, and a link to it); the list with
overdue marks, the statistics per unit (leads, 属实率, overdue, cases opened, money
recovered) and the 线索处置台账 as a workbook.

Writes go through the same verbs, with the same arguments and checks, as the API's
(``api/routes/leads.py``): ``Action.WRITE_CASES`` (inspectors), the lead's (or the flag's or
match's) region within the person's jurisdiction, ``recorded_by`` the signed-in person,
never the form.  Every lead shown is recorded in the access log as a read of kind
``lead``.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from access.reads import Read
from access.roles import Action
from console.format import yuan
from console.screens.cases import CASE_TYPE_ZH, can_write, fen_of, officials_by_id, \
    officials_near, recorded_by, today
from console.screens.compare import MODEL_ZH
from console.screens.overview import home_region
from console.web import RULE_ZH, ConsoleRoute, Person, check_csrf, covers, may, page, \
    read_models, record, redirect, zhuisu
from domain.errors import InvalidInput
from domain.lead import DISPOSITION_ZH, STATUS_ZH, VERDICT_ZH, Lead, lead_move, \
    open_lead_case, raise_lead
from domain.official import Official
from domain.region import Unit
from inspection.workdays import add_working_days
from projections import leads

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 100
EXPORT_LIMIT = 1000
STEPS = ("assign", "verify", "report", "review", "close", "open_case")
STEP_ZH = {"Raised": "立线索", "Assigned": "交办", "Verified": "核实", "Reported": "反馈",
           "Reviewed": "审核", "Closed": "处置"}
NEXT_STEPS = {"raised": ("assign",), "assigned": ("verify",), "verified": ("report",),
              "reported": ("review",), "reviewed": ("close", "open_case"), "closed": ()}
LeadId = Annotated[str, Path(min_length=36, max_length=36)]


def rule_title(rule_id: str) -> str:
    return MODEL_ZH.get(rule_id) or RULE_ZH.get(rule_id, rule_id)


def _date(value: Any, field: str, default: dt.date | None = None) -> dt.date:
    text = str(value or "").strip()
    if not text and default is not None:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput("日期格式应为 YYYY-MM-DD", field=field) from exc


def _text(form: Any, name: str, required: bool = True) -> str:
    value = str(form.get(name) or "").strip()
    if required and not value:
        raise InvalidInput("此项必填", field=name)
    return value


# the list and statistics ----------------------------------------------------------------------
@router.get("/leads", response_class=HTMLResponse)
def leads_page(request: Request, person: Person,
               status: Annotated[str | None, Query(max_length=16)] = None,
               overdue: Annotated[str | None, Query(max_length=2)] = None,
               region: Annotated[str | None, Query(max_length=32)] = None,
               as_of: Annotated[str | None, Query(max_length=10)] = None) -> HTMLResponse:
    may(person, Action.READ)
    if status and status not in STATUS_ZH:
        raise InvalidInput("未知的线索状态", field="status")
    found = home_region(request, person, region or None)
    day = _date(as_of, "as_of", today(request))
    db = read_models(request)
    items = leads.list_leads(db, as_of=day, region_code=found.code, status=status or None,
                             overdue_only=bool(overdue), limit=PAGE)
    record(request, person, [Read("lead", x["lead_id"], x["region_path"] or {}) for x in items])
    stats = leads.lead_statistics(db, as_of=day, region_code=found.code)
    args = {k: v for k, v in {"status": status, "overdue": overdue, "region": region,
                               "as_of": as_of}.items() if v}
    return page(request, "leads.html", person, leads=items, stats=stats, status=status or "",
                overdue=bool(overdue), region_code=found.code, as_of=day.isoformat(),
                args=args, STATUS_ZH=STATUS_ZH, VERDICT_ZH=VERDICT_ZH,
                DISPOSITION_ZH=DISPOSITION_ZH, rule_title=rule_title,
                can_write=can_write(person), today=today(request).isoformat())


@router.get("/leads.xlsx")
def leads_export(request: Request, person: Person,
                 region: Annotated[str | None, Query(max_length=32)] = None,
                 as_of: Annotated[str | None, Query(max_length=10)] = None) -> Response:
    """线索处置台账: every lead with its 交办, 核实, 处置 and case, at most ``EXPORT_LIMIT``."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    may(person, Action.READ)
    found = home_region(request, person, region or None)
    day = _date(as_of, "as_of", today(request))
    items = leads.list_leads(read_models(request), as_of=day, region_code=found.code,
                             limit=EXPORT_LIMIT)
    record(request, person, [Read("lead", x["lead_id"], x["region_path"] or {}) for x in items])
    wb = Workbook()
    ws = wb.active
    ws.title = "线索处置台账"
    ws.append([f"线索处置台账（{found.code}，截至 {day.isoformat()}）"])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(["线索编号", "来源", "规则或模型", "风险", "地区", "线索内容", "立线索日期",
               "承办单位", "办理期限", "是否逾期", "核实结论", "核实理由", "涉及金额（元）",
               "反馈日期", "审核日期", "处置方式", "案号", "追回金额（元）", "办结日期", "状态"])
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for x in items:
        ws.append([x["lead_no"], "问题线索" if x["source_kind"] == "flag" else "大数据比对",
                   rule_title(x["rule_id"]), {"high": "高", "medium": "中", "low": "低"}.get(
                       x["severity"], x["severity"]), x["region_code"] or "", x["summary"],
                   x["raised_on"], x["unit_code"] or "", x["deadline"] or "",
                   "逾期" if x["overdue"] else "", VERDICT_ZH.get(x["verdict"] or "", ""),
                   x["reasons"] or "",
                   round(x["amount_fen"] / 100, 2) if x["amount_fen"] is not None else None,
                   x["reported_on"] or "", x["reviewed_on"] or "",
                   DISPOSITION_ZH.get(x["disposition"] or "", ""), x["case_no"] or "",
                   round((x["recovered_fen"] or 0) / 100, 2), x["closed_on"] or "",
                   STATUS_ZH.get(x["status"], x["status"])])
    ws.append(["合计", f"{len(items)} 条"])
    out = io.BytesIO()
    wb.save(out)
    name = f"leads-{found.code}-{day.isoformat()}.xlsx"
    return Response(out.getvalue(),
                    headers={"Content-Disposition": f'attachment; filename="{name}"'},
                    media_type="application/vnd.openxmlformats-officedocument."
                               "spreadsheetml.sheet")


# raising a lead -------------------------------------------------------------------------------
def _raise(request: Request, person: Person, form: Any) -> Response:
    kind, ref = _text(form, "source_kind"), _text(form, "source_ref")
    if len(ref) > 300:
        raise InvalidInput("线索来源编号过长", field="source_ref")
    db = read_models(request)
    if kind not in ("flag", "match"):
        raise InvalidInput("线索来源须为问题线索（flag）或比对结果（match）", field="source_kind")
    src = leads.lead_source(db, kind, ref)
    covers(person, src["region_path"], f"{kind} {ref}", "source_ref")
    result = raise_lead(zhuisu(request), source_kind=kind, source_ref=ref,
                        effective_date=_date(form.get("effective_date"), "effective_date",
                                             today(request)),
                        recorded_by=recorded_by(person), **src)
    return redirect(f"/console/leads/{result['lead_id']}?"
                    + urlencode({"done": "raise" if result["recorded"] else "same"}))


@router.post("/leads")
async def raise_from(request: Request, person: Person) -> Response:
    may(person, Action.WRITE_CASES)
    form = await check_csrf(request, person)
    return await run_in_threadpool(_raise, request, person, form)


# a lead ---------------------------------------------------------------------------------------
def _lead_page(request: Request, person: Person, lead_id: str, *, error: str | None = None,
               done: str | None = None) -> HTMLResponse:
    db = read_models(request)
    lead = leads.get_lead(db, lead_id, as_of=today(request))
    covers(person, lead["region_path"] or {}, f"线索 {lead['lead_no']}", "lead_id")
    record(request, person, [Read("lead", lead["lead_id"], lead["region_path"] or {})])
    writable = can_write(person) and lead["status"] != "closed"
    near = officials_near(db, lead["region_code"]) if writable and lead["region_code"] else []
    people = officials_by_id(db, [*lead["signers"],
                                  *([lead["official_id"]] if lead["official_id"] else [])])
    source_href = (f"/console/compare/matches/{quote(lead['source_ref'], safe=':')}"
                   if lead["source_kind"] == "match"
                   else f"/console/flags/{quote(lead['source_ref'], safe=':')}")
    response = page(
        request, "lead.html", person, lead=lead, rule_title=rule_title(lead["rule_id"]),
        STATUS_ZH=STATUS_ZH, VERDICT_ZH=VERDICT_ZH, DISPOSITION_ZH=DISPOSITION_ZH,
        STEP_ZH=STEP_ZH, next_steps=NEXT_STEPS[lead["status"]] if writable else (),
        officials=near, units=sorted({o["unit_code"] for o in near}), people=people,
        source_href=source_href, types=CASE_TYPE_ZH, error=error, done=done,
        default_day=today(request).isoformat(), yuan=yuan)
    if error:
        response.status_code = 422
    return response


@router.get("/leads/{lead_id}", response_class=HTMLResponse)
def lead_page(request: Request, person: Person, lead_id: LeadId,
              done: Annotated[str | None, Query(max_length=12)] = None) -> HTMLResponse:
    may(person, Action.READ)
    return _lead_page(request, person, lead_id, done=done)


def _move(request: Request, person: Person, lead_id: str, step: str, form: Any) -> Response:
    app = zhuisu(request)
    lead = app.load(Lead, lead_id, "lead_id")
    covers(person, lead.region_path, f"线索 {lead.lead_no}", "lead_id")
    who = recorded_by(person)
    day = _date(form.get("effective_date"), "effective_date", today(request))
    if step == "assign":
        unit = _text(form, "unit_code")
        official = _text(form, "official_id")
        app.load(Unit, Unit.create_id(unit), "unit_code")
        app.load(Official, official, "official_id")
        try:
            days = int(_text(form, "working_days"))
        except ValueError as exc:
            raise InvalidInput("办理期限须为 1–250 个工作日", field="working_days") from exc
        if not 1 <= days <= 250:
            raise InvalidInput("办理期限须为 1–250 个工作日", field="working_days")
        lead_move(app, lead_id, "assign", unit_code=unit, official_id=official,
                  working_days=days, deadline=add_working_days(day, days).isoformat(),
                  effective_date=day, note=_text(form, "note", required=False),
                  recorded_by=who)
    elif step == "verify":
        lead_move(app, lead_id, "verify", verdict=_text(form, "verdict"),
                  reasons=_text(form, "reasons"), effective_date=day, recorded_by=who,
                  amount_fen=fen_of(form.get("amount") or "0", "amount") or 0)
    elif step == "report":
        lead_move(app, lead_id, "report", report=_text(form, "report"), effective_date=day,
                  recorded_by=who)
    elif step == "review":
        accepted = _text(form, "accepted")
        if accepted not in ("yes", "no"):
            raise InvalidInput("请选择审核意见：同意或退回重新核实", field="accepted")
        lead_move(app, lead_id, "review", accepted=accepted == "yes",
                  opinion=_text(form, "opinion"), effective_date=day, recorded_by=who)
    elif step == "close":
        lead_move(app, lead_id, "close", disposition=_text(form, "disposition"),
                  conclusion=_text(form, "conclusion"), effective_date=day, recorded_by=who,
                  recovered_fen=fen_of(form.get("recovered") or "0", "recovered") or 0)
    else:
        open_lead_case(app, lead_id, case_no=_text(form, "case_no"),
                                case_type=_text(form, "case_type"), title=_text(form, "title"),
                                effective_date=day, conclusion=_text(form, "conclusion"),
                                recorded_by=who)
    return redirect(f"/console/leads/{lead_id}?" + urlencode({"done": step}))


@router.post("/leads/{lead_id}/steps/{step}")
async def lead_step(request: Request, person: Person, lead_id: LeadId,
                    step: Annotated[str, Path(max_length=16)]) -> Response:
    may(person, Action.WRITE_CASES)
    form = await check_csrf(request, person)
    if step not in STEPS:
        raise InvalidInput(f"未知的处置步骤；可选：{', '.join(STEPS)}", field="step")
    return await run_in_threadpool(_move, request, person, lead_id, step, form)
