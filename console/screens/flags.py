"""问题线索: the red flags with filters (rule, severity, region, dates, standing/withdrawn),
paging and export to Excel; a flag opens its evidence — the events, the money trace, each
signer with name, position and role at the time."""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from access.reads import Read
from access.roles import Action
from console.screens.overview import home_region
from console.web import (
    POSITION_ZH,
    RULE_ZH,
    SEVERITY_ZH,
    SIGN_ROLE_ZH,
    ConsoleRoute,
    Person,
    covers,
    may,
    page,
    read_models,
    record,
)
from domain.errors import InvalidInput, NotFound
from projections import chains
from projections.flags import queries as flag_queries

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
EXPORT_LIMIT = 1000


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("日期格式应为 YYYY-MM-DD", field=field) from exc


def _filters(request: Request, person: Person, rule: str | None, severity: str | None,
             region: str | None, date_from: str | None, date_to: str | None,
             status: str) -> dict[str, Any]:
    found = home_region(request, person, region or None)
    return {"rule_id": rule or None, "severity": severity or None, "region_code": found.code,
            "date_from": _date(date_from, "date_from"), "date_to": _date(date_to, "date_to"),
            "status": status or "standing"}


def _reads(flags: list[dict]) -> list[Read]:
    return [Read("flag", f["flag_id"], f["region_path"]) for f in flags]


Text = Annotated[str | None, Query(max_length=64)]


@router.get("/flags", response_class=HTMLResponse)
def flags_page(request: Request, person: Person, rule: Text = None, severity: Text = None,
               region: Text = None, date_from: Text = None, date_to: Text = None,
               status: Annotated[str, Query(max_length=16)] = "standing",
               after: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    may(person, Action.READ)
    query = _filters(request, person, rule, severity, region, date_from, date_to, status)
    db = read_models(request)
    shown = flag_queries.list_flags(db, **query, after=after or None, limit=PAGE + 1)
    more = len(shown) > PAGE
    shown = shown[:PAGE]
    record(request, person, _reads(shown))
    args = {k: v for k, v in {"rule": rule, "severity": severity, "region": query["region_code"],
                               "date_from": date_from, "date_to": date_to,
                               "status": query["status"]}.items() if v}
    return page(request, "flags.html", person, flags=shown, query=query, args=args,
                next_after=shown[-1]["flag_id"] if more else None, rules=RULE_ZH,
                counts=flag_queries.flag_counts(db, query["region_code"]))


@router.get("/flags.xlsx")
def flags_export(request: Request, person: Person, rule: Text = None, severity: Text = None,
                 region: Text = None, date_from: Text = None, date_to: Text = None,
                 status: Annotated[str, Query(max_length=16)] = "standing") -> Response:
    """问题线索台账 as a workbook: Chinese headers, a title row, amounts in 元 as text-safe
    numbers, at most ``EXPORT_LIMIT`` rows (the filter narrows it)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    may(person, Action.READ)
    query = _filters(request, person, rule, severity, region, date_from, date_to, status)
    shown = flag_queries.list_flags(read_models(request), **query, limit=EXPORT_LIMIT)
    record(request, person, _reads(shown))
    wb = Workbook()
    ws = wb.active
    ws.title = "问题线索台账"
    ws.append([f"问题线索台账（{query['region_code']}，导出于 {dt.date.today().isoformat()}）"])
    ws["A1"].font = Font(bold=True, size=13)
    header = ["线索编号", "规则", "规则名称", "风险", "对象类型", "对象", "地区", "业务日期",
              "日志位置", "金额（元）", "说明", "状态"]
    ws.append(header)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for f in shown:
        amount = (f.get("detail") or {}).get("amount_fen")
        ws.append([f["flag_id"], f["rule_id"], RULE_ZH.get(f["rule_id"], f["rule_id"]),
                   SEVERITY_ZH.get(f["severity"], f["severity"]), f["subject_kind"],
                   str(f["subject_id"]), f.get("region_code") or "",
                   f.get("effective_date") or "", f["log_position"],
                   round(amount / 100, 2) if isinstance(amount, int) else None,
                   f["explanation_zh"], "在办" if f["standing"] else "已撤销"])
        ws.cell(ws.max_row, 10).number_format = "#,##0.00"
    ws.append(["合计", f"{len(shown)} 条"])
    for col, width in zip("ABCDEFGHIJKL", (38, 22, 18, 6, 10, 38, 12, 12, 10, 14, 60, 8)):
        ws.column_dimensions[col].width = width
    out = io.BytesIO()
    wb.save(out)
    name = f"flags-{query['region_code']}-{dt.date.today().isoformat()}.xlsx"
    return Response(out.getvalue(), headers={"Content-Disposition": f'attachment; filename="{name}"'},
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@router.get("/flags/{flag_id:path}", response_class=HTMLResponse)
def flag_page(request: Request, person: Person, flag_id: str) -> HTMLResponse:
    may(person, Action.READ)
    if len(flag_id) > 300:
        raise InvalidInput("线索编号过长", field="flag_id")
    db = read_models(request)
    flag = flag_queries.get_flag(db, flag_id)
    covers(person, flag["region_path"], f"问题线索 {flag_id}", "flag_id")
    events, payments = [], []
    for e in flag.get("evidence") or []:
        try:
            if e.get("kind") == "event":
                events.append(chains.event_chain(db, int(e["ref"])))
            elif e.get("kind") == "payment":
                payments.append(chains.payment_chain(db, str(e["ref"]), e.get("account_id")))
        except NotFound:
            continue
    record(request, person, [Read("flag", flag["flag_id"], flag["region_path"])])
    return page(request, "flag.html", person, flag=flag, events=events, payments=payments,
                rules=RULE_ZH, positions=POSITION_ZH, sign_roles=SIGN_ROLE_ZH)
