"""支付令 (payment batch) screen: a batch's manifest, its signers (谁签字谁负责), the
reconciliation (下达 / 入账 / 退回 / 重发, rows and 元) and its rows with their state, each
with a link to its proof (``GET /batches/{id}/rows/{n}/proof``, checked offline with
``zhuisu verify-proof``).  Read from ``projections.batches`` as ``GET /batches/{id}``
reads it; the account and each household on the page are recorded in the access log.
Linked from the account page (资金流向 → 资金账户)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from access.reads import Read
from access.roles import Action
from console.web import ConsoleRoute, Person, covers, may, page, read_models, record, zhuisu
from domain.fund_account import FundAccount
from domain.household import Household
from projections import batches as bt

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

PAGE = 100
STATE_ZH = {"pending": "待回盘", "credited": "已入账", "returned": "已退回", "reissued": "已重发"}


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, person: Person, batch_id: str,
               offset: Annotated[int, Query(ge=0, le=10**7)] = 0) -> HTMLResponse:
    may(person, Action.READ)
    app = zhuisu(request)
    db = read_models(request)
    b = bt.get_batch(db, batch_id)
    account = app.load(FundAccount, b["account_id"], "batch_id")
    covers(person, account.region_path, f"支付令 {batch_id}", "batch_id")
    view = bt.batch_view(db, batch_id, limit=PAGE, offset=offset)
    payees = {}
    for r in view["rows"]:
        if r["payee_kind"] == "household" and r["payee_id"] not in payees:
            try:
                payees[r["payee_id"]] = app.load(Household, r["payee_id"], "payee_id")
            except Exception:  # noqa: BLE001 - a payee the store does not know: shown by id
                continue
    record(request, person, [Read("account", str(account.id), dict(account.region_path)),
                             *[Read("household", str(h.id), dict(h.region_path))
                               for h in payees.values()]])
    return page(request, "batches.html", person, view=view, account=account, payees=payees,
                STATE_ZH=STATE_ZH, offset=offset, page_size=PAGE)
