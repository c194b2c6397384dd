"""Fund accounts (扶贫资金账户) and their money movements; opening one is an admin verb.

Movements (收到, 下达, 拨付, 追回, 冲正) are signed steps sent through ``POST /commands``;
an account's events are its movements, each with its three signatures.  Every account
shown, and every household or project paid in the movements shown, is recorded in the
access log.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from access.reads import Read
from api.deps import (
    Admin,
    App,
    Dir,
    EventsAfter,
    EventsLimit,
    IdempotentWrite,
    Paging,
    Reader,
    RegionFilter,
    list_scope,
    payee_reads,
    readable,
    record_reads,
    region_within,
)
from api.schemas import ACCOUNT_ID, READ_PROBLEMS, WRITE_PROBLEMS, Created, EventOut, Page
from projections.aggregates import EVENTS_PAGE, account_summary, account_view
from domain.fund_account import FundAccount
from domain.money import FundSource

router = APIRouter(tags=["accounts"])

SUMMARY_EXAMPLE = {"id": ACCOUNT_ID, "name": "K central", "region_code": "K", "level": "county",
                   "fund_source": "central", "balance_fen": 1000000, "received_fen": 1500000,
                   "paid_out_fen": 500000, "version": 4}


class AccountSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUMMARY_EXAMPLE]})

    id: str
    name: str
    region_code: str
    level: str
    fund_source: str
    balance_fen: int
    received_fen: int
    paid_out_fen: int
    version: int


class AccountOut(AccountSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{**SUMMARY_EXAMPLE, "events": []}]})

    events: list[EventOut]


class AccountIn(BaseModel):
    """Open an account for one fund source at a township or above (村账乡代管)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"region_code": "522625100", "fund_source": "central", "name": "羊场镇中央专项"}]})

    region_code: str = Field(min_length=1, max_length=64)
    fund_source: FundSource
    name: str = Field("", max_length=200)


def account_by_id(account_id: UUID, request: Request, reader: Reader, app: App) -> FundAccount:
    account = app.load(FundAccount, account_id, "account_id")
    return readable(request, reader, "account", account, account.region_path, "account_id")


def account_to_open(account: AccountIn, admin: Admin, app: App) -> AccountIn:
    region_within(admin, app, account.region_code, "region_code")
    return account


@router.get("/accounts", response_model=Page[AccountSummary], responses=READ_PROBLEMS)
def list_accounts(request: Request, reader: Reader, app: App, directory: Dir, paging: Paging,
                  region: RegionFilter = None) -> Any:
    """Accounts within a region's subtree (default: the token's jurisdiction)."""
    level, code = list_scope(reader, app, region)
    items, next_offset = paging.of(directory.accounts_within(level, code))
    accounts = [app.load(FundAccount, aid) for aid in items]
    record_reads(request, reader, [Read("account", str(a.id), dict(a.region_path))
                                   for a in accounts])
    return {"items": [account_summary(a) for a in accounts],
            "limit": paging.limit, "offset": paging.offset, "next_offset": next_offset}


@router.get("/accounts/{account_id}", response_model=AccountOut, responses=READ_PROBLEMS)
def get_account(account: Annotated[FundAccount, Depends(account_by_id)], request: Request,
                reader: Reader, app: App, events_after: EventsAfter = 0,
                events_limit: EventsLimit = EVENTS_PAGE) -> Any:
    """An account, its balances and its money movements (a page of them); the households
    and projects paid in that page are recorded in the access log with the account."""
    view = account_view(app, account, events_after, events_limit)
    record_reads(request, reader, payee_reads(app, [e["fields"] for e in view["events"]]))
    return view


@router.post("/accounts", response_model=Created, status_code=201,
             dependencies=[IdempotentWrite], responses=WRITE_PROBLEMS)
def open_account(account: Annotated[AccountIn, Depends(account_to_open)], app: App,
                 response: Response) -> Any:
    """Open a fund account (administrators)."""
    account_id = app.open_account(account.region_code, account.fund_source.value, account.name)
    response.headers["Location"] = f"/accounts/{account_id}"
    return {"id": str(account_id), "code": f"{account.region_code}/{account.fund_source.value}"}
