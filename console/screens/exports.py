"""台账: the ledgers offices file, downloaded as Excel or CSV — 问题线索台账, 整改台账,
扶贫资金总台账, 发放清册 and 一户一档 — a form per ledger, with links for the person's own
region.

The same ledgers as ``GET /exports/{ledger}`` and ``zhuisu export`` (``exchange``): the
subject asked about (region, account, household) must lie in the person's jurisdiction,
ID and bank numbers are masked for the person's role, and every subject a ledger shows
goes to the access log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from access.roles import Action
from console.screens.overview import home_region
from console.web import (
    ConsoleRoute,
    Person,
    covers,
    may,
    page,
    read_models,
    record,
    zhuisu,
)
from domain.errors import InvalidInput
from exchange import layout
from exchange.ledgers import LEDGERS, build
from exchange.sources import Context, Params

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

Text = Annotated[str | None, Query(max_length=64)]
ABOUT = {
    "flags": "辖区内的问题线索：规则、风险等级、地区、涉及金额、责任人和办理状态。",
    "rectification": "案件的整改事项：责任单位和责任人、期限、已整改 / 持续整改 / 未整改、销号日期。",
    "funds": "每个账户按用途的下达、分配、支付（拨付）、追回、结余和支出进度，另附按账户和万元汇总。",
    "payments": "到户发放的清册：户编号、户主、身份证号和银行账号（脱敏）、用途、金额、日期、文号和签字人。",
    "household": "一户的档案：基本情况、家庭成员（身份证号脱敏）、每一步办理的签字人、享受资金。",
}


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("日期格式应为 YYYY-MM-DD", field=field) from exc


@router.get("/exports", response_class=HTMLResponse)
def exports_page(request: Request, person: Person, region: Text = None) -> HTMLResponse:
    may(person, Action.READ)
    found = home_region(request, person, region or None)
    return page(request, "exports.html", person, region=found,
                ledgers={k: (s.title, ABOUT[k]) for k, s in LEDGERS.items()})


@router.get("/exports/{ledger}")
def export_download(request: Request, person: Person, ledger: str, region: Text = None,
                    format: Annotated[str, Query(max_length=8)] = "xlsx",  # noqa: A002
                    date_from: Text = None, date_to: Text = None,
                    status: Annotated[str, Query(max_length=16)] = "standing",
                    as_of: Text = None, account: Text = None,
                    household: Text = None) -> Response:
    """One ledger as a file, for the form's parameters."""
    may(person, Action.READ)
    if ledger not in LEDGERS:
        raise InvalidInput("没有这种台账", field="ledger")
    if format not in layout.FORMATS:
        raise InvalidInput("格式应为 xlsx 或 csv", field="format")
    account, household, region = (v.strip() if v and v.strip() else None
                                  for v in (account, household, region))
    if ledger not in ("household",) and not (ledger == "payments" and account):
        region = home_region(request, person, region).code
    context = Context(read_models(request), zhuisu(request), role=person.account.role.value,
                      covers=lambda path, what, field: covers(person, path, what, field))
    made = build(ledger, context, Params(
        region=region, date_from=_date(date_from, "date_from"), date_to=_date(date_to, "date_to"),
        status=status or "standing", as_of=_date(as_of, "as_of"), account=account,
        household=household))
    record(request, person, made.shown)
    name = made.filename(format)
    return Response(layout.render(made, format), media_type=layout.FORMATS[format], headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})
